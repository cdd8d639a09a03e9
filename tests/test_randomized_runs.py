"""Randomized runs with the probe: held-out images stored by the run's own rule, in-memory features,
and the randomized model of the cross-compression grid. Toy size on the CPU."""

import numpy as np
import pytest

from storage_scaling import data, experiments, paths
from storage_scaling.compress import budget
from storage_scaling.experiments import inputs, kinds, report
from storage_scaling.learn import learners, probe
from storage_scaling.results import run_key


pytestmark = [
    pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)"),
    pytest.mark.needs_data,
    pytest.mark.usefixtures("private_cache"),
]

PROBE = dict(dataset="cifar10-jpg", model="probe", pool="paper", classes=None, pool_limit=80, test_n=60, effort=7,
             train=dict(centroids=16, kmeans_samples=4000, kmeans_iters=5, batch_size=32, penalty_per_decade=1))
# zero_below=3: part of each set keeps its original files, so the pixels come from two stores
RANDOMIZED = dict(PROBE, allocations=[[16_000, 40]], seeds=[0], size_grid_step=1.0, range_start=0.5,
                  range_end=15.0, rank_seed=2024, zero_below=3.0)


def training_and_validation(block, name="randomized"):
    run = experiments.build_runs(name, {"datasets": [block]})[0]
    experiment = experiments.get(run["experiment"])
    plan = experiment.plan(run)
    return run, plan, experiment.training_set(run, plan)


def test_randomized_held_out_images_follow_the_runs_rule():
    run, plan, training = training_and_validation(RANDOMIZED)
    s = training.storage
    # the training images: the fitted range, per-image distances by rank, originals below 3
    ranks = budget.permutation_ranks(run["n"], run["rank_seed"])
    assert np.array_equal(training.entry.settings, budget.randomized_distances(ranks, s["d_min"], s["d_max"], 3.0))
    val = training.validation()
    held = data.eval_set("cifar10-jpg", "val", None, 60, "paper")
    # the held-out 20 % of the train split (ids name files within a split): never a test image,
    # never one of the pool the training subsets are drawn from
    assert held.split == "train" and list(val.entry.ids) == list(held.ids) and np.array_equal(val.labels, held.labels)
    assert not set(val.entry.ids) & set(data.pool("cifar10-jpg", "paper").ids)
    # the same rule: the training's fitted range, its own (derived, reproducible) ranks, zero below 3
    d = val.entry.settings
    expected = budget.randomized_distances(budget.validation_ranks(len(held), 2024), s["d_min"], s["d_max"], 3.0)
    assert np.array_equal(d, expected)
    assert not np.array_equal(budget.validation_ranks(len(held), 2024), budget.permutation_ranks(len(held), 2024))
    lossy = d > 0
    assert 0 < lossy.sum() < len(d)  # both parts present: an in-memory assembly
    assert isinstance(val.entry, inputs.InMemory)
    assert (d[lossy] >= s["d_min"] - 1e-12).all() and (d[lossy] <= s["d_max"] + 1e-12).all() and (d[lossy] >= 3).all()
    assert s["val_mean_distance"] == pytest.approx(d.mean()) and s["val_n_kept_original"] == int((~lossy).sum())
    # each image is stored as its distance says: the original file, or JPEG XL at d_i
    assert np.array_equal(val.entry.sizes[~lossy], held.stored_bytes[~lossy])
    k_kept, k_lossy = np.flatnonzero(~lossy)[0], np.flatnonzero(lossy)[0]
    original = inputs.compress(held.subset([k_kept]), "original")
    alone = inputs.compress(held.subset([k_lossy]), "jxl", float(d[k_lossy]))
    assert np.array_equal(val.pixels()[k_kept], original.pixels()[0])
    assert np.array_equal(val.pixels()[k_lossy], alone.pixels()[0]) and val.entry.sizes[k_lossy] == alone.sizes[0]


def test_in_memory_features_match_the_stores_and_are_not_cached():
    run, _, training = training_and_validation(RANDOMIZED)
    val = training.validation()
    assert np.shares_memory(val.pixels(), val.entry.array)  # handed to the feature map without a copy
    model = learners.Probe()
    config = model.config(run).validate(val.pixels().shape[1:])
    dictionary = probe.dataset_dictionary("cifar10-jpg", config, limit=60, progress=False)
    folder = paths.cache_dir() / "probe" / "features"
    before = set(folder.rglob("*.npy")) if folder.exists() else set()
    x = learners.probe_features(val, config, dictionary, "cifar10-jpg")
    assert (set(folder.rglob("*.npy")) if folder.exists() else set()) == before  # no store: nothing cached
    assert x.dtype == np.float16 and np.isfinite(x).all() and x.shape == (60, config.num_features())
    held, d = inputs.held_out_images(run), val.entry.settings
    for where, entry in ((np.flatnonzero(d == 0), None), (np.flatnonzero(d > 0), "jxl")):
        store = (inputs.compress(held.subset(where), "original") if entry is None
                 else inputs.compress(held.subset(where), "jxl", d[where]))
        cached = learners.probe_features(inputs.ImagesAt(store, held.labels[where]), config, dictionary, "cifar10-jpg")
        assert np.array_equal(cached, x[where])  # float16 rows identical to the per-store cached features


