"""What the scaling-law chapter reports, computed from :mod:`storage_scaling.law`.

Notebook 03 only calls these functions, plots and glues. Each report function returns plain
data: a table (a DataFrame, already in the words and units the chapter prints) and/or a dict of
named values that the notebook glues as ``law_<name>``. Four parts, as in the chapter:

1. the paper's published constants and what they imply (:func:`paper_exponent_values`,
   :func:`paper_params_table`, :func:`paper_comparison`);
2. the fitters on synthetic data with known constants (:func:`synthetic_runs`,
   :func:`synthetic_fits`, :func:`synthetic_bootstrap_table`, :func:`bootstrap_coverage_table`,
   :func:`synthetic_extrapolation` and their reports);
3. the storage calculator and the size curves it inverts (:func:`our_size_curves`,
   :func:`calculator_table`);
4. our own training grid, fitted per dataset AND model (:func:`grid_groups`,
   :func:`grid_bootstrap_table`, :func:`grid_report`), so that runs of different models are
   never fitted together.

Like :mod:`law`, only numpy, scipy and pandas are imported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import law
from .results import read_rows

PAPER_DATASETS = ("food101", "cityscapes", "isaid")
NAMES = {"food101": "Food-101", "cityscapes": "Cityscapes", "isaid": "iSAID"}
SHORT = {"food101": "food", "cityscapes": "city", "isaid": "isaid"}
ALT_METRICS = {"food101_f1": "food_f1", "cityscapes_macc": "city_macc", "isaid_segm": "isaid_segm"}


def paper_laws() -> dict[str, law.LawParams]:
    """Every published law of :data:`law.PAPER_FITS`, by key."""
    return {k: law.paper_law(k) for k in law.PAPER_FITS}


def _label(s: float) -> str:
    return law._budget_label(s)


# --------------------------------------------------------------------------------------------
# 1. The paper's constants
# --------------------------------------------------------------------------------------------

def paper_params_table() -> pd.DataFrame:
    """The published constants with nu, the exponents of L* and n*, C and C_E (one row per fit)."""
    rows = []
    for key, meta in law.PAPER_FITS.items():
        p = law.paper_law(key)
        rows.append({"task": meta["task"], "metric": meta["metric"], "A": p.A, "alpha": p.alpha,
                     "B": p.B, "beta": p.beta, "E": p.E, "nu": p.nu, "L* exponent": p.L_exponent,
                     "n* exponent": p.n_exponent, "C": p.C, "C_E": p.C_E})
    return pd.DataFrame(rows)


PAPER_PARAMS_FORMATS = {"A": "{:.4g}", "B": "{:.4g}", "C": "{:.4g}", "C_E": "{:.4g}",
                        **dict.fromkeys(("alpha", "beta", "E", "nu", "L* exponent", "n* exponent"), "{:.4f}")}


def paper_exponent_values() -> dict[str, float]:
    """alpha, beta, nu and the exponents of L*(s) and n*(s) of the three tasks (``food_alpha``...),
    and nu and the L* exponent of the appendix's alternative metrics (``food_f1_nu``...)."""
    out = {}
    for key in PAPER_DATASETS:
        p, short = law.paper_law(key), SHORT[key]
        out.update({f"{short}_alpha": p.alpha, f"{short}_beta": p.beta, f"{short}_nu": p.nu,
                    f"{short}_Lexp": p.L_exponent, f"{short}_nexp": p.n_exponent})
    for key, short in ALT_METRICS.items():
        p = law.paper_law(key)
        out.update({f"{short}_nu": p.nu, f"{short}_Lexp": p.L_exponent})
    return out


def budget_span(key: str, factor: float = 4.0, num: int = 200) -> np.ndarray:
    """Budgets (bytes) from the paper's smallest budget / ``factor`` to its largest x ``factor``."""
    budgets = np.asarray(law.PAPER_BUDGETS[key], dtype=float)
    return np.geomspace(budgets.min() / factor, budgets.max() * factor, num)


def fixed_distance_sizes() -> dict[str, dict[float, float]]:
    """Bytes per image of the fixed-distance scheme per task: the paper's naive runs for Food-101
    (d = 3, 8, 13), and d = 4 and 10 from the size tables of the two others."""
    out = {k: dict(v) for k, v in law.PAPER_NAIVE_BYTES.items()}
    for key in PAPER_DATASETS:
        out.setdefault(key, {d: float(law.PAPER_SIZE_TABLES[key][d]) for d in (4, 10)})
    return out


def paper_comparison() -> tuple[pd.DataFrame, dict[str, float]]:
    """Our closed-form n*, L* and error beside the paper's §1.8 values (table), and the numbers
    the chapter quotes from it (largest differences, the Food-101 48.48 MB row...)."""
    cmp = law.compare_with_paper()
    table = pd.DataFrame({
        "task": cmp["dataset"].map(NAMES), "s": cmp["budget_MB"],
        "n* ours": cmp["n_star"], "n* paper": cmp["n_star_paper"],
        "L* ours": cmp["L_star"], "L* paper": cmp["L_star_paper"],
        "error ours": cmp["err_pred"], "error paper": cmp["err_pred_paper"],
        "optimal, measured": cmp["err_opt_measured"],
        "original format, law": cmp["err_original_pred"],
        "original format, measured": cmp["err_original_measured"],
    })
    food48 = cmp[cmp["dataset"] == "food101"].iloc[0]
    isaid168 = cmp[cmp["dataset"] == "isaid"].iloc[1]
    city36 = cmp[cmp["dataset"] == "cityscapes"].iloc[0]
    gap = (cmp["err_pred"] - cmp["err_opt_measured"]).abs()
    values = {
        "food_nstar_48": float(food48["n_star"]), "food_Lstar_48": float(food48["L_star"]),
        "food_err_48": float(food48["err_pred"]), "isaid_nstar_168": float(isaid168["n_star"]),
        "alloc_max_dn": float((cmp["n_star"] - cmp["n_star_paper"]).abs().max()),
        "alloc_max_dL": float((cmp["L_star"] - cmp["L_star_paper"]).abs().max()),
        "alloc_max_derr": float((cmp["err_pred"] - cmp["err_pred_paper"]).abs().max()),
        "alloc_max_pred_vs_meas": float(gap.max()), "alloc_mean_pred_vs_meas": float(gap.mean()),
        "food_gain_meas_48": float(food48["err_original_measured"] - food48["err_opt_measured"]),
        "food_gain_pred_48": float(food48["err_original_pred"] - food48["err_pred"]),
        "city_orig_pred_36": float(city36["err_original_pred"]),
        "city_orig_meas_36": float(city36["err_original_measured"]),
        "city_orig_n_36": float(city36["budget_MB"] * 1e6 / law.PAPER_ORIGINAL_BYTES["cityscapes"]),
        "city_grid_nmin": float(min(law.PAPER_N_GRIDS["cityscapes"])),
    }
    return table, values


