"""The quality checks of a model, read from the ``quality`` experiment's rows.

1. **Whole pool**: at the original format, the model must reach its accuracy floor
   (:data:`FLOORS`, per dataset and model) on the test split;
2. **Step doubling**: doubling the step budget changes the error at the smallest and the largest n
   by at most :data:`MAX_CHANGE_POINTS` points (otherwise the law would be fitted to under-training).
"""

from __future__ import annotations

import pandas as pd

# (dataset, model) -> the least test accuracy on the whole pool at the original format
FLOORS = {
    ("cifar10-jpg", "airnet"): 0.90,  # airbench 0.1.8 reaches 90.6 % on these stored JPEGs
    ("food101-64px", "resnet18_64"): 0.55,  # a ResNet-18 with a stride-1 stem reached 54.6 % on half the pool
    ("cifar10-jpg", "probe"): 0.70,  # issue 11: a first probe reached 71 % on 45,000 images
    ("food101-64px", "probe"): 0.22,  # issue 11: 24 % on 70,000 images (101 classes)
    ("cifar10-jpg", "cnn_cpu"): 0.85,  # issue 12: a small CNN reached 84.6 % after 160 s on a 2-core CPU
    ("food101-64px", "pretrained"): 0.38,  # issue 31: frozen EfficientNet-Lite0 + ridge, 38 % on 40,000 images
    # issue 32: the test mIoU (a segmenter's ``accuracy``); a trial of the frozen backbone and a light decoder: 50 %
    ("camvid-240x180", "segmenter"): 0.45,
}
MAX_CHANGE_POINTS = 1.0


def whole_pool(quality: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model): mean accuracy over seeds, its floor and whether it is met."""
    rows = quality[quality["check"] == "whole_pool"]
    speed = {"images_per_second": ("images_per_second", "median")} if "images_per_second" in rows else {}  # networks
    out = (rows.groupby(["dataset", "model"], as_index=False)
           .agg(n=("n", "first"), accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
                seeds=("seed", "nunique"), seconds=("train_seconds", "median"), **speed))
    out["floor"] = [FLOORS.get((d, m), float("nan")) for d, m in zip(out["dataset"], out["model"])]
    out["meets floor"] = out["accuracy"] >= out["floor"]
    return out


def doubling(quality: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, n): the error change in points when the step budget doubles."""
    columns = ["dataset", "model", "n", "steps", "error change (points)", "within limit"]
    rows = quality[quality["check"] == "doubling"]
    if rows.empty:  # models without a step budget (the probe) have no doubling rows, nor a steps column
        return pd.DataFrame(columns=columns)
    means = rows.groupby(["dataset", "model", "n", "steps"], as_index=False)["error"].mean()
    out = []
    for (ds, model, n), g in means.groupby(["dataset", "model", "n"]):
        g = g.sort_values("steps")
        if len(g) != 2:
            continue
        change = 100 * float(g["error"].iloc[1] - g["error"].iloc[0])
        steps = g["steps"].astype(int).to_numpy()  # steps are counts; CSV rows may read them back as floats
        out.append({"dataset": ds, "model": model, "n": int(n), "steps": f"{steps[0]:,} -> {steps[1]:,}",
                    "error change (points)": change, "within limit": abs(change) <= MAX_CHANGE_POINTS})
    return pd.DataFrame(out, columns=columns)


def whole_pool_sentence(row, label=str) -> str:
    """One line of :func:`whole_pool` for a chapter: accuracy, floor and verdict."""
    floor = "no floor set" if pd.isna(row["floor"]) else (
        f"floor {row['floor']:.0%}, {'met' if row['meets floor'] else 'NOT met'}")
    return (f"{label(row['dataset'])}, {label(row['model'])}: {row['accuracy']:.1%} on {int(row['n']):,} images "
            f"({floor})")
