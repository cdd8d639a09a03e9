"""The JPEG-DL experiment of chapter 7: a network with and without a trainable JPEG layer in front.

An experiment of the runner (``experiments.kinds.JpegDL``, spec files ``specs/jpeg_dl.<profile>.toml``,
``storage-scaling run jpeg_dl``). For every seed, the same network is trained twice under the same
protocol (recipe, step budget, seed, images): as the **baseline**, and as **JPEG-DL**
(``learn/jpeg_layer.py``: 128 quantisation steps trained with their own Adam beside the network's
SGD). Each trained model is then scored

* on the whole test split (the recipe's test-time augmentation), clean;
* on a fixed, class-balanced subset of the test split (``attack_n`` images, no test-time
  augmentation): clean, and under FGSM and PGD at every ``eps_255`` (``learn/robustness.py``:
  torchattacks, the attack differentiating through the *soft* layer, and, for JPEG-DL, again
  with the quantiser differentiated as the identity: the straight-through (BPDA) attack that
  tells robustness from an attenuated gradient);

and the JPEG-DL model in two modes, its trained soft quantiser and **hard rounding** (the
ablation: the same weights and the same adversarial images, only the layer's quantiser differs).
For JPEG-DL, a real encoder (Pillow, no chroma subsampling) measures the bits per pixel the
learned tables, rounded to integers, spend on the scored test images, beside the standard tables
at the initial quality and the initial (clamped) tables.

:func:`run_unit` trains and scores one run, a (seed, variant): the runner appends its metrics as
one row, every evaluation as JSON (``evaluations``) and, for JPEG-DL, the learned steps
(``tables_json``), so the heatmaps are drawn from committed results.
:func:`evaluation_rows` expands those rows to one per (seed, variant, evaluation), the frame the
report functions at the end (pandas only) turn into the chapter's numbers. PyTorch is imported
inside the functions that train, so the report runs without it.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import data

NAME = "jpeg_dl"  # the experiment (``storage-scaling run jpeg_dl``)
VARIANTS = ("baseline", "jpeg_dl")
ATTACKS = ("fgsm", "pgd")
ATTACK_MODES = ("soft", "bpda")  # the attack's gradient through the soft quantiser, or straight through it
FULL_NETWORK = "cnn_cpu"
LAYER_KNOBS = ("jpeg_quality", "jpeg_hardness", "jpeg_max_step", "jpeg_lr")


def params(profile: str) -> dict:
    """The knobs of the spec file's block for ``"full"`` (the chapter's run: the CPU CNN recipe on
    the whole 40,000-image pool, 3 seeds, 2,000 attacked test images) or ``"smoke"`` (toy size: a
    small AirNet for a few steps on a few hundred images), as the report reads them: the layer's
    and the attacks' knobs with their defaults, ``network`` and its ``steps``, the data and seeds.
    No data is read."""
    from ..experiments import kinds, specs
    from . import learners

    if profile not in ("full", "smoke"):
        raise ValueError(f"profile must be 'full' or 'smoke' (publish loads the full table), got {profile!r}")
    block = specs.default_spec(NAME, profile)["datasets"][0]
    network = learners.get(block["model"]).params(block.get("train", {}))
    return {**kinds.get(NAME).knobs(block), "network": block["model"], "steps": network["steps"],
            "batch_size": network["batch_size"], "dataset": block["dataset"], "pool": block.get("pool", "paper"),
            "seeds": list(block.get("seeds", [0])), "test_n": block.get("test_n")}


# ---------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class Images:
    """Decoded uint8 (N, H, W, 3) training and test pixels with labels; ``test_stored_bytes`` are
    the test files' sizes as distributed (None for synthetic images)."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    test_stored_bytes: np.ndarray | None = None


@functools.lru_cache(maxsize=1)  # the units of a run share their images
def load_images(dataset: str, pool: str, classes, pool_limit, eval_split: str, test_n) -> Images:
    """A run's training pool and scoring set, decoded (through the store's cache), checked."""
    from ..compress import store

    train = data.pool(dataset, pool, classes, pool_limit)
    test = data.eval_set(dataset, eval_split, classes, test_n, pool)

    def pixels(images):
        px = store.compress(images, codec="original", progress=False).pixels()
        if isinstance(px, list):
            raise ValueError(f"{images.dataset!r} images have different sizes; JPEG-DL needs one size")
        return np.array(px)  # in memory and writable (torch wants to own it)

    images = Images(pixels(train), np.asarray(train.labels, dtype=np.int64), pixels(test),
                    np.asarray(test.labels, dtype=np.int64), data.num_classes(dataset, classes), test.stored_bytes)
    check_images(images)
    return images