COMPARISON_FORMATS = {"s": "{:.2f}", **dict.fromkeys(("n* ours", "n* paper", "L* ours", "L* paper"), "{:,.0f}")}
COMPARISON_UNITS = {"s": "MB", "L* ours": "B", "L* paper": "B"}


# --------------------------------------------------------------------------------------------
# 2. The fitters on synthetic data
# --------------------------------------------------------------------------------------------

# case -> (paper dataset, method, with_floor)
SYNTHETIC_CASES = {
    "Food-101, paper fit (no E)": ("food101", "paper", False),
    "Food-101, robust fit (with E)": ("food101", "robust", True),
    "Cityscapes, paper fit (with E)": ("cityscapes", "paper", True),
    "Cityscapes, robust fit (with E)": ("cityscapes", "robust", True),
}
BOOT_CASES = ("Food-101, paper fit (no E)", "Food-101, robust fit (with E)", "Cityscapes, robust fit (with E)")
FOOD_ROBUST, CITY_ROBUST = "Food-101, robust fit (with E)", "Cityscapes, robust fit (with E)"
LAB48, LAB36 = _label(48.48e6), _label(36.36e6)


def synthetic_runs(noise: float, seeds: int, seed: int) -> dict[str, pd.DataFrame]:
    """Runs from the Food-101 constants on the paper's 6 x 6 grid and from the Cityscapes
    constants on its 5 x 6 grid, ``seeds`` runs per cell with relative noise ``noise``."""
    out = {}
    for i, key in enumerate(("food101", "cityscapes")):
        out[key] = law.synthetic_grid(law.paper_law(key), law.PAPER_N_GRIDS[key],
                                      list(law.PAPER_SIZE_TABLES[key].values()), noise=noise,
                                      seeds=seeds, rng_seed=seed + i)
    return out


def synthetic_fits(runs: dict[str, pd.DataFrame]) -> dict[str, law.LawFit]:
    """One fit per case of :data:`SYNTHETIC_CASES`."""
    return {case: law.fit_law(runs[ds], method=m, with_floor=wf)
            for case, (ds, m, wf) in SYNTHETIC_CASES.items()}


def synthetic_fit_report(runs: dict[str, pd.DataFrame], fits: dict[str, law.LawFit]
                         ) -> tuple[pd.DataFrame, dict]:
    """Fitted value (true value) per case and parameter; run counts; whether the robust Food-101
    fit put E on its bound."""
    rows = []
    for case, fit in fits.items():
        truth, q = law.paper_law(SYNTHETIC_CASES[case][0]), fit.params
        rows.append({"case": case, "alpha": f"{q.alpha:.4f} ({truth.alpha:.4f})",
                     "beta": f"{q.beta:.4f} ({truth.beta:.4f})", "A": f"{q.A:.3g} ({truth.A:.3g})",
                     "B": f"{q.B:.3g} ({truth.B:.3g})", "E": f"{q.E:.4f} ({truth.E:.4f})",
                     "nu": f"{q.nu:.4f} ({truth.nu:.4f})", "R^2": f"{fit.r2:.4f}",
                     "on a bound": ", ".join(fit.at_bound) or "none"})
    values = {"syn_runs_food": float(len(runs["food101"])), "syn_runs_city": float(len(runs["cityscapes"])),
              "syn_food_robust_E_bound": "yes" if "E" in fits[FOOD_ROBUST].at_bound else "no"}
    return pd.DataFrame(rows), values


def synthetic_bootstrap_params(noise: float, synthetic_seeds: int, seed: int, n_boot: int) -> dict:
    """The recorded parameters of ``results/law_synthetic_bootstrap``."""
    return {"noise": noise, "synthetic_seeds": synthetic_seeds, "seed": seed, "cases": list(BOOT_CASES),
            "grids": "paper Food-101 6x6, Cityscapes 5x6", "n_boot": n_boot}


def synthetic_bootstrap_table(params: dict, runs: dict | None = None, fits: dict | None = None) -> pd.DataFrame:
    """``tables.profile_table`` compute function: the bootstrap summary of every case of
    :data:`BOOT_CASES` (``runs`` and ``fits`` are rebuilt from ``params`` when not given)."""
    if runs is None:
        runs = synthetic_runs(params["noise"], params["synthetic_seeds"], params["seed"])
    if fits is None:
        fits = synthetic_fits(runs)
    parts = []
    for i, case in enumerate(params["cases"]):
        ds, method, wf = SYNTHETIC_CASES[case]
        b = law.bootstrap(runs[ds], method=method, with_floor=wf, n_boot=params["n_boot"],
                          budgets=law.PAPER_BUDGETS[ds], seed=params["seed"] + i, point=fits[case])
        parts.append(b.summary_frame().assign(case=case))
    return pd.concat(parts, ignore_index=True)


def _interval(bt: pd.DataFrame, case: str, quantity: str) -> tuple[float, float, float]:
    sel = bt[(bt["case"] == case) & (bt["kind"] == "interval") & (bt["quantity"] == quantity)]
    if sel.empty:
        raise ValueError(f"bootstrap table has no interval for {quantity!r} of case {case!r}")
    row = sel.iloc[0]
    return float(row["point"]), float(row["lo"]), float(row["hi"])


def _value(bt: pd.DataFrame, case, kind: str, quantity: str) -> float:
    sel = bt[(bt["kind"] == kind) & (bt["quantity"] == quantity)]
    if case is not None:
        sel = sel[sel["case"] == case]
    if sel.empty:
        raise ValueError(f"bootstrap table has no {kind} row {quantity!r}" + (f" for {case!r}" if case else ""))
    return float(sel["value"].iloc[0])


BOOT_SHOWN = {  # quantities shown per dataset
    "food101": ["alpha", "beta", "A", "B", "nu", f"n_star@{LAB48}", f"L_star@{LAB48}", f"error_star@{LAB48}"],
    "cityscapes": ["E", "alpha", "beta", "A", "B", "nu", f"n_star@{LAB36}", f"L_star@{LAB36}",
                   f"error_star@{LAB36}"],
}
BOOT_GLUED = {  # glue name -> (case, quantity): point, _lo and _hi are glued
    "alpha": (FOOD_ROBUST, "alpha"), "beta": (FOOD_ROBUST, "beta"), "nstar48": (FOOD_ROBUST, f"n_star@{LAB48}"),
    "Lstar48": (FOOD_ROBUST, f"L_star@{LAB48}"), "nu": (FOOD_ROBUST, "nu"),
    "city_E": (CITY_ROBUST, "E"), "city_A": (CITY_ROBUST, "A"), "city_B": (CITY_ROBUST, "B"),
    "city_nu": (CITY_ROBUST, "nu"), "city_nstar36": (CITY_ROBUST, f"n_star@{LAB36}"),
    "city_err36": (CITY_ROBUST, f"error_star@{LAB36}"),
}


