"""The trainer on CPU: learning happens, determinism, protocols, metrics and input checks."""

import dataclasses

import numpy as np
import pytest

from storage_scaling import threads
from storage_scaling.learn import train
from synthetic_images import FAST, stripes


def test_few_steps_lower_the_loss_and_beat_chance():
    x, y = stripes(256, seed=0)
    xt, yt = stripes(200, seed=1)
    cfg = train.recipe("airnet_small", steps=40, **FAST)
    r = train.train(x, y, xt, yt, cfg, seed=0)
    assert r.steps == 40 and len(r.losses) == 40
    assert r.losses[-5:].mean() < 0.75 * r.losses[:5].mean()
    assert r.accuracy >= 0.8  # chance is 0.5
    assert r.error == pytest.approx(1 - r.accuracy)
    assert 0 < r.f1_macro <= 1 and r.train_seconds > 0 and r.images_per_second > 0


def test_same_seed_same_result_other_seed_differs():
    x, y = stripes(96, seed=2)
    xt, yt = stripes(64, seed=3)
    cfg = train.recipe("airnet_small", steps=6, **FAST)
    a = train.train(x, y, xt, yt, cfg, seed=5)
    b = train.train(x, y, xt, yt, cfg, seed=5)
    c = train.train(x, y, xt, yt, cfg, seed=6)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.accuracy == b.accuracy and a.f1_macro == b.f1_macro
    assert not np.array_equal(a.losses, c.losses)


def test_protocols_and_step_rule():
    assert train.steps_for_pool(60_567, 512) == 1183  # >= 10 epochs at the largest n
    cfg = train.recipe("airnet_small", protocol="fixed_epochs", epochs=2, batch_size=32)
    assert train.resolve_budget(cfg, 100) == (7, 7 * 32 / 100)
    cfg = train.recipe("airnet_small", steps=50, batch_size=32)
    steps, epochs = train.resolve_budget(cfg, 800)
    assert steps == 50 and epochs == pytest.approx(2.0)
    # the recipe's lr is rescaled with the batch size unless given
    assert train.recipe("resnet18_64", steps=1, batch_size=256).lr == pytest.approx(0.2)
    assert train.recipe("resnet18_64", steps=1, batch_size=256, lr=0.3).lr == 0.3


def test_keep_model_evaluates_other_test_sets_and_small_n():
    x, y = stripes(20, seed=4)  # n smaller than the batch: batches span epochs
    xt, yt = stripes(50, seed=5)
    r = train.train(x, y, xt, yt, train.recipe("airnet_small", steps=3, **FAST), seed=0, keep_model=True)
    again = r.trained.evaluate(xt, yt)
    assert again["accuracy"] == pytest.approx(r.accuracy)
    flipped = r.trained.evaluate(xt, yt, tta=2)
    assert 0 <= flipped["accuracy"] <= 1


