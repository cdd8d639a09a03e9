"""How hard should you compress? The conclusions chapter's numbers, from the committed runs.

Each function answers one question of the chapter per (dataset, model) and returns a small frame;
the ``*_sentence`` functions say the same in words, with the intervals, for gluing. Everything
is pandas over the result tables (no training, no fitting), so the chapter builds in seconds.

* :func:`best_schemes`: which way of filling a budget gave the lowest error, and how sure we are
  (the runner-up's gap, paired by seed, with a Student-t interval; two seeds make it wide);
* :func:`law_against_measured`: what the fitted law recommended beside what won;
* :func:`mild_compression_savings`: what d = 1 saves over the stored files, and the header share;
* :func:`cross_reading`: what compressing the test set does (train/test mismatch, read off);
* :func:`training_cost`: what more images cost in training time;
* :func:`claims`: the paper's and blog's claims, each with our evidence and a verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import report

SETTING = report.SETTING
LEVEL = 0.95


def _interval(d: pd.Series, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and Student-t interval of paired differences (NaN bounds with one value)."""
    from scipy import stats

    d = d.dropna()
    if len(d) == 0:
        return math.nan, math.nan, math.nan
    if len(d) < 2:
        return float(d.mean()), math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def scheme_errors(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, model, budget, scheme, seed) with its test error, from the tables of the
    budget-type experiments (``budget``, ``original``, ``naive``, ``randomized``). A naive table
    gives one scheme per distance; degenerate randomized rows (nothing randomized) are left out."""
    parts = []
    for name, frame in frames.items():
        if frame is None or not len(frame):
            continue
        f = report.with_model(frame.copy())
        if name == "randomized":
            f = f[~report.degenerate_randomized(f)]
        if name == "naive":
            f["scheme"] = "naive d=" + f["distance"].map("{:g}".format)
        else:
            f["scheme"] = report.SCHEMES[name]
        parts.append(f[SETTING + ["budget", "scheme", "seed", "error"]])
    if not parts:
        return pd.DataFrame(columns=SETTING + ["budget", "scheme", "seed", "error"])
    return pd.concat(parts, ignore_index=True)


def best_schemes(frames: dict[str, pd.DataFrame], level: float = LEVEL) -> pd.DataFrame:
    """Per (dataset, model, budget): the scheme with the lowest mean test error, the runner-up and
    its gap behind the best (points of error, paired by seed, Student-t interval), the same for
    storage-optimal (0 where it is the best), and the number of seeds. ``sure`` says whether the
    runner-up's interval lies entirely above zero (the best is surely best). A budget with one
    scheme run is no comparison and has no row (:func:`pending_sentence` names it)."""
    errors = scheme_errors(frames)
    rows = []
    for key, part in errors.groupby(SETTING + ["budget"]):
        by = part.pivot_table(index="seed", columns="scheme", values="error")
        if by.shape[1] < 2:
            continue
        means = by.mean().sort_values()
        best = means.index[0]
        row = dict(zip(SETTING + ["budget"], key), best=best, best_error=float(means.iloc[0]),
                   seeds=int(by[best].notna().sum()))
        for name, scheme in (("runner_up", means.index[1] if len(means) > 1 else None),
                             ("optimal", report.SCHEMES["budget"] if report.SCHEMES["budget"] in by else None)):
            mean, lo, hi = _interval(100 * (by[scheme] - by[best])) if scheme else (math.nan,) * 3
            row.update({name: scheme, f"{name}_gap": mean, f"{name}_lo": lo, f"{name}_hi": hi})
        row["sure"] = bool(row["runner_up_lo"] > 0) if math.isfinite(row["runner_up_lo"]) else False
        rows.append(row)
    columns = SETTING + ["budget", "best", "best_error", "seeds"] + [
        f"{name}{part}" for name in ("runner_up", "optimal") for part in ("", "_gap", "_lo", "_hi")] + ["sure"]
    return pd.DataFrame(rows, columns=columns)


def pending_sentence(frames: dict[str, pd.DataFrame], label=str) -> str:
    """Per (dataset, model) with budget rows of one scheme only: that the comparison is pending,
    so a chapter never reads a lone scheme as the lowest ("" where every setting compares)."""
    errors = scheme_errors(frames)
    out = [report.lone_scheme_text(ds, model, part["scheme"].iloc[0], label)
           for (ds, model), part in errors.groupby(SETTING) if part["scheme"].nunique() < 2]
    return "; ".join(out) + "." if out else ""


def best_schemes_table(best: pd.DataFrame, label=str) -> pd.DataFrame:
    """:func:`best_schemes` for the chapter: one row per (setting, budget), the setting named on its
    first row only, each scheme with its number in one cell, words for headers."""
    def pts(v):  # "+0.0", never "-0.0"
        return f"{round(v, 1) + 0.0:+.1f}"

    def gap(m, lo, hi):
        if not math.isfinite(m):
            return "–"
        return pts(m) + (f" [{pts(lo)}, {pts(hi)}]" if math.isfinite(lo) else " (one seed)")

    return report.name_once(pd.DataFrame({
        "setting": [f"{label(d)}, {label(m)}" for d, m in zip(best["dataset"], best["model"])],
        "budget (MB)": best["budget"].to_numpy() / 1e6,
        "lowest error": [f"{b}: {e:.3f}" for b, e in zip(best["best"], best["best_error"])],
        "next best, behind by (points)": [
            "–" if not isinstance(r, str) else f"{r} {gap(m, lo, hi)}"
            for r, m, lo, hi in zip(best["runner_up"], best["runner_up_gap"], best["runner_up_lo"], best["runner_up_hi"])],
        "storage-optimal behind (points)": [gap(*v) for v in zip(best["optimal_gap"], best["optimal_lo"],
                                                                 best["optimal_hi"])],
        "seeds": best["seeds"].to_numpy(),
    }), ["setting"])


def best_schemes_sentence(best: pd.DataFrame, label=str, level: float = LEVEL) -> str:
    """Per setting: the scheme lowest most often, at how many budgets the best is surely best and
    storage-optimal surely behind; then, once, what few seeds let us say."""
    from scipy import stats

    out = []
    for (ds, model), part in best.groupby(SETTING):
        counts = part["best"].value_counts()
        behind = int((part["optimal_lo"].dropna() > 0).sum())
        optimal = (f"storage-optimal surely behind at {behind}" if part["optimal"].notna().any()
                   else "storage-optimal has not run yet")
        out.append(f"{label(ds)}, {label(model)}: {counts.index[0]} lowest at {int(counts.iloc[0])} of {len(part)} "
                   f"budgets, surely best at {int(part['sure'].sum())}; {optimal}")
    if not out:
        return "no budget rows yet"
    text = "; ".join(out) + "."
    seeds = int(best["seeds"].min())
    if seeds < 3:
        t = stats.t.ppf(0.5 + level / 2, max(seeds - 1, 1))
        text += (f" Where there are only {seeds} seeds, a {level:.0%} interval reaches {t:.1f} standard errors on "
                 "each side: no winner can be named unless the gap dwarfs the seed-to-seed spread.")
    return text


def law_against_measured(budget_frame: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, budget): what the law fitted to our grid chose (its distance, or "keep
    the originals" where L* reached the stored files' bytes; n* and the n kept) beside the scheme
    that had the lowest error."""
    b = report.with_model(budget_frame.copy())
    kept = report.keeps_originals(b)
    b = b.assign(choice=np.where(kept, "keep the originals", "d = " + b["distance"].map("{:.2f}".format)),
                 law_distance=b["distance"].where(~kept))
    law = b.groupby(SETTING + ["budget"], as_index=False).agg(
        law_choice=("choice", "first"), law_distance=("law_distance", "mean"), n_star=("n_star", "mean"),
        n_kept=("n", "mean"))
    return law.merge(best[SETTING + ["budget", "best", "best_error"]], on=SETTING + ["budget"], how="left")