def run_images(run: dict) -> Images:
    return load_images(run["dataset"], run["pool"], run["classes"], run["pool_limit"], run["eval_split"],
                       run["test_n"])


def check_images(images: Images) -> None:
    """RGB uint8 training and test sets of one image size with labels in range; a ValueError says
    which set is wrong (before any training)."""
    from . import train

    train.check_images(images.train_pixels, images.train_labels, "JPEG-DL training")
    train.check_images(images.test_pixels, images.test_labels, "JPEG-DL test")
    for what, labels in (("training", images.train_labels), ("test", images.test_labels)):
        if np.min(labels) < 0 or np.max(labels) >= images.num_classes:
            raise ValueError(f"JPEG-DL {what} labels must lie in [0, {images.num_classes}), "
                             f"got {np.min(labels)}..{np.max(labels)}")


def attack_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """The attacked test images: a class-balanced subset of size ``n`` (the same for every run)."""
    if n > len(labels):
        raise ValueError(f"attack_n={n} exceeds the {len(labels)} test images; lower attack_n or raise test_n")
    return data.nested_subset(labels, n, 0)


# ---------------------------------------------------------------------------------------------
# One run: a seed and a variant


def evaluate(trained, images: Images, attack_idx: np.ndarray, p: dict, seed: int,
             progress: bool = False) -> list[dict]:
    """Scores of one trained model: clean on the whole test set, then clean and attacked on the
    attack subset; a JPEG-DL model in both quantiser modes ("soft", "hard"), a baseline once
    ("none"). The adversarial images are made once per attack mode (through the soft layer; again
    straight through it) and scored in each evaluation mode. ``p``: the run's attack knobs."""
    from . import jpeg_layer, robustness

    has_layer = bool(jpeg_layer.layers(trained.model))
    modes = ("soft", "hard") if has_layer else ("none",)
    rows = []
    for mode in modes:
        with jpeg_layer.quantizer_mode(trained.model, "hard" if mode == "hard" else "soft"):
            m = trained.evaluate(images.test_pixels, images.test_labels)
        rows.append(dict(scored_on="test", attack="none", attack_mode="none", eps_255=0.0, eval_mode=mode,
                         accuracy=m["accuracy"], n_eval=len(images.test_labels), tta=int(trained.config.tta)))
    curve = robustness.robustness_curve(
        trained, images.test_pixels[attack_idx], images.test_labels[attack_idx], attacks=tuple(p["attacks"]),
        eps=[e / 255 for e in p["eps_255"]], steps=int(p["pgd_steps"]),
        eval_mode=("soft", "hard") if has_layer else "soft", attack_modes=tuple(p["attack_modes"]),
        batch_size=int(p["attack_batch"]), seed=seed, progress=progress)
    for r in curve:
        rows.append(dict(scored_on="attack_subset", attack=r["attack"], attack_mode=r["attack_mode"],
                         eps_255=float(r["eps_255"]), eval_mode=r["eval_mode"], accuracy=r["accuracy"],
                         n_eval=r["n"], tta=0))
    return rows


def tables_json(model) -> str:
    """The learned (2, 8, 8) steps as compact JSON: {"luma": 64 floats, "chroma": 64 floats}."""
    from . import jpeg_layer

    t = jpeg_layer.learned_tables(model)
    return json.dumps({k: [round(float(v), 4) for v in np.ravel(t[k])] for k in ("luma", "chroma")},
                      separators=(",", ":"))


