"""Every experiment end to end at toy size on the CPU, resume after an interrupt, early errors."""

import copy
import json

import pandas as pd
import pytest
import torch

from storage_scaling import experiments, paths
from storage_scaling.learn import train
from storage_scaling.results import ResultsStore


pytestmark = [
    pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)"),
    pytest.mark.needs_data,
    pytest.mark.usefixtures("private_cache"),
]

TINY = dict(dataset="cifar10-jpg", model="airnet_small", pool="paper", classes=None, pool_limit=80,
            test_n=60, effort=7, train=dict(steps=3, batch_size=16, tta=0, eval_batch_size=100))


def spec(**extra):
    return {"datasets": [dict(TINY, **extra)]}


def test_grid_rows_have_every_column(tmp_path):
    path = tmp_path / "training_grid.csv"
    s = spec(ns=[20, 40], distances=[2.0, 15.0], seeds=[0])
    frame = experiments.run_experiment("grid", "smoke", results_path=path, spec=s, progress=False)
    assert len(frame) == 4
    for column in ("experiment", "dataset", "n", "distance", "mean_bytes", "total_bytes", "budget", "seed",
                   "protocol", "steps", "epochs", "network", "error", "accuracy", "f1_macro",
                   "train_seconds", "images_per_second", "code_version", "device", "finished_at"):
        assert column in frame.columns, column
    assert set(frame["n"]) == {20, 40} and set(frame["distance"]) == {2.0, 15.0}
    # the heavier compression stores fewer bytes per image, and L is measured, not assumed
    by_d = frame.groupby("distance")["mean_bytes"].mean()
    assert by_d[15.0] < by_d[2.0]
    row = frame.iloc[0]
    assert row["total_bytes"] == pytest.approx(row["mean_bytes"] * row["n"])
    assert row["epochs"] == pytest.approx(row["steps"] * row["batch_size"] / row["n"])
    # scores are counts over the 60 test images: error + accuracy = 1, accuracy = k / 60
    assert (frame["n_test"] == 60).all()
    assert (frame["error"] + frame["accuracy"]).round(12).eq(1).all()
    assert ((frame["accuracy"] * 60).round(9) % 1 == 0).all()
    # nested subsets: n=20 lies inside n=40 (same seed) -- checked through the planner
    run20 = experiments.build_runs("grid", s)[0]
    run40 = [r for r in experiments.build_runs("grid", s) if r["n"] == 40][0]
    small, large = (set(experiments.get(r["experiment"]).plan(r)["indices"]) for r in (run20, run40))
    assert small <= large


def test_runner_resumes_after_interrupt_without_duplicates(tmp_path, monkeypatch):
    path = tmp_path / "grid.csv"
    s = spec(ns=[20], distances=[4.0, 15.0], seeds=[0, 1])
    real_train = train.train
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interrupt in the third run")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(train, "train", flaky)
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment("grid", "smoke", results_path=path, spec=s, progress=False)
    first = ResultsStore(path).frame()
    assert len(first) == 2  # two finished, the interrupted one left no row
    monkeypatch.setattr(train, "train", real_train)
    frame = experiments.run_experiment("grid", "smoke", results_path=path, spec=s, progress=False)
    table = ResultsStore(path).frame()
    assert len(frame) == len(table) == 4
    assert table["run_key"].is_unique
    kept = table.set_index("run_key").loc[first["run_key"], "finished_at"]
    assert list(kept) == list(first["finished_at"])  # finished runs were skipped, not redone
    # a third call has nothing to do
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("should not train"))
    again = experiments.run_experiment("grid", "smoke", results_path=path, spec=s, progress=False)
    assert len(again) == 4