def law_against_measured_table(table: pd.DataFrame, label=str) -> pd.DataFrame:
    """:func:`law_against_measured` per setting, in words: the law's choices, what won, and where the
    winning fixed distance lies against the law's range."""
    rows = []
    for (ds, model), part in table.groupby(SETTING):
        law_d = part["law_distance"].dropna()
        kept = int(part["law_distance"].isna().sum())
        choice = ([f"d = {law_d.min():.2f} to {law_d.max():.2f}"] if len(law_d) else []) + \
            ([f"keep the originals at {kept} of {len(part)}"] if kept else [])
        winners = part["best"].value_counts()
        d = report.naive_distance(winners.index[0])
        where = ("–" if not (math.isfinite(d) and len(law_d)) else "inside" if law_d.min() <= d <= law_d.max()
                 else "above" if d > law_d.max() else "below")
        rows.append({"setting": f"{label(ds)}, {label(model)}", "the law chose": "; ".join(choice),
                     "lowest error from": ", ".join(f"{s} ({k} of {len(part)})" for s, k in winners.items()),
                     "winning distance against the law's range": where})
    return pd.DataFrame(rows)


def short_answer(best: pd.DataFrame, diff: pd.DataFrame, label=str) -> str:
    """The chapter's answer in one sentence per setting: the scheme lowest most often, and what
    storage-optimal compression gained over the original format (or that the law kept them)."""
    out = []
    for (ds, model), part in best.groupby(SETTING):
        counts = part["best"].value_counts()
        text = f"{label(ds)}, {label(model)}: {counts.index[0]} lowest at {int(counts.iloc[0])} of {len(part)} budgets"
        d = diff[(diff["dataset"] == ds) & (diff["model"] == model)]
        name = "optimal - original (points)"
        kept = report.optimal_kept(d)
        live = d[~kept].dropna(subset=[name]) if name in d else d.iloc[:0]
        if len(live):
            text += (f", storage-optimal compression changes the error by {live[name].min():+.1f} to "
                     f"{live[name].max():+.1f} points against the original format")
        elif kept.any():
            text += ", the law keeps the original files"
        out.append(text)
    return "; ".join(out) + "." if out else "no budget rows yet"


