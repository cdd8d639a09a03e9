"""What the runner checks and computes once: each training's plan (handed to the training, also
through a pool of workers), each spec, each row against the declared schema, metrics against the
run's parameters; and ``--set`` overrides, recorded in every row."""

import json
import pickle
from collections import Counter

import pytest

from storage_scaling import data, experiments, paths, results_integrity
from storage_scaling.compress import store
from storage_scaling.experiments import command, kept, kinds, runner, specs
from storage_scaling.results import ResultsStore, run_key

from test_experiments import TINY, spec

needs_data = pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")
private = pytest.mark.usefixtures("private_cache")


# ---------------------------------------------------------------------------------------------
# Metrics named like parameters


def test_a_metric_that_repeats_a_parameter_is_left_out_and_one_that_contradicts_it_is_refused():
    run = {"experiment": "blog", "n": 40, "budget": None, "seed": 0}
    assert runner.row_metrics(run, {"n": 40, "error": 0.5}) == {"error": 0.5}  # the same value: the parameter's
    assert runner.row_metrics(run, {"budget": None, "seed": 0.0}) == {}
    with pytest.raises(ValueError, match=r"'blog'.*\['n', 'seed'\] clash.*n: parameter 40, metric 39"):
        runner.row_metrics(run, {"n": 39, "seed": 1, "error": 0.5})


@needs_data
@private
def test_a_run_whose_metric_contradicts_its_parameter_writes_no_row(tmp_path, monkeypatch):
    grid = kinds.EXPERIMENTS["grid"]

    def training_set(run, plan):
        training = type(grid).training_set(grid, run, plan)
        training.storage["seed"] = 99  # a storage metric named like a parameter, with another value
        return training

    monkeypatch.setattr(grid, "training_set", training_set)
    path = tmp_path / "grid.csv"
    with pytest.raises(ValueError, match=r"metric\(s\) \['seed'\] clash"):
        experiments.run_experiment("grid", "smoke", results_path=path, spec=spec(ns=[20], distances=[15.0], seeds=[0]),
                                   progress=False)
    assert ResultsStore(path).frame().empty


# ---------------------------------------------------------------------------------------------
# The row schema, before a row is written


def test_a_row_is_checked_against_the_declared_schema():
    run = {"experiment": "original", "seed": 0}
    good = {"accuracy": 0.75, "error": 0.25, "f1_macro": 0.7, "f1_weighted": 0.7, "n_test": 60,
            "test_mean_bytes": 900.0, "mean_bytes": 800.0, "total_bytes": 8000, "budget_fill": 0.99, "n": 10,
            "pool_exhausted": False}
    results_integrity.check_row(run, good)
    with pytest.raises(ValueError, match=r"experiment 'original' for t\.csv lacks the column 'pool_exhausted'"):
        results_integrity.check_row(run, {k: v for k, v in good.items() if k != "pool_exhausted"}, "t.csv")
    with pytest.raises(ValueError, match=r"experiment 'original'.*column 'accuracy' would hold 'nan', which is not "
                                         r"a number in \[0, 1\]"):
        results_integrity.check_row(run, {**good, "accuracy": float("nan")})


@needs_data
@private
def test_a_row_missing_a_declared_column_is_refused_before_it_is_written(tmp_path, monkeypatch):
    grid = kinds.EXPERIMENTS["grid"]

    def training_set(run, plan):
        training = type(grid).training_set(grid, run, plan)
        del training.storage["mean_bytes"]
        return training

    monkeypatch.setattr(grid, "training_set", training_set)
    path = tmp_path / "grid.csv"
    with pytest.raises(ValueError, match=r"a row of experiment 'grid' for .*grid\.csv \(run \w+\) lacks the column "
                                         r"'mean_bytes'"):
        experiments.run_experiment("grid", "smoke", results_path=path, spec=spec(ns=[20], distances=[15.0], seeds=[0]),
                                   progress=False)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# One plan per training