def test_budget_type_experiments_end_to_end(tmp_path):
    budget_spec = spec(budgets=[9_000, 16_000], allocations=[[9_000, 30], [16_000, 40]], seeds=[0],
                       size_grid_step=1.0)
    b = experiments.run_experiment("budget", "smoke", tmp_path / "b.csv", budget_spec, progress=False)
    assert len(b) == 2
    assert (b["total_bytes"] <= b["budget"]).all() and (b["budget_fill"] > 0.97).all()
    assert (b["distance"].between(0.5, 15)).all()

    r_spec = spec(allocations=[[9_000, 30], [16_000, 40]], seeds=[0], size_grid_step=1.0, range_start=0.5,
                  range_end=15.0, rank_seed=2024, zero_below="auto")
    r = experiments.run_experiment("randomized", "smoke", tmp_path / "r.csv", r_spec, progress=False)
    assert (r["total_bytes"] <= r["budget"]).all() and (r["budget_fill"] > 0.97).all()
    assert (r["d_min"] < r["d_max"]).all()

    o = experiments.run_experiment("original", "smoke", tmp_path / "o.csv", spec(budgets=[9_000, 16_000], seeds=[0]),
                                   progress=False)
    assert (o["total_bytes"] <= o["budget"]).all()
    assert (o["n"] < b["n"].to_numpy()).all()  # stored originals: fewer images in the same bytes

    nv = experiments.run_experiment("naive", "smoke", tmp_path / "n.csv",
                                    spec(budgets=[9_000, 60_000], distances=[8.0], seeds=[0]), progress=False)
    assert (nv["total_bytes"] <= nv["budget"]).all()
    assert nv.sort_values("budget")["pool_exhausted"].tolist() == [False, True]  # 80-image pool runs out


def test_cross_select_and_quality_end_to_end(tmp_path):
    c = experiments.run_experiment("cross", "smoke", tmp_path / "c.csv",
                                   spec(n=40, distances=[1.0, 15.0], test_distances=[None, 15.0], seeds=[0]),
                                   progress=False)
    assert len(c) == 4
    # one training per d_train, scored on every test compression
    assert c.groupby("distance")["train_seconds"].nunique().eq(1).all()
    assert set(c["test_codec"]) == {"original", "jxl"}

    sel = experiments.run_experiment("select", "smoke", tmp_path / "s.csv",
                                     spec(ns=[20, 40], step_multipliers=[1, 2], lr_multipliers=[1.0], seeds=[0],
                                          floor_n=8, train=dict(TINY["train"], steps=None)), progress=False)
    assert set(sel["eval_split"]) == {"val"} and sorted(set(sel["steps"])) == [5, 10]
    choice = train.choose_protocol(sel)
    # the rule, recomputed by hand: budget 5 is chosen iff doubling it moves the error at both n
    # by at most one point; otherwise the largest budget (10), flagged as not converged
    err = sel.groupby(["steps", "n"])["error"].mean()
    stable = all(abs(err[(10, n)] - err[(5, n)]) <= 0.01 for n in (20, 40))
    assert choice["steps"] == (5 if stable else 10) and choice["converged"] == stable

    q = experiments.run_experiment("quality", "smoke", tmp_path / "q.csv",
                                   spec(whole_pool="paper", ns=[20], seeds=[0]), progress=False)
    assert set(q["check"]) == {"whole_pool", "doubling"}
    assert sorted(q[q["check"] == "doubling"]["steps"]) == [3, 6]


def test_cross_scores_the_grids_kept_whole_pool_models_without_training(tmp_path, monkeypatch):
    from storage_scaling.experiments import kept

    g = experiments.run_experiment("grid", "smoke", tmp_path / "g.csv", spec(ns=[40, 80], distances=[15.0], seeds=[0]),
                                   progress=False)
    whole = [r for r in experiments.build_runs("grid", spec(ns=[40, 80], distances=[15.0], seeds=[0])) if r["n"] == 80]
    assert kept.path(whole[0]).is_file()  # the whole pool's model is kept; the n = 40 one is not
    assert len(list(kept.path(whole[0]).parent.glob("*.pt"))) == 1
    real_train, trained = train.train, []
    monkeypatch.setattr(train, "train", lambda *a, **k: trained.append(k["config"]) or real_train(*a, **k))
    c = experiments.run_experiment("cross", "smoke", tmp_path / "c.csv",
                                   spec(n=80, distances=[15.0, 4.0], test_distances=[None, 15.0], seeds=[0]),
                                   progress=False)
    assert len(trained) == 1  # only d = 4, which is not a grid cell, is trained
    grid_row = g[g["n"] == 80].iloc[0]
    reused = c[c["distance"] == 15.0]
    assert (reused["model_from"] == grid_row["run_key"]).all()
    assert c[c["distance"] == 4.0]["model_from"].isna().all()  # trained here: no grid row named
    same_test = reused[reused["test_codec"] == "original"].iloc[0]
    assert same_test["accuracy"] == grid_row["accuracy"]  # the grid's very model on the grid's test set
    assert same_test["train_seconds"] == grid_row["train_seconds"]