def synthetic_bootstrap_report(bt: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Truth, point, 95 % interval and whether it covers the truth, per case and quantity; and
    the glued numbers (intervals, interval widths, correlations, bound fractions, truths)."""
    rows = []
    for case in BOOT_CASES:
        ds = SYNTHETIC_CASES[case][0]
        truth = law.derived_quantities(law.paper_law(ds), law.PAPER_BUDGETS[ds])
        for q in BOOT_SHOWN[ds]:
            point, lo, hi = _interval(bt, case, q)
            fmt = "{:,.0f}" if q.startswith(("n_star", "L_star")) or q == "B" else "{:.4f}"
            rows.append({"case": case, "quantity": q, "truth": fmt.format(truth[q]), "point": fmt.format(point),
                         "95% interval": f"[{fmt.format(lo)}, {fmt.format(hi)}]",
                         "covers truth": "yes" if lo <= truth[q] <= hi else "no"})
    table = pd.DataFrame(rows)
    values = {"syn_nboot": _value(bt, None, "meta", "n_resamples"),
              "syn_cover_count": float((table["covers truth"] == "yes").sum()),
              "syn_cover_total": float(len(table))}
    for name, (case, q) in BOOT_GLUED.items():
        point, lo, hi = _interval(bt, case, q)
        values.update({f"syn_{name}": point, f"syn_{name}_lo": lo, f"syn_{name}_hi": hi})
    _, a_lo, a_hi = _interval(bt, CITY_ROBUST, "A")
    n_point, n_lo, n_hi = _interval(bt, CITY_ROBUST, f"n_star@{LAB36}")
    food, city = law.paper_law("food101"), law.paper_law("cityscapes")
    values.update({
        "syn_city_A_ratio": a_hi / a_lo, "syn_city_nstar36_halfwidth": (n_hi - n_lo) / 2 / n_point,
        "syn_food_E_bound_frac": _value(bt, FOOD_ROBUST, "bound_fraction", "E"),
        "syn_food_corr_A_alpha": _value(bt, FOOD_ROBUST, "correlation", "A~alpha"),
        "syn_city_corr_E_alpha": _value(bt, CITY_ROBUST, "correlation", "E~alpha"),
        "syn_nstar48_true": food.n_star(48.48e6), "syn_city_E_true": city.E, "syn_city_A_true": city.A,
    })
    return table, values


COVERAGE_METHODS = {"paper, no E": ("paper", False), "robust, with E": ("robust", True)}
COVERAGE_QUANTITIES = ("alpha", "beta", "nu", f"n_star@{LAB48}", f"L_star@{LAB48}", f"error_star@{LAB48}")
COVERAGE_SIZES = {"full": {"n_datasets": 40, "n_boot": 200}, "smoke": {"n_datasets": 4, "n_boot": 30}}


def coverage_params(noise: float, synthetic_seeds: int, seed: int, size: str) -> dict:
    """The recorded parameters of ``results/law_bootstrap_coverage`` at ``size`` 'full' or 'smoke'."""
    if size not in COVERAGE_SIZES:
        raise ValueError(f"size must be one of {sorted(COVERAGE_SIZES)}, got {size!r}")
    return {"noise": noise, "synthetic_seeds": synthetic_seeds, "seed": seed, "budget": 48.48e6,
            "methods": list(COVERAGE_METHODS), **COVERAGE_SIZES[size]}


def bootstrap_coverage_table(params: dict) -> pd.DataFrame:
    """``tables.profile_table`` compute function: per method, independent synthetic Food-101
    draws, each bootstrapped; one row per (draw, quantity) saying whether the interval covers."""
    food = law.paper_law("food101")
    parts = []
    for label in params["methods"]:
        method, wf = COVERAGE_METHODS[label]
        cov = law.bootstrap_coverage(food, law.PAPER_N_GRIDS["food101"], list(law.PAPER_SIZE_TABLES["food101"].values()),
                                     noise=params["noise"], seeds=params["synthetic_seeds"],
                                     n_datasets=params["n_datasets"], n_boot=params["n_boot"], method=method,
                                     with_floor=wf, budgets=[params["budget"]], rng_seed=params["seed"],
                                     quantities=list(COVERAGE_QUANTITIES))
        parts.append(cov.assign(method=label))
    return pd.concat(parts, ignore_index=True)


def _readable(q: str) -> str:
    return q.replace("n_star@", "n* at ").replace("L_star@", "L* at ").replace("error_star@", "optimal error at ")


def coverage_report(cv: pd.DataFrame, *, toy: bool = False) -> tuple[pd.DataFrame, dict]:
    """Share of draws whose interval covers the truth, per method and quantity (table); the glued
    coverages and a verdict: a coverage more than two binomial standard errors below 95 % means
    the intervals are too narrow. ``toy`` marks a smoke-size study as too small for a verdict."""
    coverage = cv.groupby(["method", "quantity"], sort=False)["covered"].mean().unstack("quantity")
    n_draws = int(cv["dataset"].nunique())
    threshold = 0.95 - 2 * np.sqrt(0.95 * 0.05 / n_draws)
    verdicts = []
    for label in coverage.index:
        row = coverage.loc[label]
        low = [f"{_readable(q)} ({row[q]:.1%})" for q in row.index if row[q] < threshold]
        nice = {"paper, no E": "paper's linear-space fit (no E)", "robust, with E": "robust fit (with E)"}.get(label, label)
        text = f"The {nice} covers the truth in {row.min():.1%} to {row.max():.1%} of the draws"
        if low:
            text += (f"; it falls below {threshold:.1%} for {', '.join(low)}, so those intervals are too "
                     "narrow and should be read as optimistic")
        else:
            text += f", consistent with honest 95% intervals (none below {threshold:.1%})"
        verdicts.append(text + ".")
    verdict = (f"With {n_draws} draws, a coverage more than two binomial standard errors below 95% "
               f"(under {threshold:.1%}) means the intervals are too narrow. " + " ".join(verdicts))
    if toy:
        verdict = "(Smoke-size coverage study: too few draws for a verdict.) " + verdict
    values = {"cov_ndatasets": float(n_draws)}
    for label, short in (("paper, no E", "paper"), ("robust, with E", "robust")):
        for q, qs in (("alpha", "alpha"), ("beta", "beta"), (f"n_star@{LAB48}", "nstar")):
            values[f"cov_{short}_{qs}"] = float(coverage.loc[label, q])
    values.update({"cov_min": float(coverage.min().min()), "cov_max": float(coverage.max().max()),
                   "cov_verdict": verdict})
    return coverage.reset_index(), values


def synthetic_extrapolation(runs: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    """Fit every case without its largest n (then L), predict the held-out cells: the relative
    errors per case and axis, and the glued largest / Food-101 robust ones."""
    rows, extrap = [], {}
    for case, (ds, method, wf) in SYNTHETIC_CASES.items():
        for axis in ("n", "L"):
            ex = law.extrapolation_check(runs[ds], axis=axis, method=method, with_floor=wf)
            extrap[(case, axis)] = ex
            rows.append({"case": case, "held out": f"largest {axis} ({ex.held_out_value:,.0f})",
                         "cells": len(ex.frame), "mean |rel. error|": f"{ex.mean_abs_rel_error:.2%}",
                         "max |rel. error|": f"{ex.max_abs_rel_error:.2%}"})
    values = {"syn_extrap_max": max(e.max_abs_rel_error for e in extrap.values()),
              "syn_extrap_food_n": extrap[(FOOD_ROBUST, "n")].mean_abs_rel_error,
              "syn_extrap_food_L": extrap[(FOOD_ROBUST, "L")].mean_abs_rel_error}
    return pd.DataFrame(rows), values


# --------------------------------------------------------------------------------------------
# 3. Size curves and the storage calculator
# --------------------------------------------------------------------------------------------

SIZE_LABELS = {"food101-64px": "our 64 px training images",
               "food101-originals": "a sample of full-size originals, the images of the paper's table"}


def paper_size_curve() -> law.SizeCurve:
    """L(d) = 1/(a d + b) fitted to the paper's Food-101 size table (full-size images)."""
    table = law.PAPER_SIZE_TABLES["food101"]
    return law.fit_size_curve(list(table), list(table.values()),
                              source="the paper's Food-101 size table (paper-facts §1.3)")


@dataclass
class SizeCurves:
    """Our compression table's size curves, one per image set (never averaged across sets)."""

    sizes: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: dict[str, law.SizeCurve] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    note: str = ""


def our_size_curves(sizes: pd.DataFrame | None, datasets, scheme: str = "jxl") -> SizeCurves:
    """Fit L(d) to each of ``datasets`` in the compression table ``sizes`` (None: not available
    yet); an image set that cannot be fitted is named in ``problems``. ``note`` says which
    curve goes with which law, for the chapter."""
    out = SizeCurves()
    for name in datasets if sizes is not None else []:
        try:
            sel = law.select_sizes(sizes, dataset=name, scheme=scheme)
            out.curves[name] = law.fit_size_curve(sel["distance"], sel["mean_bytes"],
                                                  source=f"results/compression_sizes.csv, {name}, {scheme}")
            out.sizes[name] = sel
        except (ValueError, RuntimeError) as exc:
            out.problems.append(f"{name}: {exc}")
    note = ("The calculator for the paper's constants uses the paper's Food-101 table of mean JPEG XL bytes "
            "per image (paper-facts §1.3), because those constants are in the paper's bytes for full-size "
            "images. ")
    if out.curves:
        parts = []
        for name, tab in out.sizes.items():
            at1 = tab.loc[tab["distance"] == 1.0, "mean_bytes"]
            first = f"{at1.iloc[0]:,.0f} bytes at d = 1" if len(at1) else f"{len(tab)} distances"
            parts.append(f"{name} ({SIZE_LABELS.get(name, 'image set')}: {first})")
        note += (f"Our compression table (results/compression_sizes.csv, {scheme} rows) gives one curve per "
                 "image set, never averaged across sets: " + "; ".join(parts) + ". The law fitted to our own "
                 "grid uses the curve of the very dataset it was fitted on.")
    else:
        note += ("Our own compression table (results/compression_sizes.csv) is not available yet; when it is, "
                 "the curve of each image set is shown beside the paper's, and the law fitted to our own grid "
                 "uses the curve of the dataset it was fitted on.")
    if out.problems:
        note += " Not drawn: " + "; ".join(out.problems) + "."
    out.note = note
    return out


def calculator_table(calc: pd.DataFrame) -> pd.DataFrame:
    """The storage calculator's recommendation as printed: each value with its interval when the
    calculator had a bootstrap ('6,838 [5,901, 7,702]')."""
    out = pd.DataFrame({"budget (MB)": calc["budget_MB"].map("{:,.2f}".format)})
    for col, f in (("n", "{:,.0f}"), ("L_bytes", "{:,.0f}"), ("distance", "{:.2f}"), ("error", "{:.3f}")):
        if col not in calc:
            continue
        out[col] = calc[col].map(f.format)
        if f"{col}_lo" in calc:
            out[col] += [f" [{f.format(a)}, {f.format(b)}]" for a, b in zip(calc[f"{col}_lo"], calc[f"{col}_hi"])]
        if col == "distance":  # no distance where the law keeps the originals
            out[col] = out[col].where(calc[col].notna(), "originals")
    out["note"] = calc["note"]
    return out.rename(columns={"L_bytes": "L (bytes)", "error": "predicted error"})


# --------------------------------------------------------------------------------------------
# 4. Our own training grid: one fit per dataset AND model
# --------------------------------------------------------------------------------------------

MODEL_COLUMNS = ("model", "network")  # the model's name; `network` in rows written before `model`
ONE_MODEL = "all runs"  # the model label when the grid names none


@dataclass
class GridGroups:
    """The fittable runs of a training grid, one frame per (dataset, model)."""

    frames: dict[tuple[str, str], pd.DataFrame]
    problems: list[str]
    rows: int
    model_column: str | None
    digest: str = ""

    @property
    def status(self) -> str | None:
        """Why nothing can be fitted (None when something can)."""
        if self.frames:
            return None
        return ("Our own grid is pending: results/training_grid_<model>.csv exists "
                f"({self.rows} runs) but no dataset in it can be fitted yet ({'; '.join(self.problems)}).")


GRID_MISSING = ("Our own grid is pending: no results/training_grid_<model>.csv exists yet, so this section "
                "shows no fit of our own runs. Everything above uses the paper's published constants or "
                "synthetic data.")


def model_names(raw: pd.DataFrame, missing: str = ONE_MODEL) -> pd.Series:
    """Each row's model: the first of :data:`MODEL_COLUMNS` the grid has, else ``missing`` for all."""
    model_col = next((c for c in MODEL_COLUMNS if c in raw.columns), None)
    return raw[model_col] if model_col else pd.Series(missing, index=raw.index)


def grid_groups(raw: pd.DataFrame, digest: str = "") -> GridGroups:
    """Split a training grid (one row per run) into the groups that are fitted separately: by
    ``dataset`` and by ``model`` (else ``network``; a grid naming neither is one model). ``L``
    is the ``mean_bytes`` column when the grid has no ``L``; rows without a result are dropped
    and counted; a group the law cannot be fitted to is named with the reason."""
    if not isinstance(raw, pd.DataFrame):
        raise ValueError(f"the training grid must be a pandas DataFrame, got {type(raw).__name__}")
    if "L" not in raw.columns and "mean_bytes" in raw.columns:
        raw = raw.assign(L=raw["mean_bytes"])
    if "dataset" not in raw.columns:
        raw = raw.assign(dataset="ours")
    model_col = next((c for c in MODEL_COLUMNS if c in raw.columns), None)
    raw = raw.assign(_model=model_names(raw).fillna("unnamed").astype(str))
    problems = []
    needed = [c for c in ("n", "L", "error") if c in raw.columns]
    unfinished = int(raw[needed].isna().any(axis=1).sum())
    if unfinished:
        problems.append(f"{unfinished} rows without a result were left out")
        raw = raw.dropna(subset=needed)
    frames = {}
    for (ds, model), part in raw.groupby(["dataset", "_model"], sort=True):
        part = part.drop(columns="_model")
        try:
            law.law_data(part, with_floor=True)
            frames[(str(ds), str(model))] = part
        except ValueError as exc:
            problems.append(f"{ds}, {model}: {exc}")
    return GridGroups(frames, problems, len(raw) + unfinished, model_col, digest)


def fitted_digest(raw: pd.DataFrame) -> str:
    """SHA1 (16 hex digits) of what a fit reads: dataset, model, n, L and error of every row, sorted,
    numbers written exactly; other columns, their types and the row order do not matter."""
    L = raw["L"] if "L" in raw.columns else raw.get("mean_bytes", pd.Series(np.nan, index=raw.index))
    lines = sorted(f"{ds}|{model}|{float(n)!r}|{float(l)!r}|{float(e)!r}" for ds, model, n, l, e in zip(
        raw.get("dataset", pd.Series("", index=raw.index)),
        model_names(raw, missing=""), raw["n"], L, raw["error"]))
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:16]


