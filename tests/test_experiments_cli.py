"""The experiments command line and spec checks: bad input is one line on stderr, exit status 2,
refused before any work; smoke results go to one stable folder so that a re-run resumes.

Kept apart from test_experiments.py so that most of these run without the offline data packs.
"""

import json
import os
import subprocess
import sys

import pytest

from storage_scaling import data, experiments, paths

from storage_scaling.learn import train
from storage_scaling.experiments import command  # noqa: F401  (experiments.command)

needs_data = pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")

TINY = dict(dataset="cifar10-jpg", model="airnet_small", pool="paper", classes=None, pool_limit=80,
            test_n=60, effort=7, train=dict(steps=3, batch_size=16, tta=0, eval_batch_size=100))


def spec(**extra):
    return {"datasets": [dict(TINY, **extra)]}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A private cache and results folder, and training that fails the test if it starts."""
    cache, results = tmp_path / "cache", tmp_path / "results"
    cache.mkdir()
    results.mkdir()
    monkeypatch.setenv(paths.CACHE_ENV, str(cache))
    monkeypatch.setenv(paths.RESULTS_ENV, str(results))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("training started"))
    return tmp_path


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def run_cli(capsys, *argv):
    rc = experiments.command.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("storage-scaling run: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BAD_SPECS = [
    pytest.param(json.dumps(spec(ns=[81], distances=[1.0], seeds=[0])),
                 ("n=81 is larger than the training pool", "choose n <= 80"), marks=needs_data, id="n-too-large"),
    pytest.param(json.dumps(spec(ns=[20], distances=[1.0], model="vgg99")),
                 ("unknown model 'vgg99'", "airnet"), id="unknown-network"),
    pytest.param(json.dumps(spec(ns=[20], distances=[1.0], dataset="imagenet")),
                 ("unknown dataset 'imagenet'", "cifar10-jpg"), id="unknown-dataset"),
    pytest.param('{"datasets": [{"dataset": "cifar10-jpg",',
                 ("is not valid JSON", "line 1", "fix the file"), id="malformed-json"),
    pytest.param(json.dumps(spec(ns=[20], distances=[1.0], sedes=[0, 1])),
                 ("unknown key(s) ['sedes']", "'seeds'", "valid keys"), id="misspelt-key"),
]


@pytest.mark.parametrize("text,needles", BAD_SPECS)
def test_bad_input_is_one_line_exit_2_and_nothing_written(text, needles, sandbox, capsys):
    (sandbox / "spec.json").write_text(text)
    before = files_under(sandbox)
    rc, out, err = run_cli(capsys, "grid", "--spec", str(sandbox / "spec.json"),
                           "--results", str(sandbox / "out" / "grid.csv"))
    assert_one_line_error(rc, err, *needles)
    assert files_under(sandbox) == before, "bad input must write nothing"
    assert not (sandbox / "out").exists()


def test_default_smoke_results_also_untouched_by_bad_input(sandbox, capsys):
    (sandbox / "spec.json").write_text(json.dumps(spec(ns=[20], distances=[1.0], sedes=[0])))
    rc, _, err = run_cli(capsys, "grid", "--spec", str(sandbox / "spec.json"))
    assert_one_line_error(rc, err, "'sedes'")
    assert files_under(sandbox / "cache") == []


def test_missing_spec_file_and_results_with_all(sandbox, capsys):
    rc, _, err = run_cli(capsys, "grid", "--spec", str(sandbox / "nope.json"))
    assert_one_line_error(rc, err, "nope.json: no such file", "--show-spec")
    rc, _, err = run_cli(capsys, "all", "--results", str(sandbox / "x.csv"))
    assert_one_line_error(rc, err, "--results", "one experiment at a time")
    assert not (sandbox / "x.csv").exists()


def test_debug_flag_shows_the_traceback(sandbox):
    (sandbox / "spec.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        experiments.command.main(["grid", "--spec", str(sandbox / "spec.json"), "--debug"])


def test_module_entry_point_reports_one_line(sandbox):
    (sandbox / "spec.json").write_text('{"datasets": [')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", paths.CACHE_ENV: str(sandbox / "cache")}
    done = subprocess.run([sys.executable, "-m", "storage_scaling.experiments", "grid", "--spec",
                           str(sandbox / "spec.json")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "not valid JSON" in done.stderr


@needs_data
def test_full_profile_without_gpu_names_the_allow_cpu_flag(sandbox, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (sandbox / "spec.json").write_text(json.dumps(spec(ns=[20], distances=[4.0], seeds=[0])))
    rc, _, err = run_cli(capsys, "grid", "--profile", "full", "--spec", str(sandbox / "spec.json"),
                         "--results", str(sandbox / "g.csv"))
    assert_one_line_error(rc, err, "no GPU is available", "--allow-cpu")
    assert not (sandbox / "g.csv").exists()


# ---------------------------------------------------------------------------------------------
# Spec keys


@pytest.fixture
def no_data(monkeypatch):
    """Key checks come before any data is read."""
    monkeypatch.setattr(data, "pool", lambda *a, **k: pytest.fail("data loaded before the key check"))


def test_misspelt_block_key_is_refused_with_the_valid_ones(no_data):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['sedes'\] in datasets\[0\] \(cifar10-jpg\)") as e:
        experiments.build_runs("grid", spec(ns=[20], distances=[1.0], sedes=[0, 1]))
    message = str(e.value)
    assert "did you mean 'seeds'" in message
    valid = message.split("valid keys: ")[1]
    for key in experiments.specs.block_keys("grid"):
        assert repr(key) in valid
    assert "'budgets'" not in valid  # a budget key is not valid in a grid block


def test_keys_of_another_experiment_are_refused(no_data):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['distances'\] in .*'original' spec"):
        experiments.build_runs("original", spec(budgets=[9_000], seeds=[0], distances=[1.0]))


def test_unknown_top_level_key_is_refused(no_data):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['dataset'\] in the spec .*"
                                         r"valid keys: \['datasets', 'overrides'\]"):
        experiments.build_runs("grid", {**spec(ns=[20], distances=[1.0]), "dataset": "cifar10-jpg"})


@pytest.mark.parametrize("name", ["grid", "select"])
def test_unknown_training_override_is_refused_before_any_data(name, no_data):
    block = dict(TINY, ns=[20], distances=[1.0], step_multipliers=[1], lr_multipliers=[1.0],
                 train=dict(TINY["train"], step=3))
    if name == "grid":
        block = {k: v for k, v in block.items() if k not in ("step_multipliers", "lr_multipliers")}
    else:
        block.pop("distances")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['step'\] in 'train'.*did you mean 'steps'.*'warmup'"):
        experiments.build_runs(name, {"datasets": [block]})


def test_network_in_training_overrides_points_to_the_block_key(no_data):
    with pytest.raises(ValueError, match=r"\['network'\] in 'train'.*block's 'model' key"):
        experiments.build_runs("grid", spec(ns=[20], distances=[1.0], train=dict(steps=3, network="airnet")))


@pytest.mark.parametrize("bad,match", [
    ([], r"is an object .* not a list"),
    ({"datasets": []}, "non-empty 'datasets' list"),
    ({"datasets": ["cifar10-jpg"]}, r"datasets\[0\] .* must be an object"),
    ({"datasets": [dict(TINY, ns=[20], distances=[1.0], train=3)]}, "'train' in datasets"),
])
def test_malformed_spec_shapes(bad, match, no_data):
    with pytest.raises(ValueError, match=match):
        experiments.build_runs("grid", bad)


@pytest.mark.parametrize("profile", ["smoke", "full"])
@pytest.mark.parametrize("name", experiments.EXPERIMENTS)
def test_every_default_spec_passes_the_key_check(name, profile):
    experiments.check_spec(name, experiments.default_spec(name, profile))


def test_run_experiment_with_a_misspelt_key_runs_nothing(sandbox, no_data):
    with pytest.raises(ValueError, match="'sedes'"):
        experiments.run_experiment("grid", "smoke", sandbox / "g.csv", spec(ns=[20], distances=[1.0], sedes=[0]),
                                   progress=False)
    assert not (sandbox / "g.csv").exists()


# ---------------------------------------------------------------------------------------------
# Where smoke rows go


def test_default_smoke_results_are_one_stable_file_under_the_cache(sandbox):
    first = experiments.default_results_path("grid", "smoke", "airnet_small")
    second = experiments.default_results_path("grid", "smoke", "airnet_small")
    assert first == second  # a re-run finds the rows of the first run and resumes
    assert first == sandbox / "cache" / "smoke-results" / "training_grid_airnet_small.csv"
    assert experiments.default_results_path("budget", "smoke", "airnet_small").parent == first.parent
    # one table per experiment and model
    assert experiments.default_results_path("grid", "full", "airnet") == sandbox / "results" / "training_grid_airnet.csv"
    with pytest.raises(ValueError, match="profiles"):
        experiments.default_results_path("grid", "publish", "airnet")


def test_help_says_where_smoke_rows_go(capsys):
    from storage_scaling import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "<cache>/smoke-results/<file>_<model>.csv for smoke" in text
    assert paths.CACHE_ENV in text and "resumes" in text


# ---------------------------------------------------------------------------------------------
# The probe's budget blocks and `run all`

BUDGET_SCHEMES = ("budget", "original", "naive", "randomized")


@pytest.mark.parametrize("name", BUDGET_SCHEMES)
def test_full_probe_blocks_use_the_paper_placement_and_the_grid_features(name):
    grid_train = {b["dataset"]: b["train"] for b in experiments.default_spec("grid", "full")["datasets"]
                  if b["model"] == "probe"}
    blocks = {b["dataset"]: b for b in experiments.default_spec(name, "full")["datasets"] if b["model"] == "probe"}
    assert set(blocks) == {"cifar10-jpg", "food101-64px"}
    for dataset, block in blocks.items():
        assert block["train"] == grid_train[dataset]  # same dictionary and feature cache as the grid
        assert block["budgets_per_l15"] == [0.14, 0.28, 0.85, 1.42, 2.13] and block["seeds"] == [0, 1, 2]
        assert not {"budgets", "budgets_per_pool_image", "allocations"} & set(block)
        if name in ("budget", "randomized"):
            assert block["allocation"] == "grid_fit"
        if name == "naive":
            assert block["distances"] == [3.0, 8.0, 13.0]
        if name == "randomized":
            assert (block["range_start"], block["range_end"]) == (0.5, 15.0)
    # the networks' blocks keep their budgets
    assert all("budgets_per_pool_image" in b for b in experiments.default_spec(name, "full")["datasets"]
               if b["model"] == "airnet")


@pytest.fixture
def recorded(monkeypatch):
    """`run all` with the runner replaced by a recorder: which experiments run, in which order."""
    import pandas as pd

    calls = []

    def fake(name, profile, results_path=None, spec=None, **kwargs):
        calls.append((name, sorted({(b["dataset"], b["model"]) for b in spec["datasets"]})))
        return pd.DataFrame()

    monkeypatch.setattr(experiments.runner, "run_experiment", fake)
    return calls


def test_run_all_runs_the_grid_first_and_skips_experiments_without_a_block(sandbox, recorded, capsys):
    rc, out, err = run_cli(capsys, "all", "--profile", "full", "--models", "probe", "--datasets", "food101-64px")
    assert rc == 0, err
    assert [name for name, _ in recorded] == ["grid", "quality", "cross", "original", "naive", "budget",
                                              "randomized", "blog"]
    assert all(blocks == [("food101-64px", "probe")] for _, blocks in recorded)
    skips = [line for line in out.splitlines() if "skipped" in line]
    assert skips == [f"{name}: skipped, its full spec has no block of dataset food101-64px and model probe"
                     for name in ("select", "jpeg_dl")]
    recorded.clear()
    rc, out, _ = run_cli(capsys, "all", "--profile", "smoke", "--models", "airnet_small")
    assert rc == 0 and recorded[0][0] == "grid" and "select" in [n for n, _ in recorded]
    assert "skipped" not in out


@pytest.mark.parametrize("argv,needles", [
    (["--datasets", "imagenet"], ("unknown dataset 'imagenet'", "cifar10-jpg")),
    (["--models", "vgg99"], ("unknown model 'vgg99'", "probe")),
    (["--models", "resnet18_64", "--profile", "smoke"], ("no experiment of the smoke profile has a block",
                                                         "--show-spec")),
])
def test_run_all_refuses_unknown_names_in_one_line(argv, needles, sandbox, recorded, capsys):
    rc, _, err = run_cli(capsys, "all", *argv)
    assert_one_line_error(rc, err, *needles)
    assert recorded == []


def test_budget_without_the_grid_of_its_dataset_says_it_cannot_be_listed_yet(sandbox):
    from storage_scaling.experiments import kinds

    (sandbox / "results" / "training_grid_probe.csv").write_text("dataset,n,mean_bytes,error\ncifar10-jpg,10,100,0.5\n")
    with pytest.raises(ValueError, match=r"food101-64px block of model 'probe' .* cannot be listed yet") as e:
        kinds.grid_law("food101-64px", "probe")
    assert "storage-scaling run grid --profile full --models probe --datasets food101-64px" in str(e.value)
