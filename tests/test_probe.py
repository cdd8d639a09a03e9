"""The probe: k-means feature map (deterministic, shift-equivariant), the model end to end, its saved
state (the ridge head itself: tests/test_ridge.py)."""

import json

import numpy as np
import pytest

from storage_scaling import paths
from storage_scaling.learn import probe

SMALL = probe.ProbeConfig(patch=4, centroids=8, stride=2, kmeans_samples=600, kmeans_iters=5, batch_size=3)


def smooth_images(n, size=16, seed=0):
    """Random images with spatial structure (blurred noise), uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, size + 4, size + 4, 3))
    blurred = sum(noise[:, i:i + size, j:j + size] for i in range(4) for j in range(4)) / 4
    return np.clip(128 + 40 * blurred, 0, 255).astype(np.uint8)


def stripes(n, size=16, seed=0):
    """Three classes: horizontal stripes, vertical stripes, checkerboard, at random phase and colour."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    r, c = np.mgrid[:size, :size]
    images = []
    for y in labels:
        period, phase = rng.integers(3, 6), rng.integers(0, 6)
        pattern = [(r + phase) // period % 2, (c + phase) // period % 2, ((r + phase) // period + c // period) % 2][y]
        colour = rng.uniform(60, 255, 3)
        image = pattern[..., None] * colour + rng.normal(0, 20, (size, size, 3))
        images.append(np.clip(image, 0, 255))
    return np.stack(images).astype(np.uint8), labels


def test_feature_map_is_deterministic_for_a_seed():
    pixels = smooth_images(20)
    first, again = probe.learn_dictionary(pixels, SMALL), probe.learn_dictionary(pixels, SMALL)
    np.testing.assert_array_equal(first.centroids, again.centroids)
    np.testing.assert_array_equal(first.whiten, again.whiten)
    np.testing.assert_array_equal(probe.extract(pixels, first, SMALL, progress=False),
                                  probe.extract(pixels, again, SMALL, progress=False))
    other = probe.learn_dictionary(pixels, probe.ProbeConfig(**{**vars(SMALL), "seed": 1}))
    assert not np.allclose(other.centroids, first.centroids)


def test_features_have_the_documented_shape_dtype_and_pooling():
    pixels = smooth_images(7, size=17)  # map 7 x 7 at patch 4, stride 2: regions of 3 and 4 rows
    dictionary = probe.learn_dictionary(pixels, SMALL)
    features = probe.extract(pixels, dictionary, SMALL, progress=False)
    assert features.shape == (7, 4 * SMALL.centroids) and features.dtype == np.float16
    act = probe.activation_map(pixels, dictionary, SMALL)
    assert act.shape == (7, 7, 7, SMALL.centroids) and act.min() >= 0
    assert (act > 0).mean() < 0.9  # the triangle switches off the farther-than-average centroids
    edges = probe.region_edges(7, 2)
    quadrant = act[:, edges[1]:, :edges[1]].sum((1, 2))  # region (1, 0)
    np.testing.assert_allclose(features[:, 2 * SMALL.centroids:3 * SMALL.centroids], quadrant, rtol=2e-3)


def test_activation_map_is_shift_equivariant_before_pooling():
    big = smooth_images(2, size=26, seed=3)
    s = SMALL.stride
    dictionary = probe.learn_dictionary(big, SMALL)
    original = probe.activation_map(np.ascontiguousarray(big[:, :20, :20]), dictionary, SMALL)
    shifted = probe.activation_map(np.ascontiguousarray(big[:, s:20 + s, 2 * s:20 + 2 * s]), dictionary, SMALL)
    # the image moved by one stride down and two right: the map moves by one and two positions
    np.testing.assert_allclose(shifted[:, :-1, :-2], original[:, 1:, 2:], rtol=1e-4, atol=1e-4)
    assert not np.allclose(original[:, 1:, 2:], original[:, :-1, :-2], atol=1e-2)  # the map is not flat


def test_probe_model_learns_stripes_and_reports_its_run():
    pixels, labels = stripes(300)
    model = probe.ProbeModel(probe.ProbeConfig(**{**vars(SMALL), "centroids": 32, "kmeans_samples": 2000}))
    fitted = model.fit(pixels[:200], labels[:200], pixels[200:250], labels[200:250], 3, seed=0)
    metrics = fitted.evaluate(pixels[250:], labels[250:])
    assert metrics["accuracy"] >= 0.9 and set(metrics) >= {"accuracy", "error", "f1_macro", "f1_weighted"}
    for key in ("train_seconds", "feature_seconds", "fit_seconds", "penalty", "penalty_at_edge", "val_error"):
        assert key in fitted.info
    params = SMALL.params()
    assert params["probe_centroids"] == 8 and all(np.isscalar(v) for v in params.values())


def test_saved_state_keeps_its_keys_and_rebuilds_the_same_probe():
    """Kept models on disk name their arrays ``dictionary.*`` / ``ridge.*`` and their JSON fields so:
    renaming a field of the dictionary or the ridge head would orphan every saved model."""
    pixels, labels = stripes(120)
    fitted = probe.ProbeModel(SMALL).fit(pixels[:80], labels[:80], pixels[80:100], labels[80:100], 3, seed=0)
    tensors, config = fitted.to_state()
    assert set(tensors) == {"dictionary.mean", "dictionary.whiten", "dictionary.centroids", "ridge.weights",
                            "ridge.bias", "ridge.factors", "ridge.val_errors"}
    assert set(config) == {"probe_config", "dictionary", "ridge", "info"}
    assert set(config["ridge"]) == {"penalty", "penalty_factor", "at_edge", "form"}
    assert set(config["dictionary"]) == {"patch", "config_key"}
    again = probe.FittedProbe.from_state(tensors, json.loads(json.dumps(config)))
    np.testing.assert_array_equal(again.ridge.scores(fitted.features(pixels[100:])),
                                  fitted.ridge.scores(fitted.features(pixels[100:])))
    assert again.evaluate(pixels[100:], labels[100:]) == fitted.evaluate(pixels[100:], labels[100:])


@pytest.mark.parametrize("change, needle", [
    ({"patch": 40}, "patch=40 is larger than the 32x32"),
    ({"centroids": 1}, "centroids=1"),
    ({"stride": 0}, "stride=0"),
    ({"pool_grid": 30}, "pool_grid=30 does not divide the 27x27"),
    ({"whiten_eps": 0.0}, "whiten_eps"),
    ({"norm_eps": -1.0}, "norm_eps"),
    ({"penalty_log10_min": 2.0, "penalty_log10_max": 1.0}, "penalty grid"),
    ({"kmeans_samples": 10}, "kmeans_samples=10"),
    ({"feature_dtype": "int8"}, "feature_dtype"),
])
def test_bad_configs_are_one_line_errors_before_any_work(change, needle, monkeypatch):
    config = probe.ProbeConfig(**{**vars(probe.ProbeConfig(kmeans_samples=2000)), **change})
    with pytest.raises(ValueError) as info:
        config.validate((32, 32, 3))
    assert needle in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setattr(probe, "sample_patches", lambda *a: pytest.fail("work started before validation"))
    with pytest.raises(ValueError, match="invalid probe config"):
        probe.learn_dictionary(np.zeros((2, 32, 32, 3), np.uint8), config)


def test_bad_inputs_name_what_is_wrong():
    dictionary = probe.learn_dictionary(smooth_images(5), SMALL)
    with pytest.raises(ValueError, match="uint8 array of shape"):
        probe.extract(np.zeros((2, 16, 16), np.uint8), dictionary, SMALL)
    with pytest.raises(ValueError, match="does not match the config"):
        probe.extract(smooth_images(2), dictionary, probe.ProbeConfig(**{**vars(SMALL), "centroids": 9}))
    with pytest.raises(ValueError, match=r"training labels must lie in \[0, 3\)"):
        probe.ProbeModel(SMALL).fit(smooth_images(4), np.array([0, 1, 2, 5]), smooth_images(2), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="no probe preset"):
        probe.preset("mnist")


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")
def test_dataset_dictionary_is_learned_from_held_out_images_once(tmp_path, monkeypatch):
    from storage_scaling import data

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    config = probe.ProbeConfig(centroids=4, kmeans_samples=500, kmeans_iters=2)
    first = probe.dataset_dictionary("cifar10-jpg", config, classes=2, limit=40, progress=False)
    cached = list((tmp_path / "probe").rglob("*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(probe, "learn_dictionary", lambda *a: pytest.fail("learned twice"))
    again = probe.dataset_dictionary("cifar10-jpg", config, classes=2, limit=40, progress=False)
    np.testing.assert_array_equal(first.centroids, again.centroids)
    held_out = set(data.eval_set("cifar10-jpg", "val", classes=2).ids)
    assert not held_out & set(data.pool("cifar10-jpg", "paper", classes=2).ids)