def read_grid(path, progress: dict | None = None) -> GridGroups | None:
    """:func:`grid_groups` of the grid CSV(s) at ``path`` (a file, or a glob pattern such as
    ``results/training_grid_*.csv``, one table per model); None when none exists.

    ``progress`` maps (dataset, model) to (runs finished, runs planned) (``experiments.setting_progress``):
    a setting whose grid is unfinished is left out and named, because a law fitted to part of a grid
    would read as the result. The digest (SHA1 of the rows kept) names what was fitted, so rows that
    land for an unfinished setting do not invalidate the fits of the finished ones."""
    path = Path(path)
    files = sorted(path.parent.glob(path.name)) if any(c in path.name for c in "*?[") else [path]
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    raw = pd.concat([read_rows(f) for f in files], ignore_index=True)  # a run table's rows are checked
    notes = []
    for (ds, model), (done, total) in sorted((progress or {}).items()):
        mine = (raw["dataset"] == ds) & (model_names(raw) == model)
        if done < total and mine.any():
            raw = raw[~mine]
            notes.append(f"{ds}, {model}: {done:,} of {total:,} grid runs so far, fitted when the grid is complete")
    groups = grid_groups(raw.reset_index(drop=True), fitted_digest(raw))
    groups.problems[:0] = notes
    return groups