def run_unit(run: dict, attack_idx: np.ndarray, device=None, images: Images | None = None) -> dict:
    """Train one run's variant at its seed and score it: the row's metrics. ``accuracy`` (and
    ``error``) is the clean test accuracy as trained (JPEG-DL: its soft quantiser); every
    evaluation is in ``evaluations`` (JSON rows); the bits per pixel of the reference tables are on
    every row, the learned tables' on JPEG-DL's. ``images`` default to the run's (:func:`run_images`)."""
    import torch

    from . import jpeg_layer, learners, train

    images = run_images(run) if images is None else images
    config = learners.get(run["model"]).config(run)
    result = train.train(images.train_pixels, images.train_labels, config=config, seed=int(run["seed"]),
                         num_classes=images.num_classes, device=device, keep_model=True)
    start = time.perf_counter()
    rows = evaluate(result.trained, images, attack_idx, run, int(run["seed"]))
    eval_seconds = time.perf_counter() - start
    clean = rows[0]["accuracy"]  # the whole test set, as trained
    unit = dict(accuracy=clean, error=1.0 - clean, n_test=len(images.test_labels),
                evaluations=json.dumps(rows, separators=(",", ":")), train_seconds=result.train_seconds,
                eval_seconds=eval_seconds, images_per_second=result.images_per_second,
                final_loss=result.final_loss, n_train=result.n_train, train_steps=result.steps,
                epochs=result.epochs, torch_threads=torch.get_num_threads(),
                bpp_learned=math.nan, bpp_learned_scan=math.nan, bpp_seconds=0.0, tables_json="")
    if config.jpeg_layer:
        start = time.perf_counter()
        tables = jpeg_layer.integer_tables(result.trained.model)
        unit.update(bpp_learned=jpeg_layer.bits_per_pixel(images.test_pixels, tables=tables),
                    bpp_learned_scan=jpeg_layer.bits_per_pixel(images.test_pixels, tables=tables, headers=False),
                    tables_json=tables_json(result.trained.model))
        unit["bpp_seconds"] = time.perf_counter() - start
    return {**unit, **reference_bpp(run, images)}


def reference_bpp(p: dict, images: Images) -> dict:
    """Bits per pixel on the scored test images of the standard tables at the initial quality, of
    the initial (clamped) tables, and of the files as distributed (whole files; ``_scan``: the
    entropy-coded data alone)."""
    from . import jpeg_layer

    std = jpeg_layer.standard_tables(p["jpeg_quality"])
    init = jpeg_layer.integer_tables(jpeg_layer.initial_steps(p["jpeg_quality"], p["jpeg_max_step"]))
    px = images.test_pixels
    out = {"bpp_standard": jpeg_layer.bits_per_pixel(px, tables=std),
           "bpp_standard_scan": jpeg_layer.bits_per_pixel(px, tables=std, headers=False),
           "bpp_initial": jpeg_layer.bits_per_pixel(px, tables=init),
           "bpp_initial_scan": jpeg_layer.bits_per_pixel(px, tables=init, headers=False),
           "bpp_stored": math.nan}
    if images.test_stored_bytes is not None:
        out["bpp_stored"] = 8.0 * float(np.sum(images.test_stored_bytes)) / (px.shape[0] * px.shape[1] * px.shape[2])
    return out


UNIT_COLUMNS = ("train_steps", "batch_size", "n_train", "epochs", "train_seconds", "eval_seconds", "bpp_seconds",
                "images_per_second", "final_loss", "torch_threads", "bpp_learned", "bpp_learned_scan")
REFERENCE_COLUMNS = ("bpp_standard", "bpp_standard_scan", "bpp_initial", "bpp_initial_scan", "bpp_stored")


def evaluation_rows(units: pd.DataFrame) -> pd.DataFrame:
    """The runner's rows (one per seed and variant) as one row per (seed, variant, evaluation): the
    frame the report reads. The learned steps stay on the first evaluation of each JPEG-DL run."""
    out = []
    for unit in units.sort_values(["seed", "variant"], kind="stable").to_dict("records"):
        tables_text = unit.get("tables_json")
        tables_text = tables_text if isinstance(tables_text, str) else ""
        knobs = {"network": unit["model"], **{k: unit[k] for k in LAYER_KNOBS}}
        for i, ev in enumerate(json.loads(unit["evaluations"])):
            out.append({"seed": int(unit["seed"]), "variant": unit["variant"], **ev, **knobs,
                        **{k: unit[k] for k in UNIT_COLUMNS + REFERENCE_COLUMNS},
                        "code_version": unit["code_version"], "device": unit["device"],
                        "finished_at": unit["finished_at"], "tables_json": tables_text if i == 0 else ""})
    frame = pd.DataFrame(out)
    if len(frame):
        jpeg = frame["variant"] == "jpeg_dl"
        for col in ("bpp_learned", "bpp_learned_scan"):
            frame.loc[~jpeg, col] = math.nan
    return frame