def mild_compression_savings(sizes: pd.DataFrame, distance: float = 1.0) -> pd.DataFrame:
    """Per image set (training split of ``results/compression_sizes``): mean bytes of the stored
    files, of JPEG XL at ``distance``, the share that distance saves, and the share of a stored
    file that is headers (stored minus the same file without its JPEG headers)."""
    s = sizes[sizes["split"] == "train"] if "split" in sizes.columns else sizes
    rows = []
    for ds, part in s.groupby("dataset"):
        by = part.set_index("scheme")
        stored = float(by.loc["stored-jpeg", "mean_bytes"]) if "stored-jpeg" in by.index else math.nan
        headerless = float(by.loc["jpeg-headerless", "mean_bytes"]) if "jpeg-headerless" in by.index else math.nan
        at = part[(part["scheme"] == "jxl") & np.isclose(part["distance"], distance)]
        jxl = float(at["mean_bytes"].iloc[0]) if len(at) else math.nan
        rows.append({"dataset": ds, "stored_bytes": stored, "jxl_bytes": jxl, "saving": 1 - jxl / stored,
                     "header_share": 1 - headerless / stored})
    return pd.DataFrame(rows)


def cross_reading(heat: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model) of ``report.cross_summary``: accuracy trained and tested on originals;
    what compressing only the test set at the hardest test distance costs; what training at that
    distance recovers there (matched train and test); and what training at the hardest training
    distance costs on original test images."""
    fixed = heat[heat["scheme"] == "fixed"] if "scheme" in heat.columns else heat
    rows = []
    for (ds, model), part in fixed.groupby(SETTING):
        acc = part.pivot_table(index="train", columns="test", values="accuracy")
        dists = sorted((c for c in acc.columns if c.startswith("d=")), key=lambda c: float(c[2:]))
        train_d = sorted((r for r in acc.index if r.startswith("d=")), key=lambda c: float(c[2:]))
        if "original" not in acc.index or "original" not in acc.columns or not dists or not train_d:
            continue
        hard, hard_train = dists[-1], train_d[-1]
        base = float(acc.loc["original", "original"])
        rows.append({"dataset": ds, "model": model, "original_accuracy": base, "hardest_test": hard,
                     "test_only_cost": 100 * (acc.loc["original", hard] - base),
                     "matched_gain": 100 * (acc.loc[hard, hard] - acc.loc["original", hard]) if hard in acc.index
                     else math.nan,
                     "hardest_train": hard_train,
                     "train_only_cost": 100 * (acc.loc[hard_train, "original"] - base)})
    return pd.DataFrame(rows)


def cross_table(table: pd.DataFrame, label=str) -> pd.DataFrame:
    """:func:`cross_reading` for the chapter: accuracy on originals, then changes in points."""
    return pd.DataFrame({
        "setting": [f"{label(d)}, {label(m)}" for d, m in zip(table["dataset"], table["model"])],
        "trained and tested on originals (%)": 100 * table["original_accuracy"],
        "test set compressed, training not (points)": table["test_only_cost"],
        "training compressed as well: change (points)": table["matched_gain"],
        "training compressed, test set not (points)": table["train_only_cost"],
        "at": table["hardest_test"],
    })


def training_cost(grid: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model) of a grid: mean seconds per run at the smallest and the largest n, and
    the exponent k of seconds ~ n^k (least squares on logs over every run). The probe's clock is
    its ridge fit (``fit_seconds``): its features are extracted once per pool and cached, so the
    first run pays for every later one; a network's is its training (``train_seconds``)."""
    g = report.with_model(grid.copy())
    rows = []
    for (ds, model), part in g.groupby(SETTING):
        clock = "fit_seconds" if "fit_seconds" in part and part["fit_seconds"].notna().all() else "train_seconds"
        part = part[(part[clock] > 0) & (part["n"] > 0)]
        if part["n"].nunique() < 2:
            continue
        by_n = part.groupby("n")[clock].mean()
        k = float(np.polyfit(np.log(part["n"]), np.log(part[clock]), 1)[0])
        rows.append({"dataset": ds, "model": model, "clock": "ridge fit" if clock == "fit_seconds" else "training",
                     "n_small": int(by_n.index[0]), "seconds_small": float(by_n.iloc[0]),
                     "n_large": int(by_n.index[-1]), "seconds_large": float(by_n.iloc[-1]), "exponent": k})
    return pd.DataFrame(rows)