class PicklingPool:
    """A pool that sends every task through pickle, as a worker process would receive it."""

    kind, workers, remote = "pickling", 1, False

    def __init__(self):
        self.tasks = []

    def imap_unordered(self, func, tasks, resources=None):
        for k, task in enumerate(tasks):
            self.tasks.append(task)
            yield k, func(pickle.loads(pickle.dumps(task)))


@needs_data
@private
@pytest.mark.parametrize("where", ["serial", "pool"])
def test_each_training_is_planned_once_and_handed_its_plan(where, tmp_path, monkeypatch):
    blog = kinds.EXPERIMENTS["blog"]  # a plan with every kind of value: indices, a prefix, sizes, a budget
    planned = Counter()

    def plan(run):
        planned[kept.training_key(run)] += 1
        return type(blog).plan(blog, run)

    monkeypatch.setattr(blog, "plan", plan)
    s = spec(budget_distance=10.0, distances=["original", 15.0], seeds=[0], train=dict(TINY["train"], steps=2))
    pool = PicklingPool() if where == "pool" else None
    frame = experiments.run_experiment("blog", "smoke", results_path=tmp_path / "blog.csv", spec=s, progress=False,
                                       pool=pool)
    trainings = {kept.training_key(r) for r in experiments.build_runs("blog", s)}
    assert len(frame) == 2 and planned == Counter(dict.fromkeys(trainings, 1))
    if pool is not None:  # the plan travelled with the task: plain values, no pool or store to ship
        assert len(pool.tasks) == 2 and all(t.plan is not None for t in pool.tasks)
        for task in pool.tasks:
            assert not any(isinstance(v, (data.ImageSet, store.StoreEntry)) for v in task.plan.values())
            assert len(pickle.dumps(task.plan)) < 20_000


# ---------------------------------------------------------------------------------------------
# One check per spec


@needs_data
@private
def test_the_command_checks_a_spec_once(tmp_path, monkeypatch):
    calls = []
    check = specs.check_spec
    monkeypatch.setattr(specs, "check_spec", lambda name, s: calls.append(name) or check(name, s))
    (tmp_path / "spec.json").write_text(json.dumps(spec(ns=[20], distances=[15.0], seeds=[0])))
    assert command.main(["grid", "--spec", str(tmp_path / "spec.json"), "--results", str(tmp_path / "g.csv")]) == 0
    assert calls == ["grid"]
    calls.clear()
    experiments.run_experiment("grid", "smoke", results_path=tmp_path / "g.csv",
                               spec=spec(ns=[20], distances=[15.0], seeds=[0]), progress=False)
    assert calls == ["grid"]


# ---------------------------------------------------------------------------------------------
# storage-scaling run NAME --set KEY=VALUE


def test_set_values_are_toml_values():
    assert specs.parse_set(["seeds=[0, 1]", "train.lr=0.2", 'pool="all"', "zero_below=auto", "effort = 5"]) == {
        "seeds": [0, 1], "train.lr": 0.2, "pool": "all", "zero_below": "auto", "effort": 5}
    with pytest.raises(ValueError, match="must be KEY=VALUE"):
        specs.parse_set(["seeds"])
    with pytest.raises(ValueError, match="is not a TOML value"):
        specs.parse_set(["seeds=[0,"])


def run_cli(capsys, *argv):
    rc = command.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(paths.RESULTS_ENV, str(tmp_path / "results"))
    (tmp_path / "results").mkdir()
    return tmp_path


