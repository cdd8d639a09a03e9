"""The blog's experiment (``blog``): one budget, the whole pool at d = 10; at each format the largest
prefix of the nested order that fits; end to end at toy size for the probe and a small network,
its summary, and its bad inputs."""

import numpy as np
import pandas as pd
import pytest

from storage_scaling import data, experiments, paths
from storage_scaling.compress import store
from storage_scaling.experiments import report
from storage_scaling.learn import train


NO_DATA = paths.data_root() is None
NEEDS = "needs ../shared/data (offline data packs)"

TINY = dict(dataset="cifar10-jpg", pool="paper", pool_limit=80, test_n=60, effort=7, seeds=[0])
PROBE = dict(TINY, model="probe", train=dict(centroids=16, kmeans_samples=4000, kmeans_iters=5, batch_size=32,
                                             penalty_per_decade=1))
NET = dict(TINY, model="airnet_small", train=dict(steps=3, batch_size=16, tta=0, eval_batch_size=100))


def brute_force_count(sizes_in_order, budget) -> int:
    """Images taken one by one in order until the next one would overflow the budget."""
    total, count = 0, 0
    for s in sizes_in_order:
        if total + int(s) > budget:
            break
        total, count = total + int(s), count + 1
    return count


def check_counts(frame: pd.DataFrame, budget_distance: float) -> None:
    """The blog's rule, recomputed from the stores: the budget, the counts, the pool at its end."""
    pool = data.pool("cifar10-jpg", "paper", None, 80)
    budget = int(store.compress(pool, codec="jxl", setting=budget_distance, effort=7, progress=False).sizes.sum())
    assert (frame["budget"] == budget).all()
    assert (frame["total_bytes"] <= budget).all() and (frame["pool_size"] == len(pool)).all()
    for row in frame.itertuples():
        order = data.nested_order(pool.labels, int(row.seed))
        if row.codec == "original":
            sizes = pool.stored_bytes
        else:
            sizes = store.compress(pool, codec="jxl", setting=float(row.distance), effort=7, progress=False).sizes
        assert row.n == brute_force_count(np.asarray(sizes)[order], budget), (row.codec, row.distance)
        assert row.pool_exhausted == (row.n == len(pool))
    # at the budget's own distance the whole pool fits exactly: no image lost to rounding
    at_budget = frame[frame["distance"] == budget_distance]
    assert len(at_budget) and (at_budget["n"] == len(pool)).all() and (at_budget["total_bytes"] == budget).all()
    assert at_budget["pool_exhausted"].all()


@pytest.mark.skipif(NO_DATA, reason=NEEDS)
@pytest.mark.needs_data
def test_blog_with_the_probe_keeps_more_images_as_distance_grows(tmp_path, private_cache, monkeypatch):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("the probe never calls the trainer"))
    spec = {"datasets": [dict(PROBE, distances=["original", 2.0, 6.0, 10.0])]}
    frame = experiments.run_experiment("blog", "smoke", tmp_path / "blog.csv", spec, progress=False)
    assert len(frame) == 4 and set(frame["experiment"]) == {"blog"}
    check_counts(frame, 10.0)
    order = frame.assign(d=frame["distance"].fillna(0.0)).sort_values("d")
    assert order["n"].is_monotonic_increasing and order["n"].iloc[0] < order["n"].iloc[1]  # original < d=2
    # the same classifier fit everywhere, its penalty chosen on held-out images stored like the run's
    assert (frame["n_train"] == frame["n"]).all() and (frame["n_val"] > 0).all()
    assert frame["probe_centroids"].nunique() == 1
    summary = report.blog_summary(frame)
    assert list(summary["format"]) == ["original", "d=2", "d=6", "d=10"]
    assert summary["n_ratio"].iloc[-1] == pytest.approx(80 / summary["n"].iloc[0])


@pytest.mark.skipif(NO_DATA, reason=NEEDS)
@pytest.mark.needs_data
def test_blog_with_a_network_trains_every_format_for_the_same_steps(tmp_path, private_cache):
    spec = {"datasets": [dict(NET, budget_distance=6.0, distances=["original", 6.0, 10.0], seeds=[0, 1])]}
    frame = experiments.run_experiment("blog", "smoke", tmp_path / "blog.csv", spec, progress=False)
    assert len(frame) == 6 and set(frame["model"]) == {"airnet_small"}
    check_counts(frame, 6.0)
    assert (frame.loc[frame["distance"] == 10.0, "n"] == 80).all()  # past the budget's distance: the pool runs out
    assert set(frame["steps"]) == {3}  # the blog's rule: the same number of steps at every format
    assert frame.groupby("distance", dropna=False)["n"].nunique().max() <= 2  # seeds may differ by an image
    # a resumed call trains nothing
    again = experiments.run_experiment("blog", "smoke", tmp_path / "blog.csv", spec, progress=False)
    assert list(again["run_key"]) == list(frame["run_key"])