def training_cost_table(table: pd.DataFrame, label=str) -> pd.DataFrame:
    """:func:`training_cost` for the chapter."""
    return pd.DataFrame({
        "setting": [f"{label(d)}, {label(m)}" for d, m in zip(table["dataset"], table["model"])],
        "clock": table["clock"], "smallest n": table["n_small"], "s per run at the smallest n": table["seconds_small"],
        "largest n": table["n_large"], "s per run at the largest n": table["seconds_large"],
        "exponent k of time ~ n^k": table["exponent"]})


# ---------------------------------------------------------------------------------------------
# The claims


SUPPORTED, CONTRADICTED, UNCLEAR, UNTESTED = "supported", "contradicted", "not distinguishable", "cannot test here"


def direction_verdict(lo: pd.Series, hi: pd.Series, expected_sign: int) -> str:
    """Verdict on paired differences expected to have ``expected_sign``: supported when most
    intervals lie entirely on that side of zero, contradicted when most lie entirely on the other,
    otherwise not distinguishable (cannot test without intervals)."""
    ok = pd.concat([lo, hi], axis=1).dropna()
    if ok.empty:
        return UNTESTED
    lo, hi = ok.iloc[:, 0], ok.iloc[:, 1]
    right = (hi < 0) if expected_sign < 0 else (lo > 0)
    wrong = (lo > 0) if expected_sign < 0 else (hi < 0)
    if right.sum() > len(ok) / 2:
        return SUPPORTED
    if wrong.sum() > len(ok) / 2:
        return CONTRADICTED
    return UNCLEAR


def claims(diff: pd.DataFrame, best: pd.DataFrame, blog: pd.DataFrame | None, label=str,
           blog_claim_points: float = 10.0) -> pd.DataFrame:
    """The paper's and blog's claims per (dataset, model): claim, our evidence in numbers, verdict.

    ``diff`` is ``report.scheme_differences`` (randomized - optimal, optimal - original, points of
    error); ``best`` is :func:`best_schemes`; ``blog`` is ``report.blog_headline`` (or None)."""
    rows = []
    for (ds, model), part in diff.groupby(SETTING):
        setting = f"{label(ds)}, {label(model)}"
        kept = report.optimal_kept(part)
        name = "optimal - original (points)"
        live = part[~kept].dropna(subset=[name]) if name in part else part.iloc[:0]
        if live.empty:
            rows.append((setting, "storage-optimal beats the original format at equal storage",
                         f"the law keeps the originals at {int(kept.sum())} of {len(part)} budgets; no budget "
                         "compares a transcode with the originals", UNTESTED))
        else:
            rows.append((setting, "storage-optimal beats the original format at equal storage",
                         f"{live[name].min():+.1f} to {live[name].max():+.1f} points of error over {len(live)} budgets",
                         direction_verdict(live[f"{name} lo"], live[f"{name} hi"], -1)))
        name = "randomized - optimal (points)"
        if name in part and part[name].notna().any():
            d = part.dropna(subset=[name])
            rows.append((setting, "randomized compression beats storage-optimal",
                         f"{d[name].min():+.1f} to {d[name].max():+.1f} points over {len(d)} budgets",
                         direction_verdict(d[f"{name} lo"], d[f"{name} hi"], -1)))
        else:
            rows.append((setting, "randomized compression beats storage-optimal",
                         "no randomized run varied its distances", UNTESTED))
        b = best[(best["dataset"] == ds) & (best["model"] == model)]
        if len(b) and b["optimal"].isna().all():
            rows.append((setting, "the law's split is the best way to fill a budget",
                         "storage-optimal has not run yet", UNTESTED))
        elif len(b):
            opt = report.SCHEMES["budget"]
            behind = b.dropna(subset=["optimal_lo"])
            surely = int((behind["optimal_lo"] > 0).sum())
            verdict = (SUPPORTED if (b["best"] == opt).sum() > len(b) / 2 else
                       CONTRADICTED if surely > len(b) / 2 else UNCLEAR)
            winners = ", ".join(f"{s} at {k}" for s, k in b["best"].value_counts().items())
            rows.append((setting, "the law's split is the best way to fill a budget",
                         f"lowest error: {winners} of {len(b)} budgets; storage-optimal surely behind at {surely}",
                         verdict))
    if blog is not None:
        for r in blog.dropna(subset=["gain_points"]).itertuples():
            lo, hi = r.gain_min, r.gain_max
            verdict = SUPPORTED if lo > blog_claim_points else CONTRADICTED if hi < blog_claim_points else UNCLEAR
            rows.append((f"{label(r.dataset)}, {label(r.model)}",
                         f"the blog: more than {blog_claim_points:g} accuracy points at d = 10 over the originals",
                         f"{r.gain_points:+.1f} points (seeds {lo:+.1f} to {hi:+.1f}); best format {r.best_format} "
                         f"({r.best_gain_points:+.1f})", verdict))
    out = pd.DataFrame(rows, columns=["setting", "claim", "our evidence", "verdict"])
    out = out.sort_values("setting", kind="stable").reset_index(drop=True)
    return report.name_once(out, ["setting"])


