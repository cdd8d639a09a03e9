"""Kept models: tensors and a JSON record on disk, rebuilt to score exactly as the original; a
pickle in the cache is never run, old files are refused in one line, mismatched pairs are not used."""

import functools
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from storage_scaling import atomic
from storage_scaling.experiments import inputs, kept
from storage_scaling.learn import learners, probe
from synthetic_images import FAST, stripes


def run_of(model: str, **extra) -> dict:
    return {"experiment": "grid", "dataset": "toy", "model": model, "n": 64, "seed": 0, "codec": "original",
            "distance": None, "test_codec": "original", "test_distance": None, **extra}


def images(pixels, labels) -> inputs.ImagesAt:
    """Pixels held in memory (no store path: nothing is cached by path)."""
    n = len(pixels)
    return inputs.TrainingSet(inputs.InMemory(pixels, np.arange(n), np.zeros(n), np.ones(n)), labels)


TEST = images(*stripes(50, seed=5))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_SCALING_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@functools.cache
def fit_network(key: str, jpeg_layer: bool = False):
    """What ``fit`` returns for a network trained 3 steps on synthetic stripes (CPU, seconds)."""
    params = {**FAST, "steps": 3, "tta": 2, "jpeg_layer": jpeg_layer}
    return learners.get(key).fit(images(*stripes(64, seed=4)), params, num_classes=2, seed=0, device="cpu")


@pytest.fixture(params=[("airnet_small", False), ("cnn_cpu", False), ("airnet_small", True)],
                ids=["airnet_small", "cnn_cpu", "airnet_small+jpeg_layer"])
def network(request):
    key, jpeg_layer = request.param
    return key, fit_network(key, jpeg_layer)


@pytest.fixture(scope="module")
def fitted_probe():
    """What the probe's ``fit`` returns, built from pixels (the plug-in's ``fit`` needs a dataset's
    held-out images for its dictionary; this one learns it from the training pixels)."""
    config = probe.ProbeConfig(patch=4, centroids=16, stride=2, kmeans_samples=1000, kmeans_iters=5, batch_size=8)
    (x, y), (xv, yv) = stripes(60, seed=0), stripes(30, seed=1)
    fitted = probe.ProbeModel(config).fit(x, y, xv, yv, 2)
    return learners._FittedProbe(fitted, "toy", dict(fitted.info))


def plain_tensor_file(path) -> dict:
    return torch.load(path, weights_only=True)


def test_a_kept_network_scores_exactly_as_the_original(network):
    key, original = network
    run = run_of(key)
    kept.save(run, original)
    stored = plain_tensor_file(kept.path(run))  # a plain dict of tensors, not a pickled object
    assert stored and all(isinstance(t, torch.Tensor) for t in stored.values())
    record = json.loads(kept.record_path(run).read_text())
    assert record["fitted"]["kind"] == "network" and record["training_key"] == kept.training_key(run)
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    again = kept.load(run)
    assert torch.equal(torch.rand(3), expected_draw)  # rebuilding drew nothing from the caller's generator
    assert type(again) is type(original) and again is not original
    assert again.evaluate(TEST) == original.evaluate(TEST)
    assert again.metrics == original.metrics
    x, _ = stripes(50, seed=5)
    assert torch.equal(again.trained.logits(x), original.trained.logits(x))  # to the last bit, with TTA
    assert again.trained.config == original.trained.config


def test_a_kept_probe_scores_exactly_as_the_original(fitted_probe):
    run = run_of("probe")
    kept.save(run, fitted_probe)
    assert set(plain_tensor_file(kept.path(run))) >= {"dictionary.centroids", "ridge.weights"}
    again = kept.load(run)
    assert type(again) is type(fitted_probe) and again is not fitted_probe
    assert again.evaluate(TEST) == fitted_probe.evaluate(TEST)
    x, _ = stripes(50, seed=5)
    features = again.fitted.features(x)
    assert np.array_equal(features, fitted_probe.fitted.features(x))
    assert np.array_equal(again.fitted.ridge.scores(features), fitted_probe.fitted.ridge.scores(features))
    assert again.fitted.ridge.summary() == fitted_probe.fitted.ridge.summary()
    assert again.fitted.config == fitted_probe.fitted.config and again.metrics == fitted_probe.metrics


class Planted:
    """A pickle that creates ``marker`` when it is unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def refusal(excinfo, target) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and str(target) in message and f"rm {target}" in message
    assert "cannot be loaded safely" in message and "delete it" in message
    return message


@pytest.mark.parametrize("record", ["none", "forged to match"])
def test_a_planted_pickle_is_never_run(record, tmp_path):
    run, marker = run_of("airnet_small"), tmp_path / "ran"
    target = kept.path(run)
    atomic.write_with(target, lambda f: torch.save(Planted(marker), f))
    if record == "forged to match":  # even a record that agrees with it does not make it loadable
        atomic.write_text(kept.record_path(run), json.dumps({
            "format": kept.FORMAT, "training_key": kept.training_key(run),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(), "fitted": {"kind": "network"}}))
    with pytest.raises(ValueError) as excinfo:
        kept.load(run)
    refusal(excinfo, target)
    assert not marker.exists()


def test_an_old_pickled_model_is_refused_with_one_line_that_says_to_delete_it():
    original = fit_network("airnet_small")
    run = run_of("airnet_small")
    target = kept.path(run)
    atomic.write_with(target, lambda f: torch.save(original, f))  # what the previous version wrote
    with pytest.raises(ValueError) as excinfo:
        kept.load(run)
    assert "older version" in refusal(excinfo, target)
    kept.save(run, original)  # the grid writes it again: then it is kept
    assert kept.load(run).evaluate(TEST) == original.evaluate(TEST)


def _replace_tensors(run, other):
    atomic.write_with(kept.path(run), lambda f: torch.save({"model.head.weight": torch.zeros(2, 32)}, f))


def _truncate_tensors(run, other):
    data = kept.path(run).read_bytes()
    atomic.write_bytes(kept.path(run), data[: len(data) // 2])


def _take_another_runs_pair(run, other):
    for name in (kept.path, kept.record_path):
        shutil.copy(name(other), name(run))


def _record_another_kind(run, other):
    record = json.loads(kept.record_path(run).read_text())
    record["fitted"]["kind"] = "probe"
    atomic.write_text(kept.record_path(run), json.dumps(record))


def _record_another_format(run, other):
    record = json.loads(kept.record_path(run).read_text())
    record["format"] = kept.FORMAT + 1
    atomic.write_text(kept.record_path(run), json.dumps(record))


def _lose_the_tensors(run, other):  # a save interrupted between the record and the tensors
    kept.path(run).unlink()


@pytest.mark.parametrize("change", [_replace_tensors, _truncate_tensors, _take_another_runs_pair,
                                    _record_another_kind, _record_another_format, _lose_the_tensors],
                         ids=lambda f: f.__name__.strip("_"))
def test_tensors_that_disagree_with_their_record_are_not_kept(change):
    original = fit_network("airnet_small")
    run, other = run_of("airnet_small"), run_of("airnet_small", seed=1)
    kept.save(run, original)
    kept.save(other, original)
    assert kept.path(run).is_file() and kept.record_path(run).is_file()  # a pair: tensors and their record
    change(run, other)
    assert kept.load(run) is None  # not kept: the run trains its own model
    assert kept.load(other) is not None  # the other run's pair is untouched and still agrees