def grid_budgets(part: pd.DataFrame) -> tuple[float, ...]:
    """Four budgets spanning the storage n L of the grid's own cells (3 significant digits)."""
    nl = (part["n"] * part["L"]).to_numpy(float)
    return tuple(float(f"{b:.3g}") for b in np.geomspace(nl.min(), nl.max(), 4))


GRID_FITS = (("robust", True), ("paper", False))  # (method, with_floor): our robust fit, the paper's form
HELD_OUT_FRACTION = 0.6  # the held-out check fits n <= 60 % of the pool and predicts the larger n


def fit_label(method: str, with_floor: bool) -> str:
    return f"{method}, {'with floor' if with_floor else 'no floor'}"


def grid_bootstrap_params(digest: str, seed: int, n_boot: int) -> dict:
    """The recorded parameters of ``results/law_grid_bootstrap`` (the grid is named by digest)."""
    return {"grid_sha1": digest, "seed": seed, "fits": [list(f) for f in GRID_FITS],
            "group_by": ["dataset", "model"], "group_seed": "seed, fit index and group name", "n_boot": n_boot}


def group_seed(seed: int, fit_index: int, dataset: str, model: str) -> int:
    """The bootstrap seed of one (fit, dataset, model): drawn from the group's name, not its place
    among the groups, so that adding a model's grid does not redraw another model's resamples."""
    name = [int.from_bytes(hashlib.sha1(x.encode()).digest()[:4], "little") for x in (dataset, model)]
    return int(np.random.SeedSequence([int(seed), int(fit_index), *name]).generate_state(1)[0])


def grid_bootstrap_table(params: dict, groups: GridGroups) -> pd.DataFrame:
    """``tables.profile_table`` compute function: each fit of ``params["fits"]`` (the robust fit
    with floor, the paper's form without) bootstrapped per (dataset, model) group at the group's own
    budgets; columns ``fit``, ``dataset`` and ``model`` added."""
    parts = []
    for j, (method, with_floor) in enumerate(params["fits"]):
        for (ds, model), part in sorted(groups.frames.items()):
            b = law.bootstrap(part, method=method, with_floor=with_floor, n_boot=params["n_boot"],
                              budgets=grid_budgets(part), seed=group_seed(params["seed"], j, ds, model))
            parts.append(b.summary_frame().assign(fit=fit_label(method, with_floor), dataset=ds, model=model))
    return pd.concat(parts, ignore_index=True)


def held_out_large_n(part: pd.DataFrame, fraction: float = HELD_OUT_FRACTION) -> law.Extrapolation | None:
    """Fit the robust law on n <= ``fraction`` of the largest n (the whole pool) and predict the
    larger-n cells (the issue's check: fit on n <= 60 %, predict the 80 % and 100 % cells)."""
    cut = fraction * float(part["n"].max()) + 0.5
    if (part["n"] <= cut).sum() == 0 or part.loc[part["n"] <= cut, "n"].nunique() < 2:
        return None
    return law.extrapolation_check(part, axis="n", with_floor=True, fit_up_to=cut)


