"""Summaries of experiment rows that the chapters show: plain functions on result frames.

Every summary keeps ``dataset`` and ``model`` apart, so rows of different models are never
averaged or fitted together.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..learn import learners
from . import kept
from .kinds import KEEP_ORIGINALS, RANDOMIZED_CODEC

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


def flag(column: pd.Series) -> pd.Series:
    """A boolean column read back from CSV, where it may be ``True``, ``true``, ``1`` or ``1.0``."""
    return column.astype(str).str.lower().isin(("true", "1", "1.0"))


def name_once(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """A table as a reader scans it: the values of ``columns`` (a dataset and model, a setting)
    written on the first row of each run of equal rows only, blank below."""
    out = frame.reset_index(drop=True).copy()
    columns = list(columns)
    repeat = (out[columns] == out[columns].shift()).all(axis=1)
    out.loc[repeat, columns] = ""
    return out


def naive_distance(scheme: str) -> float:
    """The distance of a fixed-distance scheme ("naive d=3" -> 3.0); NaN for any other scheme."""
    return float(scheme.removeprefix("naive d=")) if isinstance(scheme, str) and scheme.startswith("naive d=") \
        else np.nan


def optimal_kept(diff: pd.DataFrame) -> pd.Series:
    """Rows of :func:`scheme_differences` where the law kept the originals: storage-optimal is the
    original-format run itself, so "optimal - original" is 0 by construction, not a measured tie."""
    if "optimal keeps originals" not in diff.columns:
        return pd.Series(False, index=diff.index)
    return flag(diff["optimal keeps originals"])


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


def grid_error_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`grid_summary` as a chapter can show it: one row per (dataset, model, n), the seeds, and
    one column of mean test error per format (the original files first, then by distance). The
    grid's hundred-odd (n, format) rows do not fit on a page; every seed's row stays in the notebook."""
    s = summary.assign(_order=summary["distance"].fillna(-1.0))
    formats = list(dict.fromkeys(s.sort_values("_order")["format"]))
    keys = SETTING + ["n"]
    errors = s.pivot_table(index=keys, columns="format", values="error", aggfunc="mean")
    seeds = s.groupby(keys)["seeds"].max().rename("seeds")
    out = pd.concat([seeds, errors.reindex(columns=formats)], axis=1).reset_index()
    out.columns.name = None
    return out.sort_values(keys).reset_index(drop=True)


def mean_range(mean, low, high, spec: str = ".1f", missing: str = "–", sep: str = " ") -> list[str]:
    """'63.1 [62.8, 63.5]': a mean with its seed range in one table cell (as :func:`differences_table`
    writes intervals), so a chapter table shows the interval without three columns per quantity
    (``sep`` between them: "<br>" puts the range under the mean in a narrow column)."""
    out = []
    for m, lo, hi in zip(mean, low, high):
        if pd.isna(m):
            out.append(missing)
            continue
        text = format(float(m), spec)
        ends = [format(float(v), spec) for v in (lo, hi) if not pd.isna(v)]
        # one seed, or seeds that agree at the precision shown: the mean alone
        out.append(f"{text}{sep}[{ends[0]}, {ends[1]}]" if len(ends) == 2 and ends[0] != ends[1] else text)
    return out


def not_run_models(experiment: str, frame: pd.DataFrame) -> list[str]:
    """The GPU-tier models of ``experiment``'s full spec that have no row in ``frame``: what a
    chapter says has not run (with the command that runs it) instead of showing toy numbers."""
    from .specs import default_spec, models_of

    have = set(with_model(frame)["model"]) if len(frame) else set()
    return [m for m in models_of(default_spec(experiment, "full")) if learners.get(m).needs_gpu and m not in have]


