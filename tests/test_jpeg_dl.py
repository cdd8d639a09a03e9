"""The JPEG-DL experiment (chapter 7), an experiment of the runner: rows of a toy run on a pack of
stripes, every knob checked before any work, resuming, the hard-rounding ablation, one attack
scored in both modes, the report's paired differences."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from storage_scaling.experiments import kinds, runner, specs
from storage_scaling.learn import jpeg_dl, jpeg_layer, robustness, train
from synthetic_images import FAST, forget_packs, stripes, use_pack, write_pack

STRIPES = "stripes-32px"  # horizontal against vertical stripes: 192 pool images (80 % of 240), 64 test


@pytest.fixture(scope="module", autouse=True)
def stripes_pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_pack(root, STRIPES, {"train": stripes(240, seed=0), "test": stripes(64, seed=1)}, ("horizontal", "vertical"))
    mp = pytest.MonkeyPatch()
    use_pack(mp, root, STRIPES, "stripes, 32 px", tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("results"))
    yield
    mp.undo()
    forget_packs()


def toy_spec(train_settings=None, **block):
    return {"datasets": [{"dataset": STRIPES, "model": "airnet_small", "pool": "paper", "seeds": [0, 1],
                          "attack_n": 48, "attack_batch": 48, "eps_255": [2, 8],
                          "train": {"steps": 12, "batch_size": 32, "tta": 0, **(train_settings or {})}, **block}]}


def run(spec, table):
    return runner.run_experiment("jpeg_dl", "smoke", results_path=table, spec=spec, progress=False)


def toy_images(n_test=64):
    x, y = stripes(192, seed=0)
    xt, yt = stripes(n_test, seed=1)
    return jpeg_dl.Images(x, y, xt, yt, 2)


def toy_config(**overrides):
    return train.recipe("airnet_small", steps=12, batch_size=32, tta=0, **overrides)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    table = tmp_path_factory.mktemp("jdl") / "units.csv"
    units = run(toy_spec(), table)
    return table, units, jpeg_dl.evaluation_rows(units)


def test_a_run_is_a_seed_and_a_variant_with_every_evaluation_in_its_row(toy_run):
    _, units, frame = toy_run
    assert len(units) == 4 and set(zip(units["seed"], units["variant"])) == {
        (s, v) for s in (0, 1) for v in jpeg_dl.VARIANTS}
    assert (units["jpeg_layer"] == (units["variant"] == "jpeg_dl")).all()
    assert (units["n"] == 192).all() and (units["n_train"] == 192).all() and (units["n_test"] == 64).all()
    clean = frame[(frame["scored_on"] == "test") & frame["eval_mode"].isin(["none", "soft"])]
    assert sorted(clean["accuracy"]) == sorted(units["accuracy"])  # a row's accuracy: clean, as trained
    assert np.allclose(units["accuracy"] + units["error"], 1)


def test_a_toy_run_has_one_row_per_seed_variant_and_evaluation(toy_run):
    _, _, frame = toy_run
    p = jpeg_dl.params("smoke")
    # per seed: baseline 1 test row + (clean + 2 attacks x 2 eps) subset rows; JPEG-DL, per evaluation mode
    # (soft, hard), 1 test row + (clean + 2 attack modes (soft gradient, straight through) x 2 attacks x 2 eps)
    assert len(frame) == 2 * (1 + 5 + 2 * (1 + 1 + 8))
    need = {"seed", "variant", "scored_on", "attack", "attack_mode", "eps_255", "eval_mode", "accuracy", "n_eval",
            "train_seconds", "eval_seconds", "bpp_learned", "bpp_learned_scan", "bpp_standard", "bpp_initial",
            "tables_json", "jpeg_hardness", "jpeg_quality", "jpeg_max_step", "jpeg_lr", "code_version", "device",
            "torch_threads"}
    assert need <= set(frame.columns)
    counts = frame.groupby(["seed", "variant", "eval_mode"]).size().to_dict()
    assert counts == {(s, "baseline", "none"): 6 for s in (0, 1)} | {(s, "jpeg_dl", m): 10 for s in (0, 1)
                                                                      for m in ("soft", "hard")}
    attacked = frame[frame["attack"] != "none"]
    assert set(attacked.loc[attacked["variant"] == "baseline", "attack_mode"]) == {"none"}
    assert set(attacked.loc[attacked["variant"] == "jpeg_dl", "attack_mode"]) == {"soft", "bpda"}
    assert set(frame.loc[frame["scored_on"] == "test", "n_eval"]) == {64}
    assert set(frame.loc[frame["scored_on"] == "attack_subset", "n_eval"]) == {48}
    assert frame["accuracy"].between(0, 1).all() and (frame["train_seconds"] > 0).all()
    jpeg = frame["variant"] == "jpeg_dl"
    assert frame.loc[jpeg, "bpp_learned"].gt(0).all() and frame.loc[~jpeg, "bpp_learned"].isna().all()
    assert frame["bpp_standard"].gt(0).all() and frame["bpp_initial"].gt(0).all() and frame["bpp_stored"].gt(0).all()
    assert frame.loc[jpeg, "bpp_learned_scan"].lt(frame.loc[jpeg, "bpp_learned"]).all()  # headers left out
    # the learned steps: on one row per seed, 64 + 64 positive numbers near their initialisation
    steps = jpeg_dl.learned_steps(frame)
    assert sorted(steps) == [0, 1] and (frame["tables_json"].fillna("") != "").sum() == 2
    init = jpeg_dl.initial_steps(p)
    for s in steps.values():
        assert s.shape == (2, 8, 8) and (s > 0).all() and np.abs(s - init).max() < 3
    # the stripes are learned: the clean accuracy is far above chance for every model
    clean = frame[(frame["scored_on"] == "test") & (frame["attack"] == "none")]
    assert clean["accuracy"].min() > 0.7


def test_attacked_accuracy_never_exceeds_the_clean_accuracy(toy_run):
    _, _, frame = toy_run
    sub = frame[frame["scored_on"] == "attack_subset"]
    for (seed, variant, mode), g in sub.groupby(["seed", "variant", "eval_mode"]):
        clean = g.loc[g["attack"] == "none", "accuracy"].item()
        attacked = g[g["attack"] != "none"]
        assert len(attacked) == 4 * (2 if variant == "jpeg_dl" else 1) and (attacked["accuracy"] <= clean).all(), \
            (seed, variant, mode)
    pgd8 = sub[(sub["attack"] == "pgd") & (sub["eps_255"] == 8)]
    assert (pgd8["accuracy"] < 1).any()  # the attack really attacks (no masked gradient)


def test_a_finished_run_resumes_from_its_table_without_training(toy_run, monkeypatch):
    table, units, frame = toy_run

    def no_training(*args, **kwargs):
        raise AssertionError("a run in the table was trained again")

    monkeypatch.setattr(jpeg_dl, "run_unit", no_training)
    again = jpeg_dl.evaluation_rows(run(toy_spec(), table))
    pd.testing.assert_frame_equal(again, frame)
    # fewer seeds: a subset of the same runs
    one = jpeg_dl.evaluation_rows(run(toy_spec(seeds=[1]), table))
    assert set(one["seed"]) == {1} and len(one) == len(frame) // 2


@pytest.mark.parametrize("block,words", [
    (dict(jpeg_quality=0), "jpeg_quality"), (dict(jpeg_quality=101), "jpeg_quality"),
    (dict(jpeg_hardness=0.0), "jpeg_hardness"), (dict(jpeg_hardness=-2.0), "jpeg_hardness"),
    (dict(jpeg_max_step=0.5), "jpeg_max_step"), (dict(jpeg_lr=0), "jpeg_lr"), (dict(eps_255=[0]), "eps_255"),
    (dict(eps_255=[300]), "eps_255"), (dict(eps_255=[2, 2]), "twice"), (dict(seeds=[]), "seeds"),
    (dict(seeds=[1, 1]), "same run twice"), (dict(model="vgg99"), "vgg99"), (dict(model="probe"), "not one"),
    (dict(attacks=["cw"]), "attack"), (dict(attack_modes=["soft", "guess"]), "attack mode"),
    (dict(dataset="nope"), "nope"), (dict(attack_n=0), "attack_n"), (dict(pool_limit=-3), "pool_limit"),
    (dict(test_n=40), "exceeds its test_n"), (dict(attack_n=65), "exceeds the 64 test images"),
    (dict(colour=1), "unknown.*colour"), (dict(train_settings={"steps": 0}), "steps"),
    (dict(train_settings={"jpeg_lr": 1.0}), "jpeg_"), (dict(train_settings={"protocol": "fixed_epochs"}), "protocol"),
])
def test_every_knob_is_checked_before_any_work(block, words, monkeypatch, tmp_path):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the knobs were checked")

    monkeypatch.setattr(jpeg_dl, "run_unit", no_work)
    monkeypatch.setattr(jpeg_dl, "load_images", no_work)
    monkeypatch.setattr(train, "train", no_work)
    with pytest.raises(ValueError, match=words) as info:
        run(toy_spec(**block), tmp_path / "never.csv")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "never.csv").exists()


def test_a_missing_attack_size_is_named():
    spec = toy_spec()
    del spec["datasets"][0]["attack_n"]
    with pytest.raises(ValueError, match="needs 'attack_n'"):
        specs.check_spec("jpeg_dl", spec)


def test_images_are_checked_before_training():
    x, y = stripes(32)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        jpeg_dl.check_images(jpeg_dl.Images(x[..., :1], y, x, y, 2))
    with pytest.raises(ValueError, match="labels"):
        jpeg_dl.check_images(jpeg_dl.Images(x, y + 5, x, y, 2))
    with pytest.raises(ValueError, match="attack_n"):
        jpeg_dl.attack_indices(y, 33)


def test_the_spec_files_state_every_knob():
    full, smoke = jpeg_dl.params("full"), jpeg_dl.params("smoke")
    assert set(full) == set(smoke)
    assert full["network"] == "cnn_cpu" and full["seeds"] == [0, 1, 2] and full["pool"] == "paper"
    assert full["test_n"] is None and full["attack_n"] == 2000 and full["attack_modes"] == ["soft", "bpda"]
    assert full["eps_255"] == [1, 2, 3, 4] and full["pgd_steps"] == 5 and full["attacks"] == ["fgsm", "pgd"]
    assert full["steps"] == train.recipe("cnn_cpu").steps == 1040  # the CPU CNN recipe's own budget
    assert smoke["network"] == "airnet_small"
    assert specs.default_spec("jpeg_dl", "smoke")["datasets"][0]["pool_limit"] <= 500
    for profile in ("smoke", "full"):
        spec = specs.default_spec("jpeg_dl", profile)
        specs.check_spec("jpeg_dl", spec)
        assert set(spec["datasets"][0]) >= set(kinds.get("jpeg_dl").keys)  # every knob written out
    with pytest.raises(ValueError, match="profile"):
        jpeg_dl.params("publish")


def test_the_two_variants_differ_only_in_the_layer(tmp_path):
    block = toy_spec()["datasets"][0]
    runs = kinds.get("jpeg_dl").expand(block, {"experiment": "jpeg_dl", "seed": None}, range(192), [0])
    base, layer = runs
    assert (base["variant"], layer["variant"]) == jpeg_dl.VARIANTS
    assert {k for k in base if base[k] != layer[k]} == {"variant", "jpeg_layer"}
    assert layer["jpeg_layer"] and not base["jpeg_layer"] and base["n"] == 192


def test_hard_evaluation_differs_from_soft_only_through_the_layer():
    images = toy_images(n_test=96)
    p = dict(jpeg_dl.params("smoke"), attack_n=32, attacks=["fgsm"], eps_255=[4], attack_batch=32)
    cfg = toy_config(jpeg_layer=True)
    trained = train.train(images.train_pixels, images.train_labels, config=cfg, seed=0, num_classes=2,
                          device="cpu", keep_model=True).trained
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    idx = jpeg_dl.attack_indices(images.test_labels, 32)
    rows = jpeg_dl.evaluate(trained, images, idx, p, seed=0)
    assert all(torch.equal(before[k], v) for k, v in trained.model.state_dict().items())  # scoring changes nothing
    layer = jpeg_layer.layers(trained.model)[0]
    assert layer.hard is False
    clean = {r["eval_mode"]: r["accuracy"] for r in rows if r["scored_on"] == "test"}
    # the same weights with the soft quantiser made as hard as rounding score exactly as hard mode
    layer.hardness = 1e6
    sharp = jpeg_dl.evaluate(trained, images, idx, dict(p, attacks=["fgsm"]), seed=0)
    sharp_clean = {r["eval_mode"]: r["accuracy"] for r in sharp if r["scored_on"] == "test"}
    assert sharp_clean["soft"] == sharp_clean["hard"] == clean["hard"]
    # and the hard logits are the network on hard-rounded pixels
    x = torch.from_numpy(images.test_pixels[:16]).permute(0, 3, 1, 2).float()
    norm = (x - trained.mean) / trained.std
    with torch.no_grad(), jpeg_layer.quantizer_mode(trained.model, "hard"):
        direct = trained.model.net((layer(x) - trained.mean) / trained.std)
        through = trained.model(norm)
    assert torch.allclose(direct, through, atol=1e-4)


def test_both_modes_score_the_same_adversarial_images():
    images = toy_images(n_test=48)
    cfg = train.recipe("airnet_small", steps=12, jpeg_layer=True, **FAST)
    trained = train.train(images.train_pixels, images.train_labels, config=cfg, seed=0, num_classes=2,
                          device="cpu", keep_model=True).trained
    args = (trained, images.test_pixels, images.test_labels)
    both = robustness.robustness_curve(*args, eps=(4 / 255,), eval_mode=("soft", "hard"), batch_size=48, seed=3)
    alone = {m: robustness.robustness_curve(*args, eps=(4 / 255,), eval_mode=m, batch_size=48, seed=3)
             for m in ("soft", "hard")}
    key = lambda r: (r["eval_mode"], r["attack"], r["eps"])  # noqa: E731
    assert sorted(both, key=key) == sorted(alone["soft"] + alone["hard"], key=key)
    with pytest.raises(ValueError, match="eval_mode"):
        robustness.robustness_curve(*args, eval_mode=("soft", "soft"))
    # a model without a layer gives one set of rows, whatever the modes asked for
    base = train.train(images.train_pixels, images.train_labels, config=train.recipe("airnet_small", steps=3, **FAST),
                       seed=0, num_classes=2, device="cpu", keep_model=True).trained
    rows = robustness.robustness_curve(base, images.test_pixels, images.test_labels, eps=(4 / 255,),
                                       eval_mode=("soft", "hard"), batch_size=48)
    assert len(rows) == 3 and {r["eval_mode"] for r in rows} == {"none"}


def test_headers_are_left_out_of_the_scan_bytes():
    x, _ = stripes(4)
    files = [jpeg_layer.encode(im, quality=75) for im in x]
    headers = {len(f) - jpeg_layer.scan_bytes(f) for f in files}
    assert len(headers) == 1 and 300 < headers.pop() < 1000  # the same tables: the same header
    assert jpeg_layer.bits_per_pixel(x, quality=75, headers=False) < jpeg_layer.bits_per_pixel(x, quality=75)
    # a table holding the bytes 0xFF 0xDA (the SOS marker) is not mistaken for the start of scan:
    # zigzag order writes the natural (0, 0) and (0, 1) steps first
    tricky = np.full((8, 8), 255)
    tricky[0, 1] = 218
    f = jpeg_layer.encode(x[0], tables=(tricky, tricky))
    plain = jpeg_layer.encode(x[0], tables=(np.full((8, 8), 255), np.full((8, 8), 255)))
    assert len(f) - jpeg_layer.scan_bytes(f) == len(plain) - jpeg_layer.scan_bytes(plain)
    assert f.index(b"\xff\xda") < len(f) - jpeg_layer.scan_bytes(f) - 14  # the naive search stops in the tables
    with pytest.raises(ValueError, match="JPEG"):
        jpeg_layer.scan_bytes(b"PNG....")


def test_the_report_pairs_seeds_and_states_spread():
    rows = []
    for seed, base, soft, hard in ((0, 0.80, 0.82, 0.81), (1, 0.78, 0.79, 0.79), (2, 0.81, 0.85, 0.84)):
        for variant, mode, acc in (("baseline", "none", base), ("jpeg_dl", "soft", soft), ("jpeg_dl", "hard", hard)):
            rows.append(dict(seed=seed, variant=variant, scored_on="test", attack="none", eps_255=0.0,
                             eval_mode=mode, accuracy=acc))
            for eps, drop in ((1.0, 0.1), (4.0, 0.4)):
                gain = 0.05 * (variant == "jpeg_dl") * eps
                rows.append(dict(seed=seed, variant=variant, scored_on="attack_subset", attack="fgsm", eps_255=eps,
                                 eval_mode=mode, accuracy=acc - drop + gain))
    frame = pd.DataFrame(rows)
    d = jpeg_dl.paired_difference(frame, "JPEG-DL", "baseline")
    assert d["seeds"] == 3 and d["mean"] == pytest.approx(100 * (0.02 + 0.01 + 0.04) / 3)
    assert d["sd"] == pytest.approx(np.std([2.0, 1.0, 4.0], ddof=1)) and d["min"] == pytest.approx(1.0)
    acc = jpeg_dl.accuracy_summary(frame).set_index("arm")
    assert list(acc.index) == ["baseline", "JPEG-DL", "JPEG-DL, hard rounding at test"]
    assert acc.loc["baseline", "mean"] == pytest.approx((0.80 + 0.78 + 0.81) / 3) and acc.loc["JPEG-DL", "seeds"] == 3
    best = jpeg_dl.largest_gain(frame, "fgsm")
    assert best["eps_255"] == 4.0 and best["mean"] == pytest.approx(100 * (0.2 + 0.0233333), abs=1e-3)
    assert math.isnan(jpeg_dl.largest_gain(frame, "pgd")["mean"])
    # learned tables come back from their JSON
    t = {"luma": list(np.arange(64.0)), "chroma": [1.0] * 64}
    frame = frame.assign(tables_json=[json.dumps(t) if i == 0 else "" for i in range(len(frame))])
    frame.loc[0, "variant"] = "jpeg_dl"
    assert jpeg_dl.learned_steps(frame)[0][0, 7, 7] == 63.0


def test_straight_through_rows_are_their_own_arm_and_the_verdict_follows_the_stronger_attack():
    rows = []
    # seed 2: the straight-through attack is the weaker one (0.52 > 0.49), so the soft attack counts
    for seed, base, soft, bpda in ((0, 0.30, 0.50, 0.32), (1, 0.28, 0.47, 0.27), (2, 0.31, 0.49, 0.52)):
        rows.append(dict(seed=seed, variant="baseline", scored_on="attack_subset", attack="fgsm", attack_mode="none",
                         eps_255=4.0, eval_mode="none", accuracy=base))
        for mode, acc in (("soft", soft), ("bpda", bpda)):
            rows.append(dict(seed=seed, variant="jpeg_dl", scored_on="attack_subset", attack="fgsm",
                             attack_mode=mode, eps_255=4.0, eval_mode="soft", accuracy=acc))
    frame = pd.DataFrame(rows)
    assert set(jpeg_dl.with_arm(frame)["arm"]) == {"baseline", "JPEG-DL", jpeg_dl.BPDA_ARM, jpeg_dl.STRONGER_ARM}
    assert set(jpeg_dl.with_arm(frame.query("attack_mode != 'bpda'"))["arm"]) == {"baseline", "JPEG-DL"}
    soft = jpeg_dl.paired_difference(frame, "JPEG-DL", "baseline", "attack_subset", "fgsm", 4.0)
    bpda = jpeg_dl.paired_difference(frame, jpeg_dl.BPDA_ARM, "baseline", "attack_subset", "fgsm", 4.0)
    strong = jpeg_dl.paired_difference(frame, jpeg_dl.STRONGER_ARM, "baseline", "attack_subset", "fgsm", 4.0)
    assert soft["mean"] == pytest.approx(19.0) and bpda["min"] == pytest.approx(-1.0)
    assert strong["mean"] == pytest.approx((2 - 1 + 18) / 3) and strong["max"] == pytest.approx(18.0)
    h = {"fgsm_best_gain": soft["mean"], "fgsm_best_eps": 4.0,
         **{f"fgsm_bpda_gain_{k}": bpda[k] for k in ("mean", "min", "max")},
         **{f"fgsm_strong_gain_{k}": strong[k] for k in ("mean", "min", "max")}}
    assert "does not survive" in jpeg_dl.bpda_verdict(h, "fgsm")  # seed 1 loses a point under BPDA
    h.update(fgsm_strong_gain_min=1.0)
    assert "above zero in every seed" in jpeg_dl.bpda_verdict(h, "fgsm")  # +6.3 of +19 remains
    h.update(fgsm_strong_gain_mean=15.0)
    assert "survives" in jpeg_dl.bpda_verdict(h, "fgsm")
    assert "not been run" in jpeg_dl.bpda_verdict({"fgsm_best_gain": 19.0}, "fgsm")
    table = jpeg_dl.robustness_table(frame)
    assert table.loc[0, "gain (points): the stronger of the two"].startswith("+6.3")