def test_full_specs_build_and_grid_matches_the_paper_shape():
    runs = experiments.build_runs("grid", experiments.default_spec("grid", "full"))
    cifar = [r for r in runs if r["dataset"] == "cifar10-jpg" and r["model"] == "airnet"]
    assert sorted({r["distance"] for r in cifar if r["codec"] == "jxl"}) == [1.0, 2.0, 4.0, 7.0, 10.0, 15.0]
    assert sum(r["codec"] == "original" and r["distance"] is None for r in cifar) == 6 * 2  # 6 n x 2 seeds
    assert len({r["n"] for r in cifar}) == 6 and max(r["n"] for r in cifar) == 40_000
    # the step budget: every n gets the same steps, >= 10 epochs at the largest n
    assert len({r["steps"] for r in cifar}) == 1
    assert cifar[0]["steps"] * cifar[0]["batch_size"] >= 10 * 40_000


@pytest.mark.parametrize("name,bad,match", [
    ("grid", dict(ns=[81], distances=[1.0], seeds=[0]), "larger than the training pool"),
    ("grid", dict(ns=[20], distances=[30.0], seeds=[0]), "distance 30.0"),
    ("grid", dict(ns=[20], distances=[1.0], seeds=[0], dataset="imagenet"), "unknown dataset"),
    ("grid", dict(ns=[20], distances=[1.0], seeds=[0], model="vgg99"), "unknown model"),
    ("budget", dict(allocations=[[500, 40]], seeds=[0], size_grid_step=1.0), "too small .* largest distance"),
    ("original", dict(budgets=[100], seeds=[0]), "too small for even one"),
    ("randomized", dict(allocations=[[500, 40]], seeds=[0], size_grid_step=1.0, range_start=0.5, range_end=15.0,
                        rank_seed=0, zero_below=None), "cannot fit budget"),
    ("budget", dict(allocations=[[9_000, 500]], seeds=[0]), "larger than the pool"),
])
def test_bad_inputs_raise_before_any_training(name, bad, match, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=match):
        experiments.run_experiment(name, "smoke", tmp_path / "x.csv", spec(**bad), progress=False)
    assert not (tmp_path / "x.csv").exists()


def test_unknown_experiment_and_profile():
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.default_spec("gird", "smoke")
    with pytest.raises(ValueError, match="profiles"):
        experiments.default_spec("grid", "publish")


def test_law_allocation_is_capped_and_recorded(monkeypatch):
    from storage_scaling.experiments import kinds

    monkeypatch.setattr(kinds, "top_quality_mean_bytes", lambda pool, effort: 1000.0)  # bytes at d = 0.5
    monkeypatch.setattr(kinds, "l15_mean_bytes", lambda pool, effort: 100.0)  # bytes at d = 15
    monkeypatch.setattr(kinds, "original_mean_bytes", lambda pool: 1e9)  # originals far above every L*
    law = {"A": 5.0, "alpha": 0.3, "B": 1000.0, "beta": 1.0}
    n_star = lambda s: (0.3 * 5.0 / (1.0 * 1000.0)) ** (1 / 1.3) * s ** (1 / 1.3)  # noqa: E731
    runs = experiments.build_runs("budget", spec(budgets=[1_500, 9_000, 1_000_000], allocation=law, seeds=[0],
                                                 size_grid_step=1.0))
    small, middle, large = sorted(runs, key=lambda r: r["budget"])
    assert 1_500 / round(n_star(1_500)) < 970  # the law's L* is within reach: n*(s) as it is
    assert small["n"] == round(n_star(1_500)) == 2 and not small["allocation_capped"]
    assert small["n_star"] == pytest.approx(n_star(1_500), abs=0.1)
    # L* = s / n* > 970 B (1000 B at d = 0.5, less 3 %): as many images as fill s at d = 0.5
    assert 9_000 / n_star(9_000) > 970
    assert middle["n"] == 10 and middle["allocation_capped"] and middle["n_star"] < 10  # ceil(9000 / 970)
    assert large["n"] == 80 and large["allocation_capped"]  # the 80-image pool caps n*


