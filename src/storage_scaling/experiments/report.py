"""Summaries of experiment rows that the chapters show: plain functions on result frames.

Every summary keeps ``dataset`` and ``model`` apart, so rows of different models are never
averaged or fitted together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .kinds import RANDOMIZED_CODEC

SETTING = ["dataset", "model"]


def with_model(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a ``model`` column (older rows name only their ``network``)."""
    if "model" in frame.columns:
        return frame
    return frame.assign(model=frame["network"] if "network" in frame.columns else "unknown")


def format_label(codec, distance, range_start=None, range_end=None) -> str:
    """``original`` for the stored files, ``d=4`` for JPEG XL at distance 4, ``randomized d=0.5-15``
    for per-image distances over a range (a cross block's randomized model)."""
    if codec == RANDOMIZED_CODEC:
        return f"randomized d={float(range_start):g}-{float(range_end):g}"
    return "original" if codec == "original" or distance is None or pd.isna(distance) else f"d={float(distance):g}"


def with_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Error bars from the seed range: ``below`` and ``above`` the mean, never negative (seeds that
    agree exactly, e.g. a deterministic model on the whole pool, differ only by rounding)."""
    return frame.assign(below=(frame["error"] - frame["error_min"]).clip(lower=0),
                        above=(frame["error_max"] - frame["error"]).clip(lower=0))


def grid_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, n, format): means over seeds, with the seed range."""
    g = with_model(grid).copy()
    g["format"] = [format_label(c, d) for c, d in zip(g["codec"], g["distance"])]
    extra = {c: (c, "first") for c in ("steps", "epochs") if c in g.columns}  # networks only
    out = (g.groupby(SETTING + ["n", "format"], as_index=False, dropna=False)
           .agg(distance=("distance", "first"), mean_bytes=("mean_bytes", "mean"), error=("error", "mean"),
                error_min=("error", "min"), error_max=("error", "max"), f1_macro=("f1_macro", "mean"),
                seeds=("seed", "nunique"), **extra))
    out = out.sort_values(SETTING + ["n", "mean_bytes"], ascending=[True, True, True, False]).reset_index(drop=True)
    return with_spread(out)


def protocols(grid: pd.DataFrame) -> pd.DataFrame:
    """How each (dataset, model) was trained, in words (a ``protocol`` column)."""
    out = []
    for (ds, model), part in with_model(grid).groupby(SETTING):
        r = part.iloc[0]
        if "probe_centroids" in part.columns and pd.notna(r.get("probe_centroids")):
            text = (f"k-means features ({int(r['probe_centroids']):,} centroids, {int(r['probe_patch'])} px patches, "
                    f"stride {int(r['probe_stride'])}) + ridge, penalty chosen on the held-out 20 %")
        elif pd.notna(r.get("protocol")):
            text = (f"{str(r['protocol']).replace('_', ' ')}, {int(r['steps']):,} steps of "
                    f"{int(r['batch_size']):,} images")
        else:
            text = "protocol not recorded"
        out.append({"dataset": ds, "model": model, "protocol": text})
    return pd.DataFrame(out, columns=SETTING + ["protocol"])


def corners(summary: pd.DataFrame, dataset: str, model: str | None = None) -> pd.DataFrame:
    """The four JPEG XL corners of a grid (smallest/largest n x smallest/largest distance).

    Rows in the order of the paper's corner table: (min n, min d), (min n, max d), (max n, min d),
    (max n, max d); NaN where the grid has no such cell.
    """
    part = summary[(summary["dataset"] == dataset) & (summary["format"] != "original")]
    if model is not None:
        part = part[part["model"] == model]
    rows = []
    for which_n, which_d in (("min", "min"), ("min", "max"), ("max", "min"), ("max", "max")):
        if part.empty:
            rows.append({"n": np.nan, "d": np.nan, "error": np.nan})
            continue
        n = part["n"].min() if which_n == "min" else part["n"].max()
        d = part["distance"].min() if which_d == "min" else part["distance"].max()
        cell = part[(part["n"] == n) & (part["distance"] == d)]
        rows.append({"n": float(n), "d": float(d), "error": float(cell["error"].iloc[0]) if len(cell) else np.nan})
    return pd.DataFrame(rows)