def identity_error(images: np.ndarray, hardness: float = 1e4) -> dict:
    """How far the layer with every step 1 and a high hardness (near rounding) moves integer
    images: RMS and largest change in grey levels (the YCbCr conversion is not integer, so
    rounding its DCT coefficients moves single pixels by up to ~2 levels; RMS stays near 0.5)."""
    import torch

    from . import jpeg_layer

    layer = jpeg_layer.JpegLayer(hardness=hardness)
    layer.set_steps(np.ones((2, 8, 8)))
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        err = (layer(x) - x).double()
    return {"rms": float(err.pow(2).mean().sqrt()), "max": float(err.abs().max()),
            "within_one": float((err.abs() <= 1).double().mean()), "n": int(len(images)), "hardness": hardness}


# ---------------------------------------------------------------------------------------------
# Report (pandas only): what chapter 7 shows


# The paper's claims, quoted (../shared/reference/paper-facts.md, Work 3; numbers from secondary
# summaries of Salamah et al., ICLR 2025). They describe the paper's setting, not ours.
PAPER = {
    "cifar100_text": "up to 1.53",
    "cifar100_table": "+0.67 to +1.55",
    "cifar100_models": 7,
    "fine_grained": "up to +20.9",
    "fgsm": "up to +15",
    "pgd": "up to +6",
    "hard_rounding": "at most 0.13",
    "bpp": "8.22 to 12.98",
}

ARMS = {("baseline", "none"): "baseline", ("jpeg_dl", "soft"): "JPEG-DL",
        ("jpeg_dl", "hard"): "JPEG-DL, hard rounding at test"}
BPDA = ", straight-through attack"  # suffix of the arms attacked with the BPDA gradient
BPDA_ARM = ARMS[("jpeg_dl", "soft")] + BPDA
STRONGER_ARM = ARMS[("jpeg_dl", "soft")] + ", stronger of the two attacks"