def jpeg_dl_claims(h: dict, label: str, level: float = LEVEL) -> pd.DataFrame:
    """JPEG-DL's claims from ``learn.jpeg_dl.headline``'s dict: the clean accuracy gain and the
    robustness gains (through the soft layer, and against the stronger of that attack and the
    straight-through one, per seed), each with a Student-t
    interval over the seeds of the paired differences (positive: JPEG-DL better)."""
    from scipy import stats

    seeds = int(h.get("seeds", 0) or 0)
    t = stats.t.ppf(0.5 + level / 2, seeds - 1) if seeds > 1 else math.nan

    def row(claim, mean, sd, what):
        if not (math.isfinite(mean) and math.isfinite(sd) and math.isfinite(t)):
            return (label, claim, "not measured", UNTESTED)
        half = t * sd / math.sqrt(seeds)
        verdict = direction_verdict(pd.Series([-(mean + half)]), pd.Series([-(mean - half)]), -1)
        return (label, claim, f"{mean:+.1f} points [{mean - half:+.1f}, {mean + half:+.1f}] {what} ({seeds} seeds)",
                verdict)

    rows = [row("JPEG-DL: a trainable JPEG layer raises clean accuracy", h.get("diff_mean", math.nan),
                h.get("diff_sd", math.nan), "on the test split")]
    for attack in ("fgsm", "pgd"):
        eps = h.get(f"{attack}_best_eps", math.nan)
        at = f"at eps {eps:g}/255" if math.isfinite(eps) else ""
        rows.append(row(f"JPEG-DL: more robust under {attack.upper()}", h.get(f"{attack}_best_gain", math.nan),
                        h.get(f"{attack}_best_gain_sd", math.nan), at + " through the soft layer"))
        rows.append(row(f"JPEG-DL: more robust under {attack.upper()}, against the stronger of the soft and "
                        "straight-through (BPDA) attacks", h.get(f"{attack}_strong_gain_mean", math.nan),
                        h.get(f"{attack}_strong_gain_sd", math.nan), at))
    return pd.DataFrame(rows, columns=["setting", "claim", "our evidence", "verdict"])


def verdict_counts_sentence(table: pd.DataFrame) -> str:
    """How many (setting, claim) pairs our runs support, contradict, cannot tell from no effect, or
    cannot test."""
    if table.empty:
        return "no claims checked yet"
    c = table["verdict"].value_counts()
    return (f"Of {len(table)} claim-setting pairs, our runs support {c.get(SUPPORTED, 0)}, contradict "
            f"{c.get(CONTRADICTED, 0)}, cannot tell {c.get(UNCLEAR, 0)} from no effect and cannot test "
            f"{c.get(UNTESTED, 0)}.")