def test_a_law_whose_optimum_lies_above_the_originals_keeps_the_originals(tmp_path, monkeypatch):
    from storage_scaling import law as law_module
    from storage_scaling.experiments import kinds

    monkeypatch.setattr(kinds, "top_quality_mean_bytes", lambda pool, effort: 1000.0)  # bytes at d = 0.5
    monkeypatch.setattr(kinds, "l15_mean_bytes", lambda pool, effort: 100.0)  # bytes at d = 15
    monkeypatch.setattr(kinds, "original_mean_bytes", lambda pool: 900.0)  # d = 0.5 costs more than the files
    law = {"A": 5.0, "alpha": 0.3, "B": 1000.0, "beta": 1.0}
    fitted = law_module.LawParams(**law)
    assert 1_500 / fitted.n_star(1_500) < 900 < 16_000 / fitted.n_star(16_000)
    block = dict(budgets=[1_500, 16_000], allocation=law, seeds=[0], size_grid_step=1.0)
    small, large = sorted(experiments.build_runs("budget", spec(**block)), key=lambda r: r["budget"])
    assert small["codec"] == "jxl" and "allocation_rule" not in small  # unchanged identity below the originals
    assert large["codec"] == "original" and large["allocation_rule"] == "keep_originals" and "n" not in large
    assert large["allocation_capped"] and large["n_star"] == pytest.approx(fitted.n_star(16_000), abs=0.1)
    # the run trains on the original-format scheme's images: the same rows, the same error
    b = experiments.run_experiment("budget", "smoke", tmp_path / "b.csv", spec(**block), progress=False)
    o = experiments.run_experiment("original", "smoke", tmp_path / "o.csv", spec(budgets=[16_000], seeds=[0]),
                                   progress=False)
    kept = b[b["codec"] == "original"].iloc[0]
    assert kept["n"] == o["n"].iloc[0] and kept["mean_bytes"] == o["mean_bytes"].iloc[0] <= 16_000 / kept["n"]
    assert kept["error"] == o["error"].iloc[0] and kept["within_tolerance"] and pd.isna(kept["distance"])
    # a randomized run at that budget keeps every image original: degenerate, and says so
    r = experiments.run_experiment("randomized", "smoke", tmp_path / "r.csv", spec(**block), progress=False)
    degenerate = r[r["codec"] == "original"].iloc[0]
    assert degenerate["n_kept_original"] == degenerate["n"] == kept["n"] and degenerate["d_max"] == 0
    assert degenerate["error"] == kept["error"]


def test_between_the_largest_jxl_size_and_the_originals_the_law_picks_the_lower_prediction():
    from storage_scaling import law as law_module
    from storage_scaling.experiments import kinds

    flat_in_L = law_module.LawParams(A=5.0, alpha=0.5, B=0.01, beta=1.0)  # n matters, L barely: more images
    steep_in_L = law_module.LawParams(A=0.01, alpha=0.5, B=1e6, beta=2.0)  # L matters: bigger images
    for fitted, expected in ((flat_in_L, False), (steep_in_L, True)):
        # L* between d = 0.5 (600 B) and the originals (900 B): the law compares the two reachable splits
        assert kinds.keep_originals(fitted, 70_000.0, 70_000.0 / 750, 600.0, 900.0, 10_000) is expected
    assert not kinds.keep_originals(steep_in_L, 70_000.0, 70_000.0 / 500, 600.0, 900.0, 10_000)  # reachable: as is
    assert kinds.keep_originals(flat_in_L, 70_000.0, 70_000.0 / 950, 600.0, 900.0, 10_000)  # L* above the files