def protocols(grid: pd.DataFrame) -> pd.DataFrame:
    """How each (dataset, model) was trained, in words (a ``protocol`` column)."""
    out = []
    for (ds, model), part in with_model(grid).groupby(SETTING):
        r = part.iloc[0]
        if "probe_centroids" in part.columns and pd.notna(r.get("probe_centroids")):
            text = (f"k-means features ({int(r['probe_centroids']):,} centroids, {int(r['probe_patch'])} px patches, "
                    f"stride {int(r['probe_stride'])}) + ridge, penalty chosen on the held-out 20 %")
        elif "pretrained_input_size" in part.columns and pd.notna(r.get("pretrained_input_size")):
            text = (f"frozen ImageNet EfficientNet-Lite0 features at {int(r['pretrained_input_size'])} px + ridge, "
                    "penalty chosen on the held-out 20 %")
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


def grid_highlights(grid: pd.DataFrame) -> pd.DataFrame:
    """The numbers a chapter quotes per (dataset, model) of a grid: runs and seeds, the lowest
    error and its cell, the compression penalty at the largest n (smallest to largest distance),
    the data gain at the smallest distance (smallest to largest n), and the time the runs took
    (``train_seconds`` summed: fits plus features computed by the runs, not store encoding)."""
    summary = grid_summary(grid)
    rows = []
    for (ds, model), part in summary.groupby(SETTING):
        c = corners(summary, ds, model)["error"].to_numpy()
        best = part.loc[part["error"].idxmin()]
        raw = with_model(grid)
        raw = raw[(raw["dataset"] == ds) & (raw["model"] == model)]
        rows.append({"dataset": ds, "model": model, "runs": len(raw), "seeds": int(raw["seed"].nunique()),
                     "lowest error": float(best["error"]), "at n": int(best["n"]), "at format": best["format"],
                     "compression penalty (points)": 100 * (c[3] - c[2]),
                     "data gain (points)": 100 * (c[0] - c[2]),
                     "hours": float(raw["train_seconds"].sum() / 3600) if "train_seconds" in raw else np.nan})
    return pd.DataFrame(rows)


def highlight_sentence(h: pd.Series, label=str) -> str:
    """One sentence of :func:`grid_highlights` for the chapter (``label`` names datasets/models)."""
    def points(x):
        return "(not measured yet)" if pd.isna(x) else f"{x:.1f} points"

    what = learners.get(h["model"]).work
    return (f"{label(h['dataset'])}, {label(h['model'])} ({h['runs']:,} runs, {h['seeds']} seed(s), "
            f"{h['hours']:.1f} hours of {what}): lowest error {h['lowest error']:.3f} "
            f"(n = {h['at n']:,}, {h['at format']}); at the largest n, compressing from the smallest to the "
            f"largest distance costs {points(h['compression penalty (points)'])}, and at the smallest "
            f"distance the smallest n is worse than the largest by {points(h['data gain (points)'])}.")


def training_keys(frame: pd.DataFrame) -> pd.Series:
    """Which rows share one training: runs that differ only in their scoring set (``EVAL_KEYS``,
    the cross grid's test formats) are one model scored several times. Read from each row's
    ``params_json``; a table without it counts every row as its own training."""
    if "params_json" not in frame.columns:
        return pd.Series(frame.index.astype(str), index=frame.index)
    return frame["params_json"].map(lambda text: kept.training_key(json.loads(text)))


def scored_kept_model(frame: pd.DataFrame) -> pd.Series:
    """Rows that scored another experiment's kept model (a ``model_from`` run key: the cross grid
    scoring the grid's whole-pool models) and so trained nothing themselves."""
    if "model_from" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["model_from"].notna() & frame["model_from"].astype(str).str.strip().ne("")


def kept_models_sentence(cross: pd.DataFrame, label=str) -> str:
    """Per (dataset, model) of a cross table: how many of its models are the grid's own whole-pool
    models, scored without training (evaluation only), and how many it trained itself."""
    c = with_model(cross).assign(_training=training_keys(cross).to_numpy(), _kept=scored_kept_model(cross).to_numpy())
    out = []
    for (ds, model), part in c.groupby(SETTING):
        models = part.drop_duplicates("_training")
        kept, total = int(models["_kept"].sum()), len(models)
        out.append(f"{label(ds)}, {label(model)}: {kept} of {total} model{'s' * (total != 1)} scored from the "
                   f"grid's whole-pool runs (evaluation only), {total - kept} trained for this grid")
    return "; ".join(out) + "." if out else "pending (no cross rows yet)"