def grid_cells(part: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """Mean L and error per (n, codec level) cell; the level is the distance when the grid records
    it, else L. Returns (level column, cells)."""
    level = "distance" if "distance" in part.columns else "L"
    # dropna=False: the original-format cells (no distance) are cells too
    cells = part.groupby(["n", level], as_index=False, dropna=False).agg(L=("L", "mean"), err=("error", "mean"))
    return level, cells


BOUND_MAJORITY = 0.5  # a parameter on its bound in more resamples than this is not identified


def identification_sentence(boot: pd.DataFrame, label=str) -> str:
    """Per (dataset, model, fit) of a grid bootstrap table: which parameters sit on a bound of the
    fit in most resamples (the data do not identify them), and what follows for the optimum. Said
    first, before any exponent is quoted."""
    if boot is None or boot.empty or "bound_fraction" not in set(boot["kind"]):
        return "pending (no bootstrap of our grid yet)"
    fit_of = boot["fit"] if "fit" in boot.columns else pd.Series(fit_label("robust", True), boot.index)
    out, fine = [], []
    for (ds, model, fit), part in boot.assign(fit=fit_of).groupby(["dataset", "model", "fit"], sort=True):
        bound = part[(part["kind"] == "bound_fraction") & (part["value"] > BOUND_MAJORITY)]
        meta = part[part["kind"] == "meta"].set_index("quantity")["value"]
        resamples = int(meta.get("n_resamples", np.nan)) if "n_resamples" in meta else None
        name = f"{label(ds)}, {label(model)} ({fit})"
        if bound.empty:
            fine.append(name)
            continue
        which = ", ".join(f"{q} in {v:.0%}" for q, v in zip(bound["quantity"], bound["value"]))
        out.append(f"{name} is not identified: {which} of {resamples:,} resamples sit on the fit's bound, so "
                   "the other parameters absorb what that one would carry and its optimum (n*, L*) is only as "
                   "good as its intervals")
    text = "; ".join(out) + "." if out else "No fit has a parameter on its bound in most resamples."
    if out and fine:
        text += " Identified (no parameter on a bound in most resamples): " + "; ".join(fine) + "."
    return text


EXPONENTS = ("alpha", "beta", "nu")


def exponents_across_models(fits: dict, boot: pd.DataFrame) -> pd.DataFrame:
    """The law across model classes, one row per (dataset, model, exponent) of our robust fits with
    floor (``fits`` as :class:`GridReport` holds them) with their bootstrap intervals and whether
    the fit is identified (no parameter on its bound in most resamples), then the paper's three
    published fits (no interval: the paper gives none)."""
    rows = []
    fit_of = boot["fit"] if "fit" in boot.columns else pd.Series(fit_label("robust", True), boot.index)
    for (ds, model), fit in sorted(fits.items()):
        part = boot[(boot["dataset"] == ds) & (boot["model"] == model) & (fit_of == fit_label("robust", True))]
        intervals = part[part["kind"] == "interval"].set_index("quantity")
        bound = part[(part["kind"] == "bound_fraction") & (part["value"] > BOUND_MAJORITY)]
        for q in EXPONENTS:
            rows.append({"dataset": ds, "model": model, "source": "ours", "exponent": q,
                         "estimate": float(getattr(fit.params, q)),
                         "lo": float(intervals.loc[q, "lo"]) if q in intervals.index else np.nan,
                         "hi": float(intervals.loc[q, "hi"]) if q in intervals.index else np.nan,
                         "identified": bound.empty})
    for key in PAPER_DATASETS:
        params, task = law.paper_law(key), law.PAPER_FITS[key]["task"]
        for q in EXPONENTS:
            rows.append({"dataset": key, "model": task.split(" / ")[1], "source": "paper", "exponent": q,
                         "estimate": float(getattr(params, q)), "lo": np.nan, "hi": np.nan, "identified": True})
    return pd.DataFrame(rows)


def exponents_sentence(table: pd.DataFrame, label=str) -> str:
    """What :func:`exponents_across_models` shows, in words: per exponent, the range of our
    identified fits, and for each of our fits whether its interval holds the paper's Food-101 value."""
    ours, paper = table[table["source"] == "ours"], table[(table["source"] == "paper") & (table["dataset"] == "food101")]
    if ours.empty:
        return "pending (no grid fitted yet)"
    out = []
    unidentified = sorted({f"{label(d)}, {label(m)}" for d, m, ok in ours[["dataset", "model", "identified"]].values
                           if not ok})
    for q in EXPONENTS:
        mine = ours[(ours["exponent"] == q) & ours["identified"]]
        ref = float(paper.loc[paper["exponent"] == q, "estimate"].iloc[0])
        if mine.empty:
            continue
        low, high = mine.loc[mine["estimate"].idxmin()], mine.loc[mine["estimate"].idxmax()]
        holds = [f"{label(r.dataset)}, {label(r.model)}" for r in mine.itertuples() if r.lo <= ref <= r.hi]
        out.append(f"{q} runs from {low.estimate:.3f} ({label(low.dataset)}, {label(low.model)}) to {high.estimate:.3f} "
                   f"({label(high.dataset)}, {label(high.model)}) among our identified fits, against the paper's "
                   f"Food-101 {ref:.3f}, which " + (f"lies inside the interval of {'; '.join(holds)}" if holds
                                                     else "lies inside none of their intervals"))
    text = "; ".join(out) + "." if out else "None of our fits is identified."
    if unidentified:
        text += f" Not identified, so not in these ranges: {'; '.join(unidentified)}."
    same = ours[ours["dataset"].str.startswith("food101")]  # the paper's own dataset: the like-for-like comparison
    if not same.empty:
        ref = paper.set_index("exponent")["estimate"]
        parts = []
        for (ds, model), fit in same.groupby(["dataset", "model"], sort=True):
            q = fit.set_index("exponent")
            values = ", ".join(f"{e} {q.loc[e, 'estimate']:.3f} [{q.loc[e, 'lo']:.3f}, {q.loc[e, 'hi']:.3f}]"
                               + ("" if q.loc[e, "lo"] <= ref[e] <= q.loc[e, "hi"] else " (the paper's outside)")
                               for e in EXPONENTS)
            parts.append(f"{label(model)}: {values} ({'identified' if q['identified'].all() else 'not identified'})")
        text += (f" On Food-101, the paper's dataset ({', '.join(f'{e} {ref[e]:.3f}' for e in EXPONENTS)} there): "
                 + "; ".join(parts) + ".")
    return text


def cell_averaging(groups: "GridGroups") -> pd.DataFrame:
    """What "repeats of a cell are averaged" means on our grids, per (dataset, model): the paper's
    fit averages runs with the same (n, L), but our L is measured per seed (each seed's subset has
    its own mean bytes), so few runs share a cell. ``runs``, ``cells_nL`` (distinct (n, L) cells,
    what the paper-style fit sees), ``cells_nd`` (distinct (n, format) cells) and the paper-style
    exponents (no floor) fitted both ways: on the (n, L) cells and on (n, format) means."""
    rows = []
    for (ds, model), part in sorted(groups.frames.items()):
        fmt = [c for c in ("codec", "distance") if c in part.columns] or ["L"]  # original-format cells too
        cells = part.groupby(["n", *fmt], dropna=False, as_index=False).agg(L=("L", "mean"), error=("error", "mean"))
        on_runs = law.fit_paper(part, with_floor=False, metric="error")
        on_means = law.fit_paper(cells, with_floor=False, metric="error")
        rows.append({"dataset": ds, "model": model, "runs": len(part),
                     "cells_nL": int(part.groupby(["n", "L"]).ngroups), "cells_nd": len(cells),
                     "alpha_nL": on_runs.params.alpha, "beta_nL": on_runs.params.beta,
                     "alpha_nd": on_means.params.alpha, "beta_nd": on_means.params.beta})
    return pd.DataFrame(rows)


def cell_averaging_sentence(table: pd.DataFrame, label=str) -> str:
    """:func:`cell_averaging` in words, one clause per (dataset, model)."""
    if table.empty:
        return "pending (no grid yet)"
    return "; ".join(
        f"{label(r.dataset)}, {label(r.model)}: {r.runs:,} runs in {r.cells_nL:,} distinct (n, L) cells "
        f"({r.cells_nd:,} (n, format) cells); the paper-style fit gives beta = {r.beta_nL:.2f} on the (n, L) "
        f"cells and {r.beta_nd:.2f} on (n, format) means (alpha {r.alpha_nL:.3f} and {r.alpha_nd:.3f})"
        for r in table.itertuples()) + "."


@dataclass
class GridReport:
    table: pd.DataFrame  # one row per group and metric
    calculator: pd.DataFrame  # the storage calculator per group
    summary: str  # one sentence per group, for the chapter
    problems: list[str]
    fits: dict[tuple[str, str], law.LawFit]  # robust fit with floor, per group
    held_out: dict[tuple[str, str], law.Extrapolation | None] = field(default_factory=dict)  # n <= 60 % fits


# the paper's appendix metric is 1 - weighted F1 for classification, 1 - mean class accuracy for
# segmentation (``class_error``, written only by segmentation models): compare like with like, macro F1
# only as a fallback
SECOND_METRICS = (("class_error", False), ("f1_weighted", True), ("weighted_f1", True), ("macro_f1", True), ("f1_macro", True),
                  ("error_macro_f1", False), ("macro_f1_error", False))


METRIC_NAMES = {"f1_weighted": "weighted F1", "weighted_f1": "weighted F1", "f1_macro": "macro F1",
                "macro_f1": "macro F1", "class_error": "1 - mean class accuracy"}


def _second_metric_row(ds, model, part) -> dict | None:
    """The paper's appendix fitted a second metric too: 1 - weighted F1 (as the paper) when the
    grid records it, else 1 - macro F1 (the table names which, beside the paper's weighted F1)."""
    found = [(c, om) for c, om in SECOND_METRICS if c in part.columns and part[c].notna().any()]
    if not found:
        return None
    col, one_minus = found[0]
    name = f"1 - {METRIC_NAMES.get(col, col)}" if one_minus else METRIC_NAMES.get(col, col)
    base = {"dataset": ds, "model": model, "metric": name, "runs": len(part)}
    try:
        r2 = law.fit_robust(part, metric=col, one_minus=one_minus, with_floor=True)
        p2 = law.fit_paper(part, metric=col, one_minus=one_minus, with_floor=False)
        e2 = (law.extrapolation_check(part, metric=col, one_minus=one_minus, axis="n", with_floor=True)
              if part["n"].nunique() >= 3 else None)
    except (ValueError, law.ConvergenceError) as exc:
        return {**base, "on a bound": f"not fitted: {exc}"}
    f1 = law.paper_law("food101_f1")
    paper = (f"{f1.alpha:.3f}, {f1.beta:.3f} (1 - weighted F1)" if col != "class_error"
             else "not reported for Cityscapes")
    return {**base, "alpha (robust)": f"{r2.params.alpha:.3f}", "beta (robust)": f"{r2.params.beta:.3f}",
            "E (robust)": f"{r2.params.E:.3f}", "nu (robust)": f"{r2.params.nu:.3f}",
            "alpha (paper's form)": f"{p2.params.alpha:.3f}", "beta (paper's form)": f"{p2.params.beta:.3f}",
            "paper Food-101 alpha, beta": paper,
            "held-out largest n": f"{e2.mean_abs_rel_error:.1%}" if e2 else "n/a",
            "held-out largest L": "", "on a bound": ", ".join(r2.at_bound) or "none"}


def _grid_size_curve(ds, part, sizes, scheme, problems):
    """The size curve of the grid's own dataset: the compression table's, else the grid's own
    mean bytes per distance. Returns (curve or None, where it came from)."""
    if sizes is not None:
        try:
            sel = law.select_sizes(sizes, dataset=ds, scheme=scheme)
            curve = law.fit_size_curve(sel["distance"], sel["mean_bytes"],
                                       source=f"results/compression_sizes.csv, {ds}, {scheme}")
            return curve, f"compression table: {ds}, {scheme}"
        except (ValueError, RuntimeError) as exc:
            problems.append(f"{ds}: the grid's own sizes stand in for the compression table ({exc})")
    if "distance" in part.columns:
        lv = part[part["distance"] > 0].groupby("distance", as_index=False)["L"].mean()
        if len(lv) >= 2:
            try:
                return (law.fit_size_curve(lv["distance"], lv["L"], source=f"{ds} grid sizes"),
                        f"{ds} grid: mean bytes per distance")
            except (ValueError, RuntimeError):
                pass
    return None, "none (no distances)"


ORIGINAL_ACCOUNTINGS = (("stored-jpeg", "the stored JPEG files (the grid's own L)"),
                        ("jxl-transcode", "a lossless JPEG XL transcode (the paper's accounting)"),
                        ("jpeg-headerless", "the JPEG files without their shared header"))


def original_accounting(groups: GridGroups, sizes: pd.DataFrame | None) -> pd.DataFrame:
    """How the count of the original format's bytes moves the law: per (dataset, model) whose grid
    has original-format cells, the robust fit with floor when those cells' L is the stored file
    (as the grid records it), a lossless JPEG XL transcode, or the file without its shared header
    (each cell's L scaled by that scheme's pool mean over the stored files' mean, from the
    compression table), and without the original cells at all."""
    rows = []
    for (ds, model), part in sorted(groups.frames.items()):
        is_original = part["codec"].eq("original") if "codec" in part.columns else part["distance"].isna()
        if not is_original.any() or sizes is None:
            continue
        train = sizes[(sizes["dataset"] == ds) & (sizes["split"] == "train")].set_index("scheme")["mean_bytes"]
        if "stored-jpeg" not in train.index:
            continue
        variants = [(name, what, train[name] / train["stored-jpeg"]) for name, what in ORIGINAL_ACCOUNTINGS
                    if name in train.index]
        variants.append(("none", "left out (the six distances only)", None))
        for name, what, ratio in variants:
            data = part[~is_original] if ratio is None else part.assign(
                L=np.where(is_original, part["L"] * ratio, part["L"]))
            q = law.fit_robust(data, with_floor=True).params
            rows.append({"dataset": ds, "model": model, "original format counted as": what,
                         "original L (B)": np.nan if ratio is None else float(part.loc[is_original, "L"].mean() * ratio),
                         "alpha": q.alpha, "beta": q.beta, "E": q.E, "nu": q.nu})
    return pd.DataFrame(rows, columns=["dataset", "model", "original format counted as", "original L (B)",
                                       "alpha", "beta", "E", "nu"])


def accounting_sentence(accounting: pd.DataFrame, label=str) -> str:
    """Per (dataset, model) of :func:`original_accounting`: how far alpha and beta move."""
    out = []
    for (ds, model), part in accounting.groupby(["dataset", "model"]):
        out.append(f"{label(ds)}, {label(model)}: across the four accountings alpha runs from "
                   f"{part['alpha'].min():.3f} to {part['alpha'].max():.3f} and beta from {part['beta'].min():.3f} "
                   f"to {part['beta'].max():.3f} (the floor E from {part['E'].min():.3f} to {part['E'].max():.3f}).")
    return " ".join(out) if out else "pending (no grid with original-format cells yet)"


def grid_report(groups: GridGroups, boot: pd.DataFrame, sizes: pd.DataFrame | None = None,
                scheme: str = "jxl", label=str) -> GridReport:
    """Per (dataset, model): the robust fit with floor with bootstrap intervals, the paper's form,
    the held-out largest n and L, the second metric when recorded, and the storage calculator
    with the size curve of the same dataset."""
    food = law.paper_law("food101")
    rows, sentences, calcs, fits, held_out = [], [], [], {}, {}
    problems = list(groups.problems)
    for (ds, model), part in sorted(groups.frames.items()):
        robust = law.fit_robust(part, with_floor=True)
        fits[(ds, model)] = robust
        paper_form = law.fit_paper(part, with_floor=False)
        ex_n = law.extrapolation_check(part, axis="n", with_floor=True) if part["n"].nunique() >= 3 else None
        ex_L = law.extrapolation_check(part, axis="L", with_floor=True) if part["L"].nunique() >= 3 else None
        ex_60 = held_out_large_n(part)
        gb_all = boot[(boot["dataset"] == ds) & (boot["model"] == model)]
        fit_of = gb_all["fit"] if "fit" in gb_all.columns else pd.Series(fit_label("robust", True), gb_all.index)
        gb = gb_all[fit_of == fit_label("robust", True)]
        gp = gb_all[fit_of == fit_label("paper", False)]
        sub = gb[gb["kind"] == "interval"].set_index("quantity")
        sub_paper = gp[gp["kind"] == "interval"].set_index("quantity")

        def ci(q, table=sub):
            return f"[{table.loc[q, 'lo']:.3f}, {table.loc[q, 'hi']:.3f}]" if q in table.index else "[n/a]"

        q = robust.params
        rows.append({"dataset": ds, "model": model, "metric": "error", "runs": len(part),
                     "alpha (robust)": f"{q.alpha:.3f} {ci('alpha')}", "beta (robust)": f"{q.beta:.3f} {ci('beta')}",
                     "E (robust)": f"{q.E:.3f} {ci('E')}", "nu (robust)": f"{q.nu:.3f} {ci('nu')}",
                     "alpha (paper's form)": f"{paper_form.params.alpha:.3f} {ci('alpha', sub_paper)}",
                     "beta (paper's form)": f"{paper_form.params.beta:.3f} {ci('beta', sub_paper)}",
                     "paper Food-101 alpha, beta": f"{food.alpha:.3f}, {food.beta:.3f}",
                     "held-out largest n": f"{ex_n.mean_abs_rel_error:.1%}" if ex_n else "n/a",
                     "held-out largest L": f"{ex_L.mean_abs_rel_error:.1%}" if ex_L else "n/a",
                     "fit n ≤ 60 %, predict larger n": (f"{ex_60.mean_abs_rel_error:.1%} (max "
                                                        f"{ex_60.max_abs_rel_error:.1%})") if ex_60 else "n/a",
                     "on a bound": ", ".join(robust.at_bound) or "none"})
        held_out[(ds, model)] = ex_60
        second = _second_metric_row(ds, model, part)
        if second is not None:
            rows.append(second)
        sentences.append(
            f"{label(ds)}, {label(model)} ({len(part)} runs): alpha = {q.alpha:.3f} {ci('alpha')} and beta = {q.beta:.3f} "
            f"{ci('beta')} (robust fit with floor, 95% bootstrap intervals) against the paper's Food-101 alpha = "
            f"{food.alpha:.3f} and beta = {food.beta:.3f}; nu = {q.nu:.3f}; predicting the held-out "
            f"largest n {'is off by ' + format(ex_n.mean_abs_rel_error, '.1%') if ex_n else 'is not possible (fewer than 3 n)'}"
            f" and the largest L {'by ' + format(ex_L.mean_abs_rel_error, '.1%') if ex_L else 'is not possible (fewer than 3 L)'}"
            " on average"
            + (f"; fitted on n <= {HELD_OUT_FRACTION:.0%} of the pool, it predicts the larger-n cells within "
               f"{ex_60.mean_abs_rel_error:.1%} on average (at most {ex_60.max_abs_rel_error:.1%})." if ex_60 else "."))
        curve, curve_source = _grid_size_curve(ds, part, sizes, scheme, problems)
        is_original = part["codec"].eq("original") if "codec" in part.columns else part["distance"].isna()
        original_bytes = float(part.loc[is_original, "L"].mean()) if is_original.any() else None
        calc = law.storage_calculator(q, grid_budgets(part), size_curve=curve, boot=gb, original_bytes=original_bytes)
        calcs.append(calculator_table(calc).assign(dataset=ds, model=model, **{"size curve": curve_source}))
    calc = pd.concat(calcs, ignore_index=True)
    calc = calc[["dataset", "model"] + [c for c in calc.columns if c not in ("dataset", "model")]]
    return GridReport(pd.DataFrame(rows), calc, " ".join(sentences), problems, fits, held_out)