def test_top_quality_mean_bytes_is_the_mild_end_of_the_size_range():
    from storage_scaling.experiments import kinds

    the_pool = kinds.run_pool(experiments.build_runs("grid", spec(ns=[20], distances=[15.0], seeds=[0]))[0])
    top = kinds.top_quality_mean_bytes(the_pool, 7)
    assert top > kinds.l15_mean_bytes(the_pool, 7) * 2  # d = 0.5 keeps far more bytes than d = 15


def test_full_profile_refuses_to_train_on_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no GPU is available"):
        experiments.run_experiment("grid", "full", tmp_path / "g.csv", spec(ns=[20], distances=[4.0], seeds=[0]),
                                   progress=False)


# ---------------------------------------------------------------------------------------------
# The probe plugs into the runner like a network


PROBE = dict(TINY, model="probe", train=dict(centroids=16, kmeans_samples=4000, kmeans_iters=5, batch_size=32,
                                             penalty_per_decade=1))


def probe_spec(**extra):
    return {"datasets": [dict(PROBE, **extra)]}


def test_probe_runs_every_experiment_it_supports(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("the probe never calls the trainer"))
    g = experiments.run_experiment("grid", "smoke", tmp_path / "g.csv",
                                   probe_spec(ns=[30, 60], distances=["original", 15.0], seeds=[0]), progress=False)
    assert set(g["model"]) == {"probe"} and len(g) == 4
    assert (g["n_train"] == g["n"]).all() and (g["n_val"] > 0).all()
    assert {"penalty", "penalty_at_edge", "val_error", "probe_centroids"} <= set(g.columns)
    assert (g["error"] + g["accuracy"]).round(12).eq(1).all()
    # features are computed once per store (pool at a format, held-out set, test set) and reused
    cached = sorted((paths.cache_dir() / "probe" / "features").glob("*/*.npy"))
    assert len(cached) == 2 * 2 + 1  # two formats x (pool, held-out 20 %), and the test set (original)
    c = experiments.run_experiment("cross", "smoke", tmp_path / "c.csv",
                                   probe_spec(n=60, distances=["original", 15.0], test_distances=["original", 15.0],
                                              seeds=[0]), progress=False)
    assert len(c) == 4 and c.groupby("codec")["penalty"].nunique().eq(1).all()  # one fit per training format
    o = experiments.run_experiment("original", "smoke", tmp_path / "o.csv", probe_spec(budgets=[16_000], seeds=[0]),
                                   progress=False)
    b = experiments.run_experiment("budget", "smoke", tmp_path / "b.csv",
                                   probe_spec(allocations=[[16_000, 40]], seeds=[0], size_grid_step=1.0),
                                   progress=False)
    assert (o["total_bytes"] <= 16_000).all() and (b["total_bytes"] <= 16_000).all() and (b["n"] > o["n"]).all()
    q = experiments.run_experiment("quality", "smoke", tmp_path / "q.csv",
                                   probe_spec(whole_pool="paper", ns=[30], seeds=[0]), progress=False)
    assert list(q["check"]) == ["whole_pool"]  # no step budget to double
    r = experiments.run_experiment("randomized", "smoke", tmp_path / "r.csv",
                                   probe_spec(allocations=[[16_000, 40]], seeds=[0], size_grid_step=1.0),
                                   progress=False)  # its held-out images follow its rule (test_randomized_runs.py)
    assert (r["total_bytes"] <= 16_000).all() and (r["n_val"] > 0).all() and r["val_mean_distance"].notna().all()
    with pytest.raises(ValueError, match="select experiment chooses a network"):
        experiments.build_runs("select", probe_spec(ns=[30], step_multipliers=[1], lr_multipliers=[1.0]))