@pytest.mark.parametrize("argv,needles", [
    (["--set", "sedes=[0]"], ["unknown key(s) ['sedes']", "'seeds'", "valid keys", "train.steps"]),
    (["--set", "model=probe"], ["unknown key(s) ['model']", "valid keys"]),
    (["--set", "train.centroids=8"], ["unknown key(s) ['train.centroids']", "train.steps"]),
    (["--set", "seeds=0"], ["seeds in datasets[0] (cifar10-jpg)", "non-empty list of integers"]),
    (["--profile", "full", "--set", "seeds=[0]"], ["--set", "--results PATH"]),
])
def test_a_bad_override_is_one_line_before_any_work(argv, needles, sandbox, capsys, monkeypatch):
    monkeypatch.setattr(data, "pool", lambda *a, **k: pytest.fail("data read before the overrides were checked"))
    (sandbox / "spec.json").write_text(json.dumps(spec(ns=[20], distances=[15.0], seeds=[0])))
    rc, _, err = run_cli(capsys, "grid", "--spec", str(sandbox / "spec.json"), *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not list((sandbox / "results").iterdir())


def test_a_train_override_another_blocks_model_lacks_names_the_block():
    two = {"datasets": [dict(TINY, ns=[20], distances=[15.0]),
                        dict(TINY, model="probe", train={}, ns=[20], distances=[15.0])], "overrides": {"train.steps": 5}}
    with pytest.raises(ValueError, match=r"train\.steps in the overrides .* model 'probe' of datasets\[1\] "
                                         r"\(cifar10-jpg\) .* has no setting 'steps'"):
        specs.check_spec("grid", two)


def test_overrides_on_the_full_profile_never_write_the_books_tables(sandbox):
    default = specs.restrict(specs.default_spec("grid", "full"), models=["probe"])
    custom = specs.with_overrides(default, {"seeds": [0]})
    for results_path in (None, runner.default_results_path("grid", "full", "probe")):
        with pytest.raises(ValueError, match="not runs of the full spec"):
            experiments.run_experiment("grid", "full", results_path=results_path, spec=custom, progress=False)


@needs_data
@private
def test_set_is_recorded_in_the_rows_and_the_sidecar(sandbox, capsys):
    block = dict(TINY, ns=[20], distances=[15.0], seeds=[0, 1])
    (sandbox / "spec.json").write_text(json.dumps({"datasets": [block]}))
    out = sandbox / "mine.csv"
    rc, _, err = run_cli(capsys, "grid", "--profile", "full", "--allow-cpu", "--spec", str(sandbox / "spec.json"),
                         "--results", str(out), "--set", "seeds=[1]", "--set", "train.steps=2")
    assert rc == 0, err
    rows = ResultsStore(out).frame()
    assert len(rows) == 1 and rows["seed"].tolist() == [1] and rows["steps"].tolist() == [2]
    assert rows["overrides"].tolist() == ["seeds=[1]; train.steps=2"]
    params = json.loads(rows["params_json"].iloc[0])
    assert params["overrides"] == "seeds=[1]; train.steps=2"
    # the same values written in the spec itself are another run: the override is part of the key
    plain = experiments.build_runs("grid", {"datasets": [dict(block, seeds=[1], train=dict(TINY["train"], steps=2))]})
    assert {k: v for k, v in params.items() if k != "overrides"} == plain[0]
    assert rows["run_key"].tolist() != [run_key(plain[0])]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["params"]["spec"]["overrides"] == {"seeds": [1], "train.steps": 2}
    assert not list((sandbox / "results").iterdir())  # nothing in the book's folder


@needs_data
@private
def test_smoke_runs_with_set_go_to_a_table_apart_from_the_spec_s_own(sandbox, capsys):
    (sandbox / "spec.json").write_text(json.dumps(spec(ns=[20], distances=[15.0], seeds=[0])))
    rc, out, err = run_cli(capsys, "grid", "--spec", str(sandbox / "spec.json"), "--set", "train.steps=2")
    assert rc == 0, err
    smoke = sandbox / "cache" / runner.SMOKE_RESULTS
    apart = runner.default_results_path("grid", "smoke", "airnet_small", overridden=True)
    assert apart.parent == smoke / runner.OVERRIDDEN and str(apart) in out
    assert ResultsStore(apart).frame()["overrides"].tolist() == ["train.steps=2"]
    assert not runner.default_results_path("grid", "smoke", "airnet_small").exists()  # the book's smoke table
