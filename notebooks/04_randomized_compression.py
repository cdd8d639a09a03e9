# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Storage budgets: storage-optimal, original, naive and randomized compression
#
# For each storage budget $s$ (bytes), four ways to fill it, each trained and scored on the
# original-format test set:
#
# * **storage-optimal** (`budget`): $n$ images (explicit in `smoke`; $n_*(s)$ of the law fitted to
#   our grid in `full`) at the single distance $d$ that makes them fit (binary search to $10^{-3}$
#   on interpolated per-image sizes, then real encodes until within the budget and 0.5 % of it);
# * **original format** (`original`): the largest nested subset whose stored files fit;
# * **naive** (`naive`): one fixed distance, as many images as fit (until the pool runs out);
# * **randomized** (`randomized`): the same $n$ images as storage-optimal, each at its own distance
#   spread uniformly over $[d_{\min}, d_{\max}]$ in random order, one end found by binary search.
#
# Then the cross-compression grid: a model trained at $d_{\rm train}$, scored on the test set
# compressed at every $d_{\rm test}$, plus (where a block asks for it) the randomized model: the
# same images, each at its own distance spread uniformly over the study range, its row last.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook

# %%
import numpy as np
import pandas as pd
from myst_nb import glue

from storage_scaling import experiments, law, plots, tables
from storage_scaling.experiments import kinds, report

plots.use_style()
# The paper's Food-101 results, from the one module of its constants (3 seeds; errors read off its figures)
PAPER = pd.DataFrame({"budget (MB)": [round(s_ / 1e6, 2) for s_ in law.PAPER_BUDGETS["food101"]],
                      **law.PAPER_SCHEME_ERRORS["food101"],
                      **{f"naive d={d}": errs for d, errs in law.PAPER_NAIVE_ERRORS["food101"].items()}})


# %% [markdown]
# ## The four schemes at each budget

# %%
t = {name: experiments.book_table(name, profile, progress) for name in ("budget", "original", "naive", "randomized")}
for name, tt in t.items():
    tables.banner(tt)
real = all(tt.source in ("committed", "full") for tt in t.values())
status = ("measured at full size (committed results)" if real else
          "pending: the budget experiments have not all run at full size yet; the numbers shown come from a toy-size "
          "CPU run")
glue("rand_status", status, display=False)

per = report.scheme_summary({name: tt.frame for name, tt in t.items()})
laws = {}  # the law the allocation used: the paper's form fitted to our grid of the same dataset and model
for ds, model in per.groupby(report.SETTING).groups:
    try:
        laws[(ds, model)] = law.LawParams(**kinds.grid_law(ds, model))
    except ValueError:
        pass  # no committed grid for this model (toy-size rows): no prediction
per = report.with_law_prediction(per, laws)
plots.glue_table("rand_table_budget", per.rename(columns={"law_error": "law's predicted error"}),
                 units={"budget": "B", "mean_bytes": "B"})
glue("rand_runs", int(sum(len(tt.frame) for tt in t.values())), display=False)
cross_t = experiments.book_table("cross", profile, progress)
measured = {name: tt.frame for name, tt in {**t, "cross": cross_t}.items()
            if tt.source in ("committed", "full", "partial")}
glue("rand_cpu_time", report.run_hours_sentence(report.run_hours(measured), plots.label), display=False)

# %%
settings = list(per.groupby(report.SETTING).groups)
fig, axes = plots.subplots(len(settings), 1, row_height=4.2, squeeze=False)
styles = {"storage-optimal": dict(color="C0", marker="o", lw=2.2), "original format": dict(color="k", marker="s"),
          "randomized": dict(color="C3", marker="D", lw=2.2)}
for ax, (ds, model) in zip(axes[:, 0], settings):
    part = per[(per["dataset"] == ds) & (per["model"] == model)]
    for i, (scheme, g) in enumerate(part.groupby("scheme")):
        g = g.sort_values("budget")
        style = styles.get(scheme, dict(color=plots.sequential("Greens", i, part["scheme"].nunique(), 0.9),
                                        marker="^", ls="--"))
        ax.errorbar(g["budget"] / 1e6, g["error"], yerr=[g["below"], g["above"]],
                    capsize=3, label=scheme, **style)
    ax.set_xscale("log")
    plots.log_ticks(ax, axis="x", fmt="{x:g}")
    ax.set_xlabel("storage budget s (MB)")
    ax.set_ylabel("test error (1 - top-1 accuracy)")
    ax.set_title(f"{plots.label(ds)}, {plots.label(model)}: error at equal storage")
    ax.legend()
fig.suptitle("Filling a storage budget" + ("" if real else " (toy-size placeholder)"))
plots.glue_figure("rand_fig_budget", fig)

# %% [markdown]
# Randomized against deterministic (storage-optimal) at each budget, and storage-optimal against
# the original format: differences of the seed-mean test errors (negative = the first is better).