def test_probe_config_errors_come_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="centroids"):
        experiments.build_runs("grid", {"datasets": [dict(PROBE, ns=[30], distances=[1.0],
                                                          train=dict(centroids=1))]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['centroid'\]"):
        experiments.build_runs("grid", {"datasets": [dict(PROBE, ns=[30], distances=[1.0],
                                                          train=dict(centroid=16))]})


# ---------------------------------------------------------------------------------------------
# Budgets at the paper's placement: s = f x pool x L(15)


def test_budgets_per_l15_are_fractions_of_the_pool_at_the_largest_distance():
    from storage_scaling import data
    from storage_scaling.compress import codecs
    from storage_scaling.experiments import kinds

    the_pool = data.pool("cifar10-jpg", "paper", None, 40)
    for effort in (7, 3):  # the block's effort counts
        l15 = codecs.encode_sizes(the_pool, [15.0], effort=effort, progress=False)[:, 0].mean()  # encoded here
        got = kinds.budget_list({"budgets_per_l15": [0.14, 2.13], "effort": effort}, the_pool)
        assert [s for s, _ in got] == [pytest.approx(f * 40 * l15, abs=0.5) for f in (0.14, 2.13)]
        assert [how for _, how in got] == [{"budget_per_l15": 0.14}, {"budget_per_l15": 2.13}]
    assert kinds.budget_list({"budgets_per_pool_image": [100]}, the_pool) == [(4000.0, {})]
    # every row records s in `budget` and f in `budget_per_l15`; original and naive share one list
    block = dict(TINY, pool_limit=40, budgets_per_l15=[0.5, 1.5], seeds=[0, 1])
    o = experiments.build_runs("original", {"datasets": [block]})
    nv = experiments.build_runs("naive", {"datasets": [dict(block, distances=[3.0, 13.0])]})
    expected = dict(kinds.budget_list(block, the_pool))
    assert len(o) == 4 and len(nv) == 8
    for run in o + nv:
        assert expected[run["budget"]] == {"budget_per_l15": run["budget_per_l15"]}
    assert not experiments.get("original").lists_cheaply(block)  # L(15) needs an encode: no partial table


@pytest.mark.parametrize("bad,match", [
    (dict(budgets_per_l15=[0.5, 0.0]), r"'budgets_per_l15' must all be positive"),
    (dict(budgets_per_l15=[-1]), r"'budgets_per_l15' must all be positive"),
    (dict(budgets_per_l15=[]), r"non-empty list of numbers"),
    (dict(budgets_per_l15="0.5"), r"non-empty list of numbers"),
    (dict(budgets_per_l15=[0.5], budgets=[9_000]), r"exactly one of .*got \['budgets', 'budgets_per_l15'\]"),
    (dict(budgets_per_l15=[0.5], budgets_per_pool_image=[100]), r"exactly one of"),
    (dict(), r"exactly one of .* got none"),
])
@pytest.mark.parametrize("name", ["original", "naive", "budget"])
def test_bad_budgets_per_l15_are_refused_before_any_encode(name, bad, match, monkeypatch):
    from storage_scaling.experiments import kinds

    monkeypatch.setattr(kinds, "compress", lambda *a, **k: pytest.fail("encoded before the budgets were checked"))
    extra = {"naive": dict(distances=[3.0]), "budget": dict(allocation={"A": 1.0, "alpha": 0.1, "B": 1e4,
                                                                        "beta": 2.0})}.get(name, {})
    with pytest.raises(ValueError, match=match):
        experiments.build_runs(name, spec(model="probe", train=PROBE["train"], seeds=[0], **extra, **bad))


def smoke_probe_block(name: str, **shrink) -> dict:
    """The probe block of an experiment's smoke spec, shrunk to the tests' toy pool."""
    (block,) = [b for b in experiments.default_spec(name, "smoke")["datasets"] if b["model"] == "probe"]
    return {"datasets": [dict(block, **shrink)]}


@pytest.mark.parametrize("name", ["original", "naive", "budget", "randomized"])
def test_probe_smoke_blocks_expand(name):
    spec_ = experiments.default_spec(name, "smoke")
    runs = [r for r in experiments.build_runs(name, spec_) if r["model"] == "probe"]
    (block,) = [b for b in spec_["datasets"] if b["model"] == "probe"]
    per_budget = len(block.get("distances", [None])) * len(block["seeds"])
    assert len(runs) == len(block["budgets_per_l15"]) * per_budget
    assert sorted({r["budget_per_l15"] for r in runs}) == sorted(block["budgets_per_l15"])
    if name in ("budget", "randomized"):  # n*(s) of the block's law, below the 400-image pool
        assert all(1 <= r["n"] < 400 and r["n_star"] > 0 for r in runs)


def test_probe_smoke_blocks_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("the probe never calls the trainer"))
    toy = dict(pool_limit=80, test_n=60)
    o = experiments.run_experiment("original", "smoke", tmp_path / "o.csv", smoke_probe_block("original", **toy),
                                   progress=False)
    nv = experiments.run_experiment("naive", "smoke", tmp_path / "n.csv", smoke_probe_block("naive", **toy),
                                    progress=False)
    b = experiments.run_experiment("budget", "smoke", tmp_path / "b.csv", smoke_probe_block("budget", **toy),
                                   progress=False)
    for frame in (o, nv, b):
        assert set(frame["model"]) == {"probe"} and (frame["total_bytes"] <= frame["budget"]).all()
        assert frame["budget_per_l15"].notna().all()
        # one budget per f: s / f is the same bytes (pool x L(15)) for every f
        per_f = frame["budget"] / frame["budget_per_l15"]
        assert per_f.max() - per_f.min() <= 0.5 / frame["budget_per_l15"].min()  # s is rounded to whole bytes
    big = nv[nv["budget_per_l15"] == nv["budget_per_l15"].max()]
    assert big.set_index("distance")["pool_exhausted"].to_dict() == {4.0: False, 15.0: True}
    merged = o.merge(b, on=["budget_per_l15", "seed"], suffixes=("_o", "_b"))
    assert len(merged) == 2 and (merged["n_b"] > merged["n_o"]).all()  # compressed: more images in s


def test_partial_table_of_an_experiment_that_needs_encodes_to_list(tmp_path, monkeypatch):
    """Budget-type runs are listed only by encoding (L(15)); the runner records their keys so the
    book can count a partial table: listed datasets by their keys, the others by their blocks."""
    from storage_scaling.experiments import runner

    blocks = [dict(TINY, model="probe", train=PROBE["train"], pool_limit=40, test_n=40, seeds=[0],
                   budgets_per_l15=[0.5, 1.5]) for _ in range(2)]
    blocks[1]["dataset"] = "food101-64px"  # never run here: counted from its block
    full = {"datasets": blocks}
    real_default = experiments.default_spec
    monkeypatch.setattr(runner.specs, "default_spec",
                        lambda name, profile: copy.deepcopy(full) if (name, profile) == ("original", "full")
                        else real_default(name, profile))
    monkeypatch.setenv("STORAGE_SCALING_RESULTS", str(tmp_path))
    assert runner.committed_rows("original", "probe") is None  # nothing has run
    cifar = {"datasets": [copy.deepcopy(blocks[0])]}
    # the run list is written before any training: a run interrupted in its first fit leaves it
    from storage_scaling.learn import learners

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(learners.Probe, "fit", interrupted)
        with pytest.raises(KeyboardInterrupt):
            experiments.run_experiment("original", "full", spec=cifar, progress=False)
    assert len(json.loads((tmp_path / "training_original_probe.runs.json").read_text())["run_keys"]["cifar10-jpg"]) == 2
    assert runner.committed_rows("original", "probe") is None  # no row yet
    experiments.run_experiment("original", "full", spec=cifar, progress=False)
    listed = json.loads((tmp_path / "training_original_probe.runs.json").read_text())
    assert list(listed["run_keys"]) == ["cifar10-jpg"] and len(listed["run_keys"]["cifar10-jpg"]) == 2
    frame, meta = runner.committed_rows("original", "probe")
    assert len(frame) == 2 and meta["done"] == 2 and meta["total"] == 4  # 2 CIFAR rows of 2 + 2 Food runs
    # every run of the spec is done, so the sidecar is written once; a re-run with nothing left
    # keeps it (its code version and duration are those of the call that did the work) ...
    sidecar = tmp_path / "training_original_probe.json"
    assert sidecar.is_file()
    real_write = runner.tables.write_table
    monkeypatch.setattr(runner.tables, "write_table", lambda *a, **k: pytest.fail("nothing new was recorded"))
    experiments.run_experiment("original", "full", spec=cifar, progress=False)
    # ... unless it is missing
    sidecar.unlink()
    monkeypatch.setattr(runner.tables, "write_table", real_write)
    experiments.run_experiment("original", "full", spec=cifar, progress=False)
    assert sidecar.is_file()
    # a custom spec's runs are not the book's: no run list is written for them
    (tmp_path / "training_original_probe.runs.json").unlink()
    custom = {"datasets": [dict(copy.deepcopy(blocks[0]), seeds=[5])]}
    experiments.run_experiment("original", "full", spec=custom, progress=False)
    assert not (tmp_path / "training_original_probe.runs.json").exists()
    assert runner.committed_rows("original", "probe") is None


def test_runs_spread_over_a_local_dask_cluster_give_the_serial_rows(tmp_path):
    """--workers: the trainings run in two Dask worker processes, the rows come back to this
    process, which alone writes them; every metric equals the serial run's."""
    from storage_scaling.practice import cluster

    s = spec(ns=[20, 40], distances=[4.0, 15.0], seeds=[0])
    serial = experiments.run_experiment("grid", "smoke", results_path=tmp_path / "serial.csv", spec=s,
                                        progress=False)
    with cluster.open_pool(workers=2) as pool:
        assert pool.kind == "dask" and pool.workers == 2
        spread = experiments.run_experiment("grid", "smoke", results_path=tmp_path / "dask.csv", spec=s,
                                            progress=False, pool=pool)
    table = ResultsStore(tmp_path / "dask.csv").frame()
    assert len(spread) == len(serial) == len(table) == 4 and table["run_key"].is_unique
    a = serial.set_index("run_key").sort_index()
    b = spread.set_index("run_key").sort_index()
    assert list(a.index) == list(b.index)
    for column in ("error", "accuracy", "f1_macro", "mean_bytes", "total_bytes", "steps", "n_test"):
        assert a[column].tolist() == b[column].tolist(), column


def test_full_runs_on_a_cluster_without_gpu_workers_are_refused_before_training(tmp_path, monkeypatch):
    from distributed import LocalCluster

    from storage_scaling.practice import cluster

    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("nothing may train"))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        with cluster.open_pool(scheduler=local.scheduler_address) as pool:
            assert pool.remote and not pool.has_resource("GPU")
            with pytest.raises(ValueError, match="--resources GPU=1"):
                experiments.run_experiment("grid", "full", results_path=tmp_path / "g.csv",
                                           spec=spec(ns=[20], distances=[4.0], seeds=[0]), progress=False, pool=pool)


def test_recorded_rows_reads_every_table_without_running_anything(tmp_path):
    store = ResultsStore(experiments.result_path("grid", "probe", tmp_path))
    store.append({"dataset": "cifar10-jpg", "model": "probe", "n": 10, "seed": 0}, {"train_seconds": 1.0})
    store.append({"dataset": "cifar10-jpg", "model": "probe", "n": 20, "seed": 0}, {"train_seconds": 2.0})
    other = ResultsStore(tmp_path / "training_grid_not_in_the_spec.csv")  # a model the spec does not name
    other.append({"dataset": "cifar10-jpg", "model": "not_in_the_spec", "n": 10, "seed": 0}, {"train_seconds": 1.0})
    rows = experiments.recorded_rows("publish", results_dir=tmp_path)
    assert list(rows) == ["grid"] and len(rows["grid"]) == 2 and set(rows["grid"]["model"]) == {"probe"}
    assert experiments.recorded_rows("publish", results_dir=tmp_path / "empty") == {}