def test_probe_runs_randomized_blocks_end_to_end(tmp_path):
    spec = {"datasets": [RANDOMIZED, dict(RANDOMIZED, zero_below="auto")]}
    r = experiments.run_experiment("randomized", "smoke", tmp_path / "r.csv", spec, progress=False)
    assert len(r) == 2 and set(r["model"]) == {"probe"}
    assert (r["total_bytes"] <= r["budget"]).all() and (r["budget_fill"] > 0.97).all()
    assert (r["n_val"] == 60).all() and r["penalty"].gt(0).all() and r["val_error"].between(0, 1).all()
    assert (r["error"] + r["accuracy"]).round(12).eq(1).all()
    # the held-out images used the run's fitted range: their mean distance lies inside it
    kept = r["val_n_kept_original"] / r["n_val"]
    lossy_mean = r["val_mean_distance"] / (1 - kept)
    assert (lossy_mean >= r["d_min"]).all() and (lossy_mean <= r["d_max"]).all()


CROSS = dict(PROBE, n=60, distances=["original", 15.0, "randomized"], test_distances=["original", 15.0],
             range_start=0.5, range_end=15.0, rank_seed=2024, seeds=[0])


def test_cross_randomized_model_is_scored_at_every_test_format(tmp_path):
    c = experiments.run_experiment("cross", "smoke", tmp_path / "c.csv", {"datasets": [CROSS]}, progress=False)
    assert len(c) == 3 * 2
    rnd = c[c["codec"] == kinds.RANDOMIZED_CODEC]
    assert len(rnd) == 2 and set(rnd["test_codec"]) == {"original", "jxl"} and rnd["distance"].isna().all()
    assert (rnd["range_start"] == 0.5).all() and (rnd["range_end"] == 15.0).all() and rnd["penalty"].nunique() == 1
    # every image at its own distance, rank-ordered over the whole range: mean near the middle
    ranks = np.arange(1, 61)
    assert rnd["mean_distance"].iloc[0] == pytest.approx(np.mean(0.5 + (1 - ranks / 60) * 14.5))
    fixed = c[c["codec"] != kinds.RANDOMIZED_CODEC].groupby("codec")["mean_bytes"].first()
    assert fixed["jxl"] < rnd["mean_bytes"].iloc[0] < fixed["original"]
    assert rnd["val_mean_distance"].between(0.5, 15).all() and (rnd["val_n_kept_original"] == 0).all()
    # the report shows it as one more training row, last, at every test format
    heat = report.cross_summary(c)
    label = "randomized d=0.5-15"
    assert set(heat[heat["train"] == label]["test"]) == {"original", "d=15"}
    assert set(heat[heat["scheme"] == "randomized"]["train"]) == {label}
    matrix, train_bytes, _ = report.cross_matrix(heat, "cifar10-jpg", "probe")
    assert list(matrix.index) == ["original", "d=15", label] and matrix.notna().all().all()


def test_cross_randomized_keeps_the_other_rows_identity_and_checks_its_keys():
    fixed = dict(CROSS, distances=["original", 15.0])
    for k in ("range_start", "range_end", "rank_seed"):
        fixed.pop(k)
    old = {run_key(r) for r in experiments.build_runs("cross", {"datasets": [fixed]})}
    new = experiments.build_runs("cross", {"datasets": [CROSS]})
    assert old == {run_key(r) for r in new if r["codec"] != kinds.RANDOMIZED_CODEC}
    _, _, training = training_and_validation(dict(CROSS, distances=["randomized"]), "cross")
    d = training.entry.settings  # one store: every image compressed, at its own distance
    assert np.array_equal(d, budget.randomized_distances(budget.permutation_ranks(60, 2024), 0.5, 15.0))
    with pytest.raises(ValueError, match="add 'randomized' to its 'distances'"):
        experiments.build_runs("cross", {"datasets": [dict(fixed, range_end=10.0)]})
    with pytest.raises(ValueError, match="randomized range"):
        experiments.build_runs("cross", {"datasets": [dict(CROSS, range_start=4.0, range_end=2.0)]})
    with pytest.raises(ValueError, match="test distance 'randomized'"):
        experiments.build_runs("cross", {"datasets": [dict(CROSS, test_distances=["randomized"])]})