@pytest.mark.parametrize("bad,match", [
    (dict(images=np.zeros((4, 8, 8, 3), np.float32)), "uint8"),
    (dict(images=np.zeros((4, 8, 8), np.uint8)), "shape"),
    (dict(labels=np.array([0, 1, 0])), "4 images but 3 labels"),
    (dict(labels=np.array([0, 1, 0, 5]), num_classes=2), r"labels must lie in \[0, 2\)"),
    (dict(config=dict(network="nope")), "unknown network"),
    (dict(config=dict(protocol="fixed_steps", steps=None)), "needs steps"),
    (dict(config=dict(protocol="fixed_epochs", epochs=None, steps=None)), "needs epochs"),
    (dict(config=dict(schedule="wavy")), "schedule"),
    (dict(config=dict(steps=0)), "needs steps >= 1"),
    (dict(config=dict(cpu_precision="fp8")), "cpu_precision must be one of"),
    (dict(config=dict(threads=0)), "threads must be a positive integer"),
    (dict(config=dict(threads=threads.cores() + 1)), f"more than the {threads.cores()} cores"),
    (dict(config=dict(steps=100, cpu_max_images=1000)), r"100 steps x batch .* cap of 1,000"),
])
def test_bad_inputs_raise_before_training(bad, match, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("work started")
    monkeypatch.setattr(train.models, "create", fail)
    images = bad.get("images", np.zeros((4, 8, 8, 3), np.uint8))
    labels = bad.get("labels", np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match=match):
        cfg = dataclasses.replace(train.recipe("airnet_small", steps=2), **bad.get("config", {}))
        train.train(images, labels, config=cfg, num_classes=bad.get("num_classes"))


def test_unsupported_cpu_autocast_is_refused_before_training(monkeypatch):
    import torch

    cpu = torch.device("cpu")
    assert train.cpu_autocast_problem("fp32") is None and train.cpu_autocast_problem("auto") is None
    monkeypatch.setattr(train, "cpu_autocast_problem", lambda p: f"cpu_precision={p!r}: no support here")
    monkeypatch.setattr(train.models, "create", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
    x, y = stripes(8, seed=0)
    with pytest.raises(ValueError, match="cpu_precision='bf16': no support"):
        train.train(x, y, config=train.recipe("cnn_cpu", steps=2, cpu_precision="bf16"), device="cpu")
    assert train.autocast_precision(cpu, train.recipe("cnn_cpu", steps=1)) == "fp32"  # auto falls back
    monkeypatch.setattr(train, "cpu_autocast_problem", lambda p: None)
    assert train.autocast_precision(cpu, train.recipe("cnn_cpu", steps=1)) == "bf16"
    assert train.autocast_precision(cpu, train.recipe("cnn_cpu", steps=1, cpu_precision="fp32")) == "fp32"


def test_cpu_autocast_and_threads_take_effect_and_are_restored():
    import torch

    x, y = stripes(64, seed=7)
    before = torch.get_num_threads()
    if train.cpu_autocast_problem("bf16") is None:
        cfg = train.recipe("cnn_cpu", steps=4, cpu_precision="bf16", threads=1, **FAST)
        with train._autocast(torch.device("cpu"), cfg):
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
        r = train.train(x, y, x, y, cfg, seed=0, device="cpu")
        assert np.isfinite(r.losses).all() and r.precision == "bf16"
    with train._autocast(torch.device("cpu"), train.recipe("cnn_cpu", steps=1, cpu_precision="fp32")):
        assert not torch.is_autocast_enabled("cpu")
    train.train(x, y, config=train.recipe("cnn_cpu", steps=2, threads=1, **FAST), device="cpu")
    assert torch.get_num_threads() == before


def test_cnn_cpu_learns_stripes():
    x, y = stripes(256, seed=0)
    xt, yt = stripes(200, seed=1)
    r = train.train(x, y, xt, yt, train.recipe("cnn_cpu", steps=40, **FAST), seed=0, device="cpu")
    assert r.accuracy >= 0.8 and r.losses[-5:].mean() < 0.75 * r.losses[:5].mean()


def test_choose_protocol_picks_smallest_stable_budget():
    rows = []
    # errors at steps S: small n improves until 400, large n until 800; lr 0.5 is always best
    err = {(100, 10): 0.60, (100, 1000): 0.50, (200, 10): 0.55, (200, 1000): 0.40,
           (400, 10): 0.52, (400, 1000): 0.33, (800, 10): 0.515, (800, 1000): 0.325,
           (1600, 10): 0.512, (1600, 1000): 0.322}
    for (s, n), e in err.items():
        rows.append(dict(steps=s, n=n, lr=0.5, error=e))
        rows.append(dict(steps=s, n=n, lr=1.0, error=e + 0.02))
    choice = train.choose_protocol(rows)
    assert choice["steps"] == 400 and choice["lr"] == 0.5 and choice["converged"]