@pytest.mark.skipif(NO_DATA, reason=NEEDS)
@pytest.mark.needs_data
@pytest.mark.parametrize("bad,match", [
    (dict(budget_distanse=10.0), r"did you mean 'budget_distance'"),
    (dict(budget_distance="original"), "budget_distance of .* got 'original'"),
    (dict(budget_distance=30.0), r"must be a JPEG XL distance in .* got 30.0"),
    (dict(distances=[]), "needs 'distances'"),
    (dict(distances=["origin"]), "'origin' must be a number or 'original'"),
    (dict(distances=[2.0, 2.0]), "same run twice"),
    (dict(budgets=[1000]), r"unknown key\(s\) \['budgets'\]"),
    (dict(train=dict(NET["train"], protocol="fixed_epochs", epochs=1)), "same number of steps"),
])
def test_bad_blog_blocks_are_refused_before_any_work(bad, match, tmp_path, private_cache, monkeypatch):
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("training started"))
    block = dict(NET, distances=["original", 10.0], **{k: v for k, v in bad.items() if k != "distances"})
    if "distances" in bad:
        block["distances"] = bad["distances"]
    with pytest.raises(ValueError, match=match):
        experiments.run_experiment("blog", "smoke", tmp_path / "x.csv", {"datasets": [block]}, progress=False)
    assert not (tmp_path / "x.csv").exists()


def test_the_shipped_blog_specs_follow_the_blog():
    for profile in ("smoke", "full"):
        spec = experiments.default_spec("blog", profile)
        for block in spec["datasets"]:
            assert block["distances"] == ["original", 2.0, 4.0, 6.0, 8.0, 10.0]
            assert block.get("budget_distance", 10.0) == 10.0
    full = experiments.default_spec("blog", "full")
    grid = experiments.default_spec("grid", "full")
    for block in full["datasets"]:
        if block["model"] == "probe":  # the grid's probe settings, so its cached features are reused
            same = [g for g in grid["datasets"] if (g["dataset"], g["model"]) == (block["dataset"], "probe")]
            assert same and same[0]["train"] == block["train"] and block["seeds"] == [0, 1, 2]
            assert all(same[0].get(k) == block.get(k) for k in ("pool", "effort", "classes", "pool_limit", "test_n"))


# ---------------------------------------------------------------------------------------------
# The summary (no data needed)


def blog_rows():
    rows = []
    for model, shift in (("probe", 0.0), ("airnet", 0.3)):
        for fmt, d, n in (("original", np.nan, 100), ("jxl", 4.0, 300), ("jxl", 10.0, 560)):
            for seed, noise in ((0, -0.01), (1, 0.02)):
                acc = shift + 0.3 + 0.0002 * n + noise
                rows.append(dict(dataset="food101-64px", model=model, codec=fmt, distance=d, seed=seed,
                                 n=n + seed, budget=50_000.0, mean_bytes=50_000.0 / (n + seed), accuracy=acc,
                                 pool_exhausted=d == 10.0))
    return pd.DataFrame(rows)


def test_blog_summary_counts_gains_and_keeps_models_apart():
    s = report.blog_summary(blog_rows())
    assert len(s) == 2 * 3 and (s["seeds"] == 2).all()
    probe = s[s["model"] == "probe"].set_index("format")
    assert list(probe.index) == ["original", "d=4", "d=10"]  # the original format first, as the blog's d = 0
    assert probe.loc["d=10", "n_ratio"] == pytest.approx(np.mean([560 / 100, 561 / 101]))
    assert probe.loc["d=10", "gain_points"] == pytest.approx(100 * 0.0002 * 460)  # paired over seeds
    assert probe.loc["original", "gain_points"] == 0 and probe.loc["d=10", "pool_exhausted"]
    assert probe.loc["d=4", "accuracy_max"] - probe.loc["d=4", "accuracy_min"] == pytest.approx(0.03)
    airnet = s[s["model"] == "airnet"].set_index("format")
    assert airnet.loc["original", "accuracy"] - probe.loc["original", "accuracy"] == pytest.approx(0.3)


def test_blog_summary_pairs_seeds_and_leaves_a_missing_original_as_nan():
    rows = blog_rows()
    partial = rows[~((rows["codec"] == "original") & (rows["seed"] == 1))]  # seed 1's original not run yet
    probe = report.blog_summary(partial).query("model == 'probe'").set_index("format")
    # only seed 0 has both: the gain is that seed's difference, not a difference of unequal means
    assert probe.loc["d=10", "gain_points"] == pytest.approx(100 * 0.0002 * 460)
    assert probe.loc["d=10", "n_ratio"] == pytest.approx(5.6)
    none = report.blog_summary(rows[rows["codec"] != "original"])
    assert none["gain_points"].isna().all() and none["n_ratio"].isna().all()
    with pytest.raises(ValueError, match="lack column"):
        report.blog_summary(rows.drop(columns=["budget"]))


def test_blog_headline_reads_the_blog_numbers_off_the_summary():
    s = report.blog_summary(blog_rows())
    h = report.blog_headline(s).set_index("model")
    assert list(h.index) == ["airnet", "probe"] and (h["seeds"] == 2).all()
    probe = h.loc["probe"]
    assert probe["budget"] == 50_000 and probe["n_original"] == 100.5 and probe["n_at"] == 560.5
    assert probe["ratio"] == pytest.approx(np.mean([560 / 100, 561 / 101]))
    assert probe["gain_points"] == pytest.approx(9.2) and probe["best_format"] == "d=10"
    assert probe["accuracy_at"] - probe["accuracy_original"] == pytest.approx(0.092)
    assert np.isnan(report.blog_headline(s, distance=8.0)["n_at"]).all()  # no such format: NaN, not an error
    no_original = report.blog_headline(report.blog_summary(blog_rows().query("codec != 'original'")))
    assert no_original["n_original"].isna().all() and no_original["best_gain_points"].isna().all()