def with_arm(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with an ``arm`` column: baseline, JPEG-DL (soft, as trained), or hard rounding;
    rows attacked straight through the quantiser (BPDA) get their own arms, suffixed :data:`BPDA`
    (clean rows belong to their arm without suffix: an attack mode changes only attacked images).

    Where JPEG-DL was attacked both ways, rows of :data:`STRONGER_ARM` are added: per seed,
    attack and eps, the lower of the two accuracies. That is the strongest attack we ran, so
    the gain it leaves is what a claim of robustness may rest on (and still an upper bound: an
    attack choosing per image would leave less)."""
    f = frame.copy()
    modes = f["attack_mode"] if "attack_mode" in f else pd.Series("soft", index=f.index)  # tables before BPDA
    f["arm"] = [ARMS.get((v, m), f"{v} {m}") + (BPDA if g == "bpda" else "")
                for v, m, g in zip(f["variant"], f["eval_mode"], modes)]
    attacked = f[(f["scored_on"] == "attack_subset") & (f["attack"] != "none")
                 & f["arm"].isin([ARMS[("jpeg_dl", "soft")], BPDA_ARM])]
    groups = attacked.groupby(["seed", "attack", "eps_255"])
    both = attacked[groups["arm"].transform("nunique") == 2]
    if both.empty:
        return f
    stronger = both.loc[both.groupby(["seed", "attack", "eps_255"])["accuracy"].idxmin()].assign(arm=STRONGER_ARM)
    return pd.concat([f, stronger], ignore_index=True)


def _spread(values: pd.Series) -> dict:
    v = values.to_numpy(float)
    return {"mean": float(v.mean()) if len(v) else math.nan,
            "sd": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "min": float(v.min()) if len(v) else math.nan, "max": float(v.max()) if len(v) else math.nan,
            "seeds": int(len(v))}


def accuracy_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean test accuracy per arm over seeds: mean, sample sd, lowest, highest, seeds."""
    f = with_arm(frame)
    clean = f[(f["scored_on"] == "test") & (f["attack"] == "none")]
    rows = [{"arm": arm, **_spread(g["accuracy"])} for arm, g in clean.groupby("arm", sort=False)]
    return pd.DataFrame(rows, columns=["arm", "mean", "sd", "min", "max", "seeds"])


def paired_difference(frame: pd.DataFrame, arm: str, reference: str, scored_on: str = "test",
                      attack: str = "none", eps_255: float = 0.0) -> dict:
    """``arm`` minus ``reference`` in accuracy points, paired by seed: mean, sd, min, max, seeds."""
    f = with_arm(frame)
    sel = f[(f["scored_on"] == scored_on) & (f["attack"] == attack) & np.isclose(f["eps_255"], eps_255)]
    a = sel[sel["arm"] == arm].set_index("seed")["accuracy"]
    b = sel[sel["arm"] == reference].set_index("seed")["accuracy"]
    both = a.index.intersection(b.index)
    return _spread(100 * (a[both] - b[both]))


def robustness_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy on the attack subset per (arm, attack, eps) over seeds, with the paired gain over
    the baseline in points (mean, sd, min, max); eps 0 is the clean subset."""
    f = with_arm(frame)
    sub = f[f["scored_on"] == "attack_subset"]
    rows = []
    for (arm, attack, eps), g in sub.groupby(["arm", "attack", "eps_255"], sort=False):
        gain = paired_difference(frame, arm, "baseline", "attack_subset", attack, eps) if arm != "baseline" \
            else _spread(pd.Series(dtype=float))
        rows.append({"arm": arm, "attack": attack, "eps_255": float(eps), **_spread(g["accuracy"]),
                     **{f"gain_{k}": gain[k] for k in ("mean", "sd", "min", "max")}})
    return pd.DataFrame(rows)


TABLE_ARMS = {"JPEG-DL": "attacked through the soft layer", BPDA_ARM: "attacked straight through",
              STRONGER_ARM: "the stronger of the two", "JPEG-DL, hard rounding at test": "hard rounding at test"}


def robustness_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The chapter's robustness table, one row per (attack, eps): the baseline's accuracy, then each
    JPEG-DL arm's paired gain over the baseline ("+18.7 (sd 2.1)" points); the figure shows the
    accuracies."""
    rob = robustness_summary(frame)
    rob = rob[rob["attack"] != "none"]
    arms = [a for a in TABLE_ARMS if a in set(rob["arm"])]
    rows = []
    for (attack, eps), g in rob.groupby(["attack", "eps_255"], sort=True):
        by = g.set_index("arm")
        row = {"attack": attack.upper(), "eps": float(eps),
               "baseline": float(by.loc["baseline", "mean"]) if "baseline" in by.index else math.nan}
        for arm in arms:
            r = by.loc[arm] if arm in by.index else None
            row[f"gain (points): {TABLE_ARMS[arm]}"] = "–" if r is None or not math.isfinite(r["gain_mean"]) else \
                f"{r['gain_mean']:+.1f}" + (f" (sd {r['gain_sd']:.1f})" if math.isfinite(r["gain_sd"]) else "")
        rows.append(row)
    return pd.DataFrame(rows)


def largest_gain(frame: pd.DataFrame, attack: str, arm: str = "JPEG-DL") -> dict:
    """The eps at which ``arm`` gains most over the baseline under ``attack`` (mean over seeds)."""
    rob = robustness_summary(frame)
    sel = rob[(rob["arm"] == arm) & (rob["attack"] == attack)]
    if sel.empty or not sel["gain_mean"].notna().any():
        return {"eps_255": math.nan, "mean": math.nan, "sd": math.nan, "min": math.nan, "max": math.nan}
    r = sel.loc[sel["gain_mean"].idxmax()]
    return {"eps_255": float(r["eps_255"]), "mean": float(r["gain_mean"]), "sd": float(r["gain_sd"]),
            "min": float(r["gain_min"]), "max": float(r["gain_max"])}


def learned_steps(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """Each seed's learned (2, 8, 8) steps [luma, chroma], from the ``tables_json`` column."""
    out = {}
    for seed, text in frame.loc[frame["variant"] == "jpeg_dl", ["seed", "tables_json"]].itertuples(index=False):
        if isinstance(text, str) and text:
            t = json.loads(text)
            out[int(seed)] = np.stack([np.reshape(t["luma"], (8, 8)), np.reshape(t["chroma"], (8, 8))])
    return out


def initial_steps(p: dict) -> np.ndarray:
    """The (2, 8, 8) initial steps of ``p`` (the standard tables at its quality, clamped)."""
    from .jpeg_layer import initial_steps as init  # numpy only once the module is loaded

    return init(p["jpeg_quality"], p["jpeg_max_step"])


def table_change(frame: pd.DataFrame, p: dict) -> dict:
    """How the tables moved: mean learned minus initial step (luma, chroma; mean over seeds), the
    largest move of any step in any seed, and the share of steps that grew."""
    learned = learned_steps(frame)
    if not learned:
        return {"luma": math.nan, "chroma": math.nan, "largest": math.nan, "grew": math.nan}
    init = initial_steps(p)
    moves = np.stack([s - init for s in learned.values()])  # seeds, 2, 8, 8
    return {"luma": float(moves[:, 0].mean()), "chroma": float(moves[:, 1].mean()),
            "largest": float(np.abs(moves).max()), "grew": float((moves > 0).mean())}


def bpp_summary(frame: pd.DataFrame, p: dict) -> pd.DataFrame:
    """Bits per pixel on the scored test images: files as distributed, standard tables at the
    initial quality, the initial tables and the learned ones (mean and range over seeds)."""
    if frame.empty:
        return pd.DataFrame(columns=["tables", "whole file", "entropy-coded data", "lowest seed", "highest seed"])
    first = frame.iloc[0]
    per_seed = frame[frame["variant"] == "jpeg_dl"].groupby("seed")[["bpp_learned", "bpp_learned_scan"]].first()
    q, m = p["jpeg_quality"], p["jpeg_max_step"]
    rows = [
        {"tables": "the dataset's own JPEG files (as distributed)", "whole file": first["bpp_stored"],
         "entropy-coded data": math.nan},
        {"tables": f"standard tables at quality {q}", "whole file": first["bpp_standard"],
         "entropy-coded data": first["bpp_standard_scan"]},
        {"tables": f"initial tables (quality {q}, steps clamped at {m:g})", "whole file": first["bpp_initial"],
         "entropy-coded data": first["bpp_initial_scan"]},
        {"tables": f"learned tables, rounded (mean of {len(per_seed)} seeds)",
         "whole file": per_seed["bpp_learned"].mean(), "entropy-coded data": per_seed["bpp_learned_scan"].mean(),
         "lowest seed": per_seed["bpp_learned"].min(), "highest seed": per_seed["bpp_learned"].max()},
    ]
    return pd.DataFrame(rows, columns=["tables", "whole file", "entropy-coded data", "lowest seed", "highest seed"])


def timing(frame: pd.DataFrame) -> dict:
    """Seconds: mean training time per variant, the layer's slowdown, and the whole run's CPU
    time (every run's training, scoring and bpp, summed: the time it took, across sittings). The
    frame: the runner's rows or :func:`evaluation_rows`."""
    units = frame.groupby(["seed", "variant"]).first().reset_index()
    if units.empty:
        return {"train_baseline": math.nan, "train_jpeg_dl": math.nan, "slowdown": math.nan, "total": math.nan}
    train_s = units.groupby("variant")["train_seconds"].mean()
    total = float((units["train_seconds"] + units["eval_seconds"] + units["bpp_seconds"]).sum())
    base, jdl = float(train_s.get("baseline", math.nan)), float(train_s.get("jpeg_dl", math.nan))
    return {"train_baseline": base, "train_jpeg_dl": jdl, "slowdown": jdl / base if base else math.nan,
            "total": total, "devices": sorted(units["device"].astype(str).unique()),
            "threads": sorted(int(t) for t in units["torch_threads"].unique())}


def headline(frame: pd.DataFrame, p: dict) -> dict:
    """The chapter's numbers (floats; NaN where the frame lacks them): accuracies in [0, 1], their
    sample sd over seeds, differences and gains in points (paired by seed), bits per pixel,
    how the tables moved, seconds."""
    acc = accuracy_summary(frame).set_index("arm")

    def get(arm, col):
        return float(acc.loc[arm, col]) if arm in acc.index else math.nan

    diff = paired_difference(frame, "JPEG-DL", "baseline")
    hard = paired_difference(frame, "JPEG-DL, hard rounding at test", "JPEG-DL")
    top = max(p["eps_255"])
    out = {"seeds": len(set(frame["seed"])) if len(frame) else 0,
           "acc_baseline": get("baseline", "mean"), "acc_baseline_sd": get("baseline", "sd"),
           "acc_jpeg": get("JPEG-DL", "mean"), "acc_jpeg_sd": get("JPEG-DL", "sd"),
           "acc_hard": get("JPEG-DL, hard rounding at test", "mean"),
           "acc_hard_sd": get("JPEG-DL, hard rounding at test", "sd"),
           **{f"diff_{k}": diff[k] for k in ("mean", "sd", "min", "max")},
           **{f"hard_diff_{k}": hard[k] for k in ("mean", "sd", "min", "max")}}
    for attack in p["attacks"]:
        best = largest_gain(frame, attack)
        at_top = paired_difference(frame, "JPEG-DL", "baseline", "attack_subset", attack, top)
        at_top_hard = paired_difference(frame, "JPEG-DL, hard rounding at test", "baseline", "attack_subset",
                                        attack, top)
        bpda = paired_difference(frame, BPDA_ARM, "baseline", "attack_subset", attack, best["eps_255"])
        strong = paired_difference(frame, STRONGER_ARM, "baseline", "attack_subset", attack, best["eps_255"])
        strong_best = largest_gain(frame, attack, STRONGER_ARM)
        out.update({f"{attack}_best_eps": best["eps_255"], f"{attack}_best_gain": best["mean"],
                    f"{attack}_best_gain_sd": best["sd"], f"{attack}_top_gain": at_top["mean"],
                    f"{attack}_top_gain_sd": at_top["sd"], f"{attack}_top_gain_hard": at_top_hard["mean"],
                    **{f"{attack}_bpda_gain_{k}": bpda[k] for k in ("mean", "sd", "min", "max")},
                    **{f"{attack}_strong_gain_{k}": strong[k] for k in ("mean", "sd", "min", "max")},
                    f"{attack}_strong_best_eps": strong_best["eps_255"],
                    **{f"{attack}_strong_best_gain_{k}": strong_best[k] for k in ("mean", "sd", "min", "max")}})
    bpp = bpp_summary(frame, p).set_index("tables")["whole file"].to_numpy(float) if len(frame) else [math.nan] * 4
    scan = bpp_summary(frame, p)["entropy-coded data"].to_numpy(float) if len(frame) else [math.nan] * 4
    out.update({"bpp_stored": bpp[0], "bpp_standard": bpp[1], "bpp_initial": bpp[2], "bpp_learned": bpp[3],
                "bpp_standard_scan": scan[1], "bpp_initial_scan": scan[2], "bpp_learned_scan": scan[3]})
    change = table_change(frame, p)
    out.update({f"move_{k}": v for k, v in change.items()})
    t = timing(frame)
    out.update({"train_baseline_s": t["train_baseline"], "train_jpeg_s": t["train_jpeg_dl"],
                "slowdown": t["slowdown"], "total_s": t["total"]})
    return out


def bpda_verdict(h: dict, attack: str) -> str:
    """Sentences: does JPEG-DL's largest gain under ``attack`` (through the soft layer) survive the
    straight-through attack at the same eps? From :func:`headline`'s dict.

    The verdict rests on the stronger of the two attacks per seed (:data:`STRONGER_ARM`). It
    *survives* when every seed still gains and the mean keeps at least half the soft-gradient gain;
    it *shrinks* when every seed gains but less than half remains; otherwise it does not survive
    (some seed gains nothing or loses: the gain was the attenuated gradient). A last sentence gives
    the largest gain the stronger attack leaves at any eps."""
    soft, eps = h.get(f"{attack}_best_gain", math.nan), h.get(f"{attack}_best_eps", math.nan)
    bpda = [h.get(f"{attack}_bpda_gain_{k}", math.nan) for k in ("mean", "min", "max")]
    mean, lo, hi = (h.get(f"{attack}_strong_gain_{k}", math.nan) for k in ("mean", "min", "max"))
    name = attack.upper()
    if not all(math.isfinite(v) for v in (soft, eps, mean, lo, hi, *bpda)):
        return f"The straight-through ({name}) attack has not been run on these models yet."
    seeds = lambda a, b: f"seeds {a:+.1f} to {b:+.1f}" if a != b else "one seed"  # noqa: E731
    text = (f"Attacked straight through the quantiser (BPDA), JPEG-DL's {name} gain at eps {eps:g}/255 is "
            f"{bpda[0]:+.1f} points ({seeds(*bpda[1:])}), against {soft:+.1f} through the soft layer. "
            f"Against the stronger of the two attacks in each seed it is {mean:+.1f} points ({seeds(lo, hi)})")
    if lo > 0 and mean >= soft / 2:
        text += (": the gain survives this test, so it is not only the soft quantiser's small gradient "
                 "(a stronger, adaptive attack could still shrink it).")
    elif lo > 0:
        text += (f": {soft - mean:.1f} points of it were the soft quantiser's attenuated gradient; "
                 "what remains is above zero in every seed.")
    else:
        text += (": the gain does not survive; it came from the soft quantiser's attenuated gradient "
                 "(gradient masking), not from robustness.")
    best_eps, best = h.get(f"{attack}_strong_best_eps", math.nan), h.get(f"{attack}_strong_best_gain_mean", math.nan)
    if math.isfinite(best) and math.isfinite(best_eps):
        text += (f" At any eps, the largest gain the stronger attack leaves is {best:+.1f} points, at eps "
                 f"{best_eps:g}/255; an attack choosing per image would leave at most that.")
    return text


def claims(h: dict, p: dict, network_label: str | None = None) -> list[tuple[str, str, str]]:
    """(quantity, the paper's claim quoted, ours) for the chapter's comparison table; ``h`` is
    :func:`headline`'s dict. Ours are formatted here, "not run" where we have no counterpart."""
    def pts(v, sd=math.nan):
        if not math.isfinite(v):
            return "pending"
        return f"{v:+.2f} points" + (f" (sd {sd:.2f} over {h['seeds']} seeds)" if math.isfinite(sd) else "")

    top = max(p["eps_255"])
    eps_text = f"eps {min(p['eps_255']):g}-{top:g}/255"
    steps_text = f"{p['steps']:,}" if p["steps"] else "its recipe's"
    return [
        ("setting", "CIFAR-100 (32 px) and fine-grained sets (224 px); ResNets, VGG, MobileNet, ShuffleNet, "
                    "DenseNet on GPUs, 200-240 epochs; tables initialised from a sensitivity map",
         f"CIFAR-10 (32 px), {network_label or p['network']} trained from scratch on a CPU, {steps_text} steps; tables "
         f"initialised from the standard tables at quality {p['jpeg_quality']} clamped at {p['jpeg_max_step']:g}"),
        ("clean accuracy gain, CIFAR", f"CIFAR-100: {PAPER['cifar100_text']} points (text); "
                                      f"{PAPER['cifar100_table']} on {PAPER['cifar100_models']} models (its Table 1)",
         "CIFAR-10: " + pts(h["diff_mean"], h["diff_sd"])),
        ("clean accuracy gain, fine-grained", f"{PAPER['fine_grained']} points (Flowers-102, DenseNet-121)",
         "not run"),
        ("robustness gain under FGSM", f"{PAPER['fgsm']} points (eps 1-4/255, CIFAR-100)",
         f"largest {pts(h['fgsm_best_gain'], h['fgsm_best_gain_sd'])} at eps {h['fgsm_best_eps']:g}/255 ({eps_text})"
         if math.isfinite(h.get("fgsm_best_gain", math.nan)) else "pending"),
        ("robustness gain under PGD (5 steps)", f"{PAPER['pgd']} points (eps 1-4/255, CIFAR-100)",
         f"largest {pts(h['pgd_best_gain'], h['pgd_best_gain_sd'])} at eps {h['pgd_best_eps']:g}/255 ({eps_text})"
         if math.isfinite(h.get("pgd_best_gain", math.nan)) else "pending"),
        ("robustness gain under a straight-through (BPDA) attack", "not reported (in the sources we have)",
         "; ".join(f"{a.upper()} {pts(h[f'{a}_bpda_gain_mean'], h[f'{a}_bpda_gain_sd'])} at eps "
                   f"{h[f'{a}_best_eps']:g}/255" for a in p["attacks"])
         if all(math.isfinite(h.get(f"{a}_bpda_gain_mean", math.nan)) for a in p["attacks"])
         else "not run on these models yet"),
        ("robustness gain under the stronger of the two attacks (per seed)", "not reported (in the sources we have)",
         "; ".join(f"{a.upper()} largest {pts(h[f'{a}_strong_best_gain_mean'], h[f'{a}_strong_best_gain_sd'])} "
                   f"at eps {h[f'{a}_strong_best_eps']:g}/255" for a in p["attacks"])
         if all(math.isfinite(h.get(f"{a}_strong_best_gain_mean", math.nan)) for a in p["attacks"])
         else "not run on these models yet"),
        ("hard rounding instead of the soft quantiser at test", f"changes accuracy by {PAPER['hard_rounding']} points",
         pts(h["hard_diff_mean"], h["hard_diff_sd"])),
        ("bits per pixel of a real JPEG with the learned tables",
         f"{PAPER['bpp']} bpp (fine-grained images, against 24 bpp raw)",
         f"{h['bpp_learned']:.2f} bpp whole files, {h['bpp_learned_scan']:.2f} bpp without headers (32 px images)"
         if math.isfinite(h["bpp_learned"]) else "pending"),
    ]