# %%
diff = report.scheme_differences({name: tt.frame for name, tt in t.items()})
plots.glue_table("rand_table_diff", report.differences_table(diff), units={"budget": "B"})
glue("rand_diff_text", report.differences_sentence(diff, plots.label) if real else
     "pending (the budget experiments have not all run at full size yet)", display=False)
glue("rand_mean_text", report.mean_differences_sentence(diff, plots.label) if real else
     "pending (the budget experiments have not all run at full size yet)", display=False)
glue("rand_best_text", report.best_schemes_sentence(per, plots.label) if real else
     "pending (the budget experiments have not all run at full size yet)", display=False)
glue("rand_capped_text", report.capped_allocations_sentence(t["budget"].frame, plots.label) if real else
     "pending (the budget experiments have not all run at full size yet)", display=False)
glue("rand_degenerate_text", report.degenerate_sentence(t["randomized"].frame, plots.label) if real else
     "pending (the budget experiments have not all run at full size yet)", display=False)

paper = PAPER.assign(**{"randomized - optimal (points)": 100 * (PAPER["randomized"] - PAPER["storage-optimal"]),
                        "optimal - original (points)": 100 * (PAPER["storage-optimal"] - PAPER["original format"])})
plots.glue_table("rand_paper_table", paper)

# %% [markdown]
# How the budgets were met: the distance found for the storage-optimal runs, the range of the
# randomized runs, and the share of the budget the real encodes used.

# %%
b, r = report.with_model(t["budget"].frame), report.with_model(t["randomized"].frame)
b_kept, r_kept = report.keeps_originals(b), report.keeps_originals(r)
fit = pd.concat([
    b.assign(scheme="storage-optimal",
             range=["originals (the law keeps them)" if k else f"d = {d:.3f}" for k, d in zip(b_kept, b["distance"])]),
    r.assign(scheme="randomized",
             range=["originals (degenerate)" if k else f"[{lo:.3f}, {hi:.3f}] ({m})"
                    for k, lo, hi, m in zip(r_kept, r["d_min"], r["d_max"], r["moved"])]),
])
fit = fit[[c for c in ["dataset", "model", "scheme", "budget", "n_star", "allocation_capped", "n", "seed", "range",
                       "total_bytes", "budget_fill", "within_tolerance", "encodes"] if c in fit.columns]]
plots.glue_table("rand_table_fit", fit, units={"budget": "B", "total_bytes": "B"})
searched = fit[~fit["range"].str.startswith("originals")]  # kept originals fill what their prefix fills
glue("rand_min_fill", plots.fmt(float(searched["budget_fill"].min()) if len(searched) else np.nan, ".2%"), display=False)
glue("rand_max_fill", plots.fmt(float(searched["budget_fill"].max()) if len(searched) else np.nan, ".2%"), display=False)

# %% [markdown]
# ## Cross-compression: train at one distance, test at another

# %%
tables.banner(cross_t)
heat = report.cross_summary(cross_t.frame)
csettings = list(heat.groupby(report.SETTING).groups)
fig, axes = plots.subplots(len(csettings), 1, row_height=6.0, squeeze=False)
for ax, (ds, model) in zip(axes[:, 0], csettings):
    m, train_bytes, test_bytes = report.cross_matrix(heat, ds, model)  # the randomized model, if any, last
    im = ax.imshow(m.to_numpy(), cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < np.nanmean(m.to_numpy()) else "k",
                fontsize=10)
    ax.set_xticks(range(m.shape[1]), [f"{name}\n{test_bytes[name]:,.0f} B" for name in m.columns], fontsize=10)
    ax.set_yticks(range(m.shape[0]), [f"{name}: {train_bytes[name]:,.0f} B" for name in m.index], fontsize=10)
    ax.set_xlabel("test set: format and mean bytes per image")
    ax.set_ylabel("training set: format and mean bytes per image")
    ax.set_title(f"{plots.label(ds)}, {plots.label(model)}: test accuracy")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="top-1 accuracy")
fig.suptitle("Train/test compression grid" + ("" if cross_t.source in ("committed", "full") else " (toy-size placeholder)"))
plots.glue_figure("rand_fig_cross", fig)
cross_real = cross_t.source in ("committed", "full")
glue("rand_cross_status", "measured at full size (committed results)" if cross_real else
     "pending: the cross-compression grid has not run at full size yet; the heatmap shows a toy-size CPU run",
     display=False)
glue("rand_cross_min", plots.fmt(float(heat["accuracy"].min()) if cross_real else np.nan, ".1%"), display=False)
glue("rand_cross_max", plots.fmt(float(heat["accuracy"].max()) if cross_real else np.nan, ".1%"), display=False)
glue("rand_cross_models", report.kept_models_sentence(cross_t.frame, plots.label), display=False)