def run_hours(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """What each experiment cost, per (dataset, model, experiment): ``runs`` (rows), ``trainings``
    (a cross-grid model scored at seven test formats is one; a kept grid model scored again is
    none), ``hours`` (``train_seconds`` summed once per training: fits and features for the probe,
    training for networks; store encoding and scoring not included) and the ``devices`` that ran them.

    ``frames`` maps an experiment's name to its result rows; a training without ``train_seconds``
    makes the hours NaN rather than zero, so a missing measurement is never read as a free run."""
    rows = []
    for name, frame in frames.items():
        if not len(frame):
            continue
        f = with_model(frame)
        f = f.assign(_training=training_keys(f).to_numpy(), _kept=scored_kept_model(f).to_numpy(),
                     _seconds=f["train_seconds"] if "train_seconds" in f.columns else np.nan,
                     _device=f["device"].astype(str) if "device" in f.columns else "not recorded")
        for (ds, model), part in f.groupby(SETTING):
            once = part[~part["_kept"]].drop_duplicates("_training")
            rows.append({"dataset": ds, "model": model, "experiment": name, "runs": len(part),
                         "trainings": len(once), "hours": float(once["_seconds"].sum(min_count=len(once)) / 3600),
                         "devices": ", ".join(sorted(part["_device"].unique()))})
    columns = SETTING + ["experiment", "runs", "trainings", "hours", "devices"]
    return pd.DataFrame(rows, columns=columns).sort_values(SETTING, kind="stable").reset_index(drop=True)


def run_hours_sentence(hours: pd.DataFrame, label=str) -> str:
    """:func:`run_hours` in words, one clause per (dataset, model): total hours, runs and devices."""
    out = []
    for (ds, model), part in hours.groupby(SETTING, sort=False):
        total = part["hours"].sum(min_count=len(part))
        spent = "time not recorded" if pd.isna(total) else f"{total:.1f} hours"
        runs = int(part["runs"].sum())
        out.append(f"{label(ds)}, {label(model)}: {spent} over {runs:,} run{'s' * (runs != 1)} "
                   f"({learners.get(model).work}, on {', '.join(sorted(set(part['devices'])))})")
    return "; ".join(out) + "." if out else "pending (no runs yet)"


def mean_differences_sentence(diff: pd.DataFrame, label=str) -> str:
    """The seed-paired differences of :func:`scheme_differences` averaged over budgets, one clause
    per (dataset, model): settings differ too much to share one average."""
    out = []
    for (ds, model), part in diff.groupby(SETTING):
        kept = optimal_kept(part)
        bits = []
        for first, _, name in PAIRS:
            values = part.loc[~kept, name] if first == "storage-optimal" and name in part.columns else part.get(name)
            if values is not None and values.notna().any():  # budgets where the law kept the originals: 0 by construction
                bits.append(f"{name.split(' (')[0]} {values.mean():+.2f} points")
        if bits:
            out.append(f"{label(ds)}, {label(model)}: " + ", ".join(bits))
    return "; ".join(out) + "." if out else "pending (no budget rows with both schemes yet)"


SCHEMES = {"budget": "storage-optimal", "original": "original format", "randomized": "randomized"}


def scheme_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, model, scheme, budget) from the tables of the budget-type experiments
    (``{"budget": ..., "original": ..., "naive": ..., "randomized": ...}``): seed means and ranges.
    A naive table contributes one scheme per distance (``naive d=8``); degenerate randomized rows
    (nothing randomized: :func:`degenerate_randomized`) are left out, as in every comparison."""
    parts = []
    for name, frame in frames.items():
        f = with_model(frame.copy())
        if name == "randomized" and len(f):
            f = f[~degenerate_randomized(f)]
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


PAIRS = (("randomized", "storage-optimal", "randomized - optimal (points)"),
         ("storage-optimal", "original format", "optimal - original (points)"))


def keeps_originals(frame: pd.DataFrame) -> pd.Series:
    """Budget-type rows whose law allocation kept the original files (``allocation_rule``)."""
    if "allocation_rule" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["allocation_rule"].astype(str).eq(KEEP_ORIGINALS)


def degenerate_randomized(frame: pd.DataFrame) -> pd.Series:
    """Randomized rows with nothing randomized: the law kept the originals, or the search's range
    collapsed to one distance (every image at the same setting). Such a row is the storage-optimal
    (or original-format) run again, not a result of randomization."""
    collapsed = (frame["d_max"] - frame["d_min"]).abs() < 1e-9 if {"d_min", "d_max"} <= set(frame.columns) \
        else pd.Series(False, index=frame.index)
    return keeps_originals(frame) | collapsed


def degenerate_sentence(randomized: pd.DataFrame, label=str) -> str:
    """Per (dataset, model): how many randomized runs are degenerate and why (left out of the
    randomized-minus-optimal comparison)."""
    rows = with_model(randomized)
    if rows.empty:
        return "no randomized rows"
    out = []
    for (ds, model), part in rows.groupby(SETTING):
        bad = degenerate_randomized(part)
        text = f"{label(ds)}, {label(model)}: {int(bad.sum())} of {len(part)}"
        if bad.any():
            kept = int(keeps_originals(part[bad]).sum())
            text += (f" ({kept} because the law keeps the originals, {int(bad.sum()) - kept} with a range collapsed "
                     "to one distance)")
        out.append(text)
    return "; ".join(out) + "."


def _scheme_rows(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows of the compared schemes; degenerate randomized rows are left out (not a randomization)."""
    parts = []
    for name, frame in frames.items():
        if name in SCHEMES and len(frame):
            f = with_model(frame.copy())
            if name == "randomized":
                f = f[~degenerate_randomized(f)]
            parts.append(f.assign(scheme=SCHEMES[name], kept_originals=keeps_originals(f)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SETTING + ["scheme", "budget"])


def scheme_differences(frames: dict[str, pd.DataFrame], level: float = 0.95) -> pd.DataFrame:
    """Per (dataset, model, budget): randomized minus storage-optimal and storage-optimal minus
    original format, in points of test error (negative: the first is better), paired by seed
    (the same seed draws the same nested order for every scheme), with a Student-t interval over
    the seeds' paired differences (NaN with one seed). Degenerate randomized rows are left out;
    ``optimal keeps originals`` marks budgets where the law kept the original files, so that the
    storage-optimal run is the original-format run itself (a difference of 0 by construction)."""
    from scipy import stats

    rows = _scheme_rows(frames)
    out = []
    for key, part in rows.groupby(SETTING + ["budget"]):
        by = part.pivot_table(index="seed", columns="scheme", values="error")
        row = dict(zip(SETTING + ["budget"], key))
        row["optimal keeps originals"] = bool(part.loc[part["scheme"] == SCHEMES["budget"], "kept_originals"].any())
        for first, second, name in PAIRS:
            if {first, second} <= set(by.columns):
                d = 100 * (by[first] - by[second]).dropna()
                half = (stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
                        if len(d) > 1 else np.nan)
                row.update({name: float(d.mean()), f"{name} lo": float(d.mean() - half),
                            f"{name} hi": float(d.mean() + half), f"{name} seeds": len(d)})
        out.append(row)
    return pd.DataFrame(out)


def differences_table(diff: pd.DataFrame) -> pd.DataFrame:
    """:func:`scheme_differences` for reading: "mean [lo, hi]" points per comparison; a dash where
    a budget lacks a pair, and "originals kept" where storage-optimal is the original-format run
    itself (a 0 there would read as a measured tie)."""
    out = diff[[c for c in SETTING + ["budget"] if c in diff.columns]].copy()
    kept = optimal_kept(diff)
    for first, _, name in PAIRS:
        if name in diff.columns:
            out[name] = ["originals kept" if k and first == "storage-optimal" else "–" if np.isnan(m) else
                         f"{m:+.2f}" + ("" if np.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
                         for m, lo, hi, k in zip(diff[name], diff[f"{name} lo"], diff[f"{name} hi"], kept)]
    return out


def differences_sentence(diff: pd.DataFrame, label=str) -> str:
    """Per (dataset, model), in words: at how many budgets the storage-optimal scheme surely beats
    the original format (its interval entirely below zero) or surely loses to it (entirely above),
    the same for randomized against storage-optimal, with the range of the seed-paired differences."""
    out = []
    for (ds, model), part in diff.groupby(SETTING):
        bits = []
        kept = optimal_kept(part)
        if kept.any():
            bits.append(f"at {int(kept.sum())} of {len(part)} budget(s) the law keeps the originals, so "
                        "storage-optimal is the original-format run itself there and left out below")
        for first, second, name in PAIRS:
            if name not in part.columns or part[name].isna().all():
                continue
            d = part.dropna(subset=[name])
            if first == "storage-optimal":
                d = d[~kept.loc[d.index]]
            if d.empty:
                continue
            below, above = int((d[f"{name} hi"] < 0).sum()), int((d[f"{name} lo"] > 0).sum())
            bits.append(f"{first} minus {second} is {d[name].min():+.1f} to {d[name].max():+.1f} points over "
                        f"{len(d)} budget(s), its 95 % interval entirely below zero at {below} of them and "
                        f"entirely above zero at {above}")
        if bits:
            out.append(f"{label(ds)}, {label(model)}: " + "; ".join(bits) + ".")
    return " ".join(out) if out else "pending (no budget rows with both schemes yet)"


def lone_scheme_text(ds: str, model: str, scheme: str, label=str) -> str:
    """What a chapter says of a setting whose budgets have one scheme run: nothing to compare yet."""
    return f"{label(ds)}, {label(model)}: only {scheme} has run, so its comparison is pending"


def best_schemes_sentence(per: pd.DataFrame, label=str) -> str:
    """Per (dataset, model) of :func:`scheme_summary`: which scheme has the lowest mean test error
    at how many budgets (ties counted for each), so a chapter says plainly when the law's
    allocation is not the best way to fill a budget. A setting with one scheme is named pending."""
    out = []
    for (ds, model), part in per.groupby(SETTING):
        if part["scheme"].nunique() < 2:
            out.append(lone_scheme_text(ds, model, part["scheme"].iloc[0], label))
            continue
        lowest = part.groupby("budget")["error"].transform("min")
        counts = part[part["error"] == lowest]["scheme"].value_counts()
        budgets = part["budget"].nunique()
        wins = ", ".join(f"{scheme} at {k} of {budgets} budget{'s' * (budgets != 1)}" for scheme, k in counts.items())
        optimal = part["scheme"] == SCHEMES["budget"]
        if optimal.any():
            gap = 100 * (part.loc[optimal, "error"] - lowest[optimal])
            wins += f" (storage-optimal {gap.min():.1f} to {gap.max():.1f} points above the lowest)"
        out.append(f"{label(ds)}, {label(model)}: {wins}")
    return "; ".join(out) + "." if out else "pending (no budget rows yet)"


def capped_allocations_sentence(budget_rows: pd.DataFrame, label=str) -> str:
    """Per (dataset, model): how many storage-optimal runs did not use the law's n*(s) as it is
    (``allocation_capped``: the pool, or the sizes the codec reaches, set n instead)."""
    rows = with_model(budget_rows)
    if "allocation_capped" not in rows.columns or rows.empty:
        return "no law allocation in these rows"
    out = []
    for (ds, model), part in rows.groupby(SETTING):
        originals = keeps_originals(part)
        capped = flag(part["allocation_capped"]) & ~originals
        text = f"{label(ds)}, {label(model)}: {int(capped.sum())} of {len(part)} runs capped"
        if capped.any():
            c = part[capped]
            text += (f" (n*(s) from {c['n_star'].min():,.0f} to {c['n_star'].max():,.0f}; "
                     f"kept n from {c['n'].min():,.0f} to {c['n'].max():,.0f})")
        if originals.any():
            k = part[originals]
            text += (f", {int(originals.sum())} keeping the originals (n*(s) from {k['n_star'].min():,.0f} to "
                     f"{k['n_star'].max():,.0f}, so L* above the original files' bytes; the original-format "
                     f"scheme's {k['n'].min():,.0f} to {k['n'].max():,.0f} images)")
        out.append(text)
    return "; ".join(out) + "."


def with_law_prediction(per: pd.DataFrame, laws: dict) -> pd.DataFrame:
    """``per`` (from :func:`scheme_summary`) with the error a fitted law predicts at each row's
    n and mean bytes (``laws``: (dataset, model) -> an object with ``error(n, L)``; NaN where
    no law was fitted)."""
    pred = [float(laws[(ds, m)].error(n, L)) if (ds, m) in laws else np.nan
            for ds, m, n, L in zip(per["dataset"], per["model"], per["n"], per["mean_bytes"])]
    return per.assign(law_error=pred)


LAW_ROW = "law's prediction"


def scheme_order(scheme: str) -> tuple:
    """storage-optimal, randomized, original format, then the naive distances in increasing order."""
    named = [SCHEMES["budget"], SCHEMES["randomized"], SCHEMES["original"]]
    if scheme in named:
        return (named.index(scheme), 0.0)
    if scheme.startswith("naive d="):
        return (len(named), naive_distance(scheme))
    return (len(named) + 1, 0.0)


def scheme_budget_table(per: pd.DataFrame, dataset: str, model: str, sep: str = " ",
                        budget_label=lambda b: f"{b / 1e6:.3g} MB") -> pd.DataFrame:
    """One (dataset, model) of :func:`scheme_summary` as a chapter reads it: one row per scheme,
    one column per budget (``budget_label`` of it), cells "mean [min, max]" of the seeds' test
    errors (the mean alone with one seed, a dash where a scheme lacks the budget). With a
    ``law_error`` column (:func:`with_law_prediction`), a last row gives the law's predicted error
    for the storage-optimal split. One table per setting: settings have different budgets, and
    the raw rows of every setting at once do not fit a page."""
    part = per[(per["dataset"] == dataset) & (per["model"] == model)]
    if part.empty:
        raise ValueError(f"no scheme rows for dataset {dataset!r} and model {model!r}")
    budgets = sorted(part["budget"].unique())
    text = mean_range(part["error"], part["error_min"].where(part["seeds"] > 1), part["error_max"], ".3f", sep=sep)
    cells = dict(zip(zip(part["scheme"], part["budget"]), text))
    rows = [{"scheme": s, **{budget_label(b): cells.get((s, b), "–") for b in budgets}}
            for s in sorted(part["scheme"].unique(), key=scheme_order)]
    optimal = part[part["scheme"] == SCHEMES["budget"]]
    if "law_error" in part.columns and optimal["law_error"].notna().any():
        law = dict(zip(optimal["budget"], optimal["law_error"]))
        rows.append({"scheme": LAW_ROW, **{budget_label(b): "–" if pd.isna(law.get(b, np.nan)) else f"{law[b]:.3f}"
                                           for b in budgets}})
    return pd.DataFrame(rows)


def _distance_text(d: float) -> str:
    """A searched distance at the search's precision (1e-3), without trailing zeros: 0.5, 1.466, 15."""
    return f"{d:.3f}".rstrip("0").rstrip(".")


def _share(percent: float) -> str:
    """A share of the budget in percent, two decimals; short of the budget never reads "100.00"."""
    text = f"{percent:.2f}"
    return "99.99" if text == "100.00" and percent < 100 else text


def _span(values, text=str) -> str:
    """"a to b" over ``values`` (one value when they agree), each written by ``text``."""
    values = pd.Series(values).dropna()
    if values.empty:
        return "–"
    lo, hi = text(values.min()), text(values.max())
    return lo if lo == hi else f"{lo} to {hi}"


def budget_fit_summary(budget_rows: pd.DataFrame, randomized_rows: pd.DataFrame) -> pd.DataFrame:
    """How the searched schemes met their budgets, one row per (dataset, model, scheme) instead of
    one per run: the distances found (storage-optimal: its one distance; randomized: the ends of
    its range; runs where the law kept the originals counted apart, they search nothing), the
    images kept, the share of the budget the real bytes used (%), the runs whose bytes landed
    within the search's tolerance (at most the budget, at least 99.5 % of it) and the real
    encodes each run took."""
    out = []
    for scheme, frame in ((SCHEMES["budget"], budget_rows), (SCHEMES["randomized"], randomized_rows)):
        if frame is None or not len(frame):
            continue
        for (ds, model), part in with_model(frame).groupby(SETTING):
            kept = keeps_originals(part)
            searched = part[~kept]
            if scheme == SCHEMES["budget"]:
                found = _span(searched["distance"], _distance_text)
            else:
                found = (f"lower end {_span(searched['d_min'], _distance_text)}, upper end "
                         f"{_span(searched['d_max'], _distance_text)}")
            found = found if len(searched) else ""
            if kept.any():
                k = int(kept.sum())
                found += ("; " if found else "") + f"originals kept in {k} run{'s' * (k != 1)}"
            within = flag(part["within_tolerance"]) if "within_tolerance" in part.columns else None
            out.append({"dataset": ds, "model": model, "scheme": scheme, "distance found": found,
                        "images kept": _span(part["n"], lambda v: f"{v:,.0f}"),
                        "budget used (%)": _span(100 * part["budget_fill"], _share),
                        "runs within tolerance": "–" if within is None else f"{int(within.sum())} of {len(part)}",
                        "real encodes per run": _span(part["encodes"], lambda v: f"{v:.0f}")
                        if "encodes" in part.columns else "–"})
    columns = SETTING + ["scheme", "distance found", "images kept", "budget used (%)", "runs within tolerance",
                         "real encodes per run"]
    return pd.DataFrame(out, columns=columns).sort_values(SETTING, kind="stable").reset_index(drop=True)


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


def blog_summary(blog: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, format) of the ``blog`` experiment, original format first.

    ``n`` images kept (mean over seeds) and ``n_ratio``, that count as a multiple of the
    original-format count; ``mean_bytes``; ``accuracy`` (mean over seeds) with ``accuracy_min`` and
    ``accuracy_max`` (the seed range, for error bars); ``gain_points``, the accuracy gain over the
    original format in percentage points, averaged over the seeds both formats have (paired: a
    partial table compares like with like), with its seed range ``gain_min`` / ``gain_max``.
    NaN where the original format has no row yet.
    """
    need = {"dataset", "codec", "distance", "seed", "n", "budget", "mean_bytes", "accuracy", "pool_exhausted"}
    missing = sorted(need - set(blog.columns))
    if missing:
        raise ValueError(f"blog_summary needs rows of the blog experiment; these lack column(s) {missing}")
    b = with_model(blog.copy())
    b["format"] = [format_label(c, d) for c, d in zip(b["codec"], b["distance"])]
    b["pool_exhausted"] = flag(b["pool_exhausted"])
    out = (b.groupby(SETTING + ["format"], as_index=False, dropna=False)
           .agg(distance=("distance", "first"), budget=("budget", "mean"), n=("n", "mean"),
                mean_bytes=("mean_bytes", "mean"), accuracy=("accuracy", "mean"),
                accuracy_min=("accuracy", "min"), accuracy_max=("accuracy", "max"),
                pool_exhausted=("pool_exhausted", "all"), seeds=("seed", "nunique")))
    keep = ["seed", "accuracy", "n"]
    originals = {key: g[keep] for key, g in b[b["format"] == "original"].groupby(SETTING)}
    paired = []
    for (ds, model, fmt), g in b.groupby(SETTING + ["format"]):
        base = originals.get((ds, model), pd.DataFrame(columns=keep, dtype=float))
        pairs = g[keep].merge(base, on="seed", suffixes=("", "_original"))
        gain = 100 * (pairs["accuracy"] - pairs["accuracy_original"])
        paired.append({"dataset": ds, "model": model, "format": fmt,
                       "n_ratio": (pairs["n"] / pairs["n_original"]).mean(),
                       "gain_points": gain.mean(), "gain_min": gain.min(), "gain_max": gain.max()})
    columns = SETTING + ["format", "n_ratio", "gain_points", "gain_min", "gain_max"]
    out = out.merge(pd.DataFrame(paired, columns=columns), on=SETTING + ["format"], how="left")
    out["order"] = out["distance"].fillna(0.0)  # the original format first, as the blog's d = 0
    out = out.sort_values(SETTING + ["order"]).drop(columns="order").reset_index(drop=True)
    return out[SETTING + ["format", "distance", "budget", "n", "n_ratio", "mean_bytes", "accuracy", "accuracy_min",
                          "accuracy_max", "gain_points", "gain_min", "gain_max", "pool_exhausted", "seeds"]]


def blog_headline(summary: pd.DataFrame, distance: float = 10.0) -> pd.DataFrame:
    """One row per (dataset, model) of :func:`blog_summary`: the numbers the blog quotes, ours.

    ``budget``, ``n_original`` and ``n_at`` (images kept at the original format and at
    ``distance``), ``ratio`` (their ratio, paired over seeds), ``accuracy_original``,
    ``accuracy_at``, ``gain_points`` with its seed range, and the format of the best mean accuracy
    with its gain (``best_format``, ``best_gain_points``). NaN (``best_format`` None) where the
    rows are not there yet.
    """
    rows = []
    for (ds, model), part in summary.groupby(SETTING):
        at = part[part["distance"] == float(distance)]
        orig = part[part["format"] == "original"]
        best = part.loc[part["accuracy"].idxmax()] if part["accuracy"].notna().any() else None

        def first(frame, col):
            return float(frame[col].iloc[0]) if len(frame) else np.nan

        rows.append({"dataset": ds, "model": model, "budget": float(part["budget"].mean()),
                     "n_original": first(orig, "n"), "n_at": first(at, "n"), "ratio": first(at, "n_ratio"),
                     "accuracy_original": first(orig, "accuracy"), "accuracy_at": first(at, "accuracy"),
                     "gain_points": first(at, "gain_points"), "gain_min": first(at, "gain_min"),
                     "gain_max": first(at, "gain_max"), "seeds": int(part["seeds"].max()),
                     "best_format": None if best is None else best["format"],
                     "best_gain_points": np.nan if best is None else float(best["gain_points"])})
    columns = SETTING + ["budget", "n_original", "n_at", "ratio", "accuracy_original", "accuracy_at", "gain_points",
                         "gain_min", "gain_max", "seeds", "best_format", "best_gain_points"]
    return pd.DataFrame(rows, columns=columns)


def blog_verdict_sentence(headline: pd.DataFrame, claim_points: float, distance: float = 10.0, label=str) -> str:
    """Whether our runs reproduce the blog's claim (a gain of more than ``claim_points`` accuracy
    points at ``distance`` over the original format), per (dataset, model) of :func:`blog_headline`,
    and what the best format gained instead: the chapter's verdict in plain words, first."""
    done = headline.dropna(subset=["gain_points"])
    if done.empty:
        return "pending (no blog rows with both the original format and the distance yet)"
    reached = done["gain_points"] > claim_points
    at = "; ".join(f"{label(ds)}, {label(m)} {g:+.1f} points (seeds {lo:+.1f} to {hi:+.1f})"
                   for ds, m, g, lo, hi in zip(done["dataset"], done["model"], done["gain_points"],
                                               done["gain_min"], done["gain_max"]))
    verdict = ("is reproduced" if reached.all() else "is not reproduced" if not reached.any()
               else f"is reproduced for {int(reached.sum())} of {len(done)} settings")
    best = "; ".join(f"{label(ds)}, {label(m)}: {fmt} ({g:+.1f} points)"
                     for ds, m, fmt, g in zip(done["dataset"], done["model"], done["best_format"],
                                              done["best_gain_points"]))
    return (f"The blog's gain of more than {claim_points:g} points at d = {distance:g} {verdict} here. At "
            f"d = {distance:g} against the original format: {at}. The best format and its gain instead: {best}.")