SCHEMES = {"budget": "storage-optimal", "original": "original format", "randomized": "randomized"}


def scheme_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, model, scheme, budget) from the tables of the budget-type experiments
    (``{"budget": ..., "original": ..., "naive": ..., "randomized": ...}``): seed means and ranges.
    A naive table contributes one scheme per distance (``naive d=8``)."""
    parts = []
    for name, frame in frames.items():
        f = with_model(frame.copy())
        if name == "naive":
            f["scheme"] = "naive d=" + f["distance"].map("{:g}".format)
        elif name in SCHEMES:
            f["scheme"] = SCHEMES[name]
        else:
            raise ValueError(f"{name!r} is not a budget-type experiment; expected one of {sorted(SCHEMES) + ['naive']}")
        parts.append(f)
    rows = pd.concat(parts, ignore_index=True)
    return with_spread(rows.groupby(SETTING + ["scheme", "budget"], as_index=False)
                       .agg(n=("n", "mean"), mean_bytes=("mean_bytes", "mean"), fill=("budget_fill", "mean"),
                            error=("error", "mean"), error_min=("error", "min"), error_max=("error", "max"),
                            seeds=("seed", "nunique")))


def scheme_differences(per: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, budget): randomized minus storage-optimal and storage-optimal minus
    original format, in points of test error (negative: the first is better)."""
    wide = per.pivot_table(index=SETTING + ["budget"], columns="scheme", values="error")
    diff = pd.DataFrame(index=wide.index)
    for first, second, name in (("randomized", "storage-optimal", "randomized - optimal (points)"),
                                ("storage-optimal", "original format", "optimal - original (points)")):
        if {first, second} <= set(wide.columns):
            diff[name] = 100 * (wide[first] - wide[second])
    return diff.reset_index()


def cross_summary(cross: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, training format, test format): mean accuracy and bytes.

    ``scheme`` is ``fixed`` (every training image at one format) or ``randomized`` (the randomized
    model: per-image distances over a range, labelled with its range)."""
    c = with_model(cross.copy())
    for column in ("range_start", "range_end"):  # tables without a randomized model lack them
        if column not in c.columns:
            c[column] = np.nan
    c["train"] = [format_label(k, d, a, b) for k, d, a, b in zip(c["codec"], c["distance"], c["range_start"],
                                                                  c["range_end"])]
    c["test"] = [format_label(k, d) for k, d in zip(c["test_codec"], c["test_distance"])]
    c["scheme"] = np.where(c["codec"] == RANDOMIZED_CODEC, "randomized", "fixed")
    return c.groupby(SETTING + ["scheme", "train", "test"], as_index=False).agg(
        accuracy=("accuracy", "mean"), train_bytes=("mean_bytes", "mean"), test_bytes=("test_mean_bytes", "mean"))


def cross_matrix(heat: pd.DataFrame, dataset: str, model: str) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The heatmap of one (dataset, model) from :func:`cross_summary`: accuracy with training formats
    as rows (fixed formats by mean bytes, largest first, then the randomized model) and test formats
    as columns (largest first); with the mean bytes per image of each row and column."""
    h = heat[(heat["dataset"] == dataset) & (heat["model"] == model)]
    if h.empty:
        raise ValueError(f"the cross table has no rows for dataset {dataset!r} and model {model!r}")
    train = h.groupby(["scheme", "train"])["train_bytes"].mean().reset_index()
    train = train.assign(last=train["scheme"] == "randomized").sort_values(["last", "train_bytes"],
                                                                         ascending=[True, False])
    train_bytes = pd.Series(train["train_bytes"].to_numpy(), index=train["train"].to_numpy(), name="train_bytes")
    test_bytes = h.groupby("test")["test_bytes"].mean().sort_values(ascending=False)
    matrix = h.pivot(index="train", columns="test", values="accuracy")
    return matrix.loc[list(train_bytes.index), list(test_bytes.index)], train_bytes, test_bytes
