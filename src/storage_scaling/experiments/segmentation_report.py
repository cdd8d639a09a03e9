"""What the segmentation chapter (notebook 11) reports about CamVid, read from result rows.

The rows are the runner's, as for classification: ``error`` is 1 - mIoU, ``accuracy`` the mIoU,
``class_error`` 1 - mean class accuracy and ``iou_<class>`` each class's IoU (``learn.metrics.
segmentation_row``). The functions here only select and summarise them; the law's fit and its
bootstrap are chapter 3's (:mod:`storage_scaling.law_report`), for the (CamVid, segmenter) group.

:func:`choice_table`       the runs that chose the segmenter's knobs on the val split;
:func:`grid_error_table`   mean 1 - mIoU per training-set size and format, with the seed range;
:func:`paper_grid_table`   the paper's Cityscapes law evaluated at its own grid cells;
:func:`class_iou_change`   each class's IoU at a low and a high distance, on the whole pool.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import law

DATASET, MODEL = "camvid-240x180", "segmenter"
PAPER = "cityscapes"  # the paper's segmentation task: SegFormer-B5 on Cityscapes, error 1 - mIoU
KNOBS = {"segmentation_scale": "scale", "segmentation_width": "width", "segmentation_epochs": "epochs",
         "segmentation_min_steps": "min steps", "segmentation_lr": "learning rate",
         "segmentation_decoder_precision": "decoder precision"}


def rows_of(frame: pd.DataFrame | None, dataset: str = DATASET, model: str = MODEL) -> pd.DataFrame:
    """The rows of one (dataset, model) of a result table (none for a missing table)."""
    if frame is None or not len(frame) or "dataset" not in frame:
        return pd.DataFrame()
    return frame[(frame["dataset"] == dataset) & (frame["model"] == model)].copy()


def _changed(row: pd.Series, reference: pd.Series) -> str:
    """The knobs of ``row`` that differ from ``reference`` (and its training-set size), in words."""
    parts = [f"{name} {row[col]:g}" if isinstance(row[col], (int, float, np.number)) else f"{name} {row[col]}"
             for col, name in KNOBS.items()
             if col in row.index and col in reference.index and pd.notna(row[col])
             and (pd.isna(reference[col]) or row[col] != reference[col])]
    if row["n"] != reference["n"]:
        parts.insert(0, f"n = {int(row['n'])}")
    return ", ".join(parts) or "the reference"


def choice_table(choice: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the choice specs, in run order: what it changes against the first run,
    its steps, val mIoU and 1 - mean class accuracy, the change in mIoU points against the first
    run at the same training-set size, and the decoder's seconds and autocast type."""
    if not len(choice):
        return pd.DataFrame()
    reference = choice.iloc[0]
    first_at_n = choice.groupby("n")["miou"].transform("first")
    return pd.DataFrame({
        "run": [_changed(r, reference) for _, r in choice.iterrows()],
        "n": choice["n"].astype(int).to_numpy(),
        "steps": choice["steps"].astype(int).to_numpy(),
        "val mIoU": choice["miou"].to_numpy(),
        "val 1 - mean class acc.": choice["class_error"].to_numpy(),
        "mIoU change (points)": (100 * (choice["miou"] - first_at_n)).to_numpy(),
        "decoder (s)": choice["decoder_seconds"].to_numpy(),
        "decoder autocast": choice.get("decoder_autocast", pd.Series("fp32", index=choice.index)).fillna("fp32")
        .to_numpy(),
    })


def format_name(codec, distance) -> str:
    return "original" if codec == "original" or pd.isna(distance) else f"d = {float(distance):g}"


def grid_error_table(grid: pd.DataFrame, pool_size: int) -> pd.DataFrame:
    """Mean 1 - mIoU over seeds per training-set size (rows, with its share of the pool) and
    format (columns: the original first, then by distance), as "mean [min, max]" text where a
    cell has several seeds."""
    if not len(grid):
        return pd.DataFrame()
    g = grid.assign(format=[format_name(c, d) for c, d in zip(grid["codec"], grid["distance"])],
                    order=grid["distance"].fillna(0.0))
    cells = g.groupby(["n", "format", "order"], as_index=False).agg(
        mean=("error", "mean"), lo=("error", "min"), hi=("error", "max"), seeds=("seed", "nunique"))
    cells["text"] = [f"{m:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if k > 1 else "")
                     for m, lo, hi, k in zip(cells["mean"], cells["lo"], cells["hi"], cells["seeds"])]
    table = cells.pivot(index="n", columns="format", values="text")
    columns = cells.drop_duplicates("format").sort_values("order")["format"].tolist()
    table = table[columns]
    table.insert(0, "share of the pool", [f"{n / pool_size:.0%}" for n in table.index])
    return table.reset_index().rename(columns={"n": "n"})


def paper_grid_table() -> pd.DataFrame:
    """The paper's Cityscapes law (1 - mIoU) at its own grid cells: training-set sizes
    (``law.PAPER_N_GRIDS``) by distance (bytes ``law.PAPER_SIZE_TABLES``). Values of the fit, not
    measurements: the paper published its grid only as a figure."""
    fit = law.paper_law(PAPER)
    sizes = law.PAPER_SIZE_TABLES[PAPER]
    pool = law.PAPER_POOL_SIZE[PAPER]
    rows = [{"n": n, "share of the pool": f"{n / pool:.0%}",
             **{f"d = {d:g}": float(fit.error(n, L)) for d, L in sizes.items()}} for n in law.PAPER_N_GRIDS[PAPER]]
    return pd.DataFrame(rows)


def class_iou_change(grid: pd.DataFrame, low: float = 1.0, high: float = 15.0) -> pd.DataFrame:
    """Each class's IoU (mean over seeds) on the whole pool at distances ``low`` and ``high``, and
    the change in points, the classes that lose most first: which classes compression hurts first."""
    classes = [c for c in grid.columns if c.startswith("iou_")]
    if not len(grid) or not classes:
        return pd.DataFrame()
    whole = grid[grid["n"] == grid["n"].max()]
    at = {d: whole[np.isclose(whole["distance"].astype(float), d)] for d in (low, high)}
    if any(not len(part) for part in at.values()):
        return pd.DataFrame()
    out = pd.DataFrame({"class": [c.removeprefix("iou_").replace("_", " ") for c in classes],
                        f"IoU at d = {low:g}": [at[low][c].mean() for c in classes],
                        f"IoU at d = {high:g}": [at[high][c].mean() for c in classes]})
    out["change (points)"] = 100 * (out[f"IoU at d = {high:g}"] - out[f"IoU at d = {low:g}"])
    return out.sort_values("change (points)").reset_index(drop=True)
