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
import re

import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from storage_scaling import experiments, law, plots, tables
from storage_scaling.experiments import kinds, report

plots.use_style()
# The paper's Food-101 results, from the one module of its constants (3 seeds; errors read off its figures)
PAPER = pd.DataFrame({"budget (MB)": [round(s_ / 1e6, 2) for s_ in law.PAPER_BUDGETS["food101"]],
                      **law.PAPER_SCHEME_ERRORS["food101"],
                      **{f"naive d={d}": errs for d, errs in law.PAPER_NAIVE_ERRORS["food101"].items()}})
# The settings the chapter discusses, one scheme x budget table each (glued under budget_key):
# budgets differ between settings, so one table per setting rather than one of every row.
CHAPTER_SETTINGS = [("cifar10-jpg", "probe"), ("cifar10-jpg", "cnn_cpu"), ("food101-64px", "probe"),
                    ("food101-64px", "pretrained")]


def budget_key(ds, model):
    """The glue key of one setting's scheme x budget table (letters, digits and _ only)."""
    return "rand_table_budget_" + re.sub(r"[^0-9A-Za-z]+", "_", f"{ds}_{model}")


def setting_name(ds, model):
    return f"{plots.label(ds)}, {plots.label(model)}"


def title_note(source):
    """What a figure's title adds for the provenance of its table: nothing when it is final."""
    return {"committed": "", "full": "", "partial": " (partial: some runs still to come)"}.get(
        source, " (toy-size placeholder)")


# %% [markdown]
# ## The four schemes at each budget

# %%
t = {name: experiments.book_table(name, profile, progress) for name in ("budget", "original", "naive", "randomized")}
for name, tt in t.items():
    tables.banner(tt)
budget_t = tables.combine(list(t.values()))  # the weakest of the four sources
real = budget_t.source in ("committed", "full", "partial")  # measured at full size (partial: some runs still to come)
glue("rand_status", tables.status_text(budget_t, "the budget experiments"), display=False)
PENDING = "pending (the budget experiments have not all run at full size yet)"

per = report.scheme_summary({name: tt.frame for name, tt in t.items()})
laws = {}  # the law the allocation used: the paper's form fitted to our grid of the same dataset and model
for ds, model in per.groupby(report.SETTING).groups:
    try:
        laws[(ds, model)] = law.LawParams(**kinds.grid_law(ds, model))
    except ValueError:
        pass  # no committed grid for this model (toy-size rows): no prediction
per = report.with_law_prediction(per, laws)
# every (dataset, model, scheme, budget) row, with n kept and bytes: for this notebook, not the chapter
display(plots.table(per.drop(columns=["below", "above"]).rename(columns={"law_error": "law's predicted error"}),
                    units={"budget": "B", "mean_bytes": "B"}))

# %% [markdown]
# The chapter's summary, one table per dataset and model: a row per scheme, a column per budget,
# each cell the mean test error over the seeds with their range (lowest, highest) below it.

# %%
settings = list(per.groupby(report.SETTING).groups)
for ds, model in dict.fromkeys(CHAPTER_SETTINGS + settings):
    if (ds, model) in settings:
        seeds = per.loc[(per["dataset"] == ds) & (per["model"] == model), "seeds"]
        shown = report.scheme_budget_table(per, ds, model, sep="<br>")
        over = ("one seed" if seeds.max() == 1 else f"mean over {seeds.min()}"
                + ("" if seeds.min() == seeds.max() else f" to {seeds.max()}") + " seeds [lowest, highest]")
        caption = f"{setting_name(ds, model)}: test error at each storage budget, {over}"
    else:  # a setting this profile does not run (the smoke profile's toy models)
        shown = pd.DataFrame({"runs": [f"none yet in the {profile} profile"]})
        caption = setting_name(ds, model)
    plots.glue_table(budget_key(ds, model), shown, caption=caption)
glue("rand_runs", int(sum(len(tt.frame) for tt in t.values())), display=False)
cross_t = experiments.book_table("cross", profile, progress)
measured = {name: tt.frame for name, tt in {**t, "cross": cross_t}.items()
            if tt.source in ("committed", "full", "partial")}
glue("rand_cpu_time", report.run_hours_sentence(report.run_hours(measured), plots.label), display=False)

# %%
fig, axes = plots.subplots(len(settings), 1, row_height=3.6, squeeze=False)
# nested line widths, the thinnest on top: where schemes coincide (randomized close to optimal; Food-101's
# optimal, and any degenerate randomized run, keeping the originals) each stays visible
styles = {"storage-optimal": dict(color="C0", marker="o", ms=4, lw=1.2, zorder=4),
          "original format": dict(color="k", marker="s", ms=5.5, lw=2.4, zorder=3),
          "randomized": dict(color="C3", marker="D", ms=7, lw=3.8, zorder=2)}
naive = sorted((s for s in per["scheme"].unique() if s not in styles), key=report.scheme_order)
# the naive distances, light to dark (plots.sequential skips the colormap's near-white start), each its own marker
for k, scheme in enumerate(naive):
    styles[scheme] = dict(color=plots.sequential("Greens", k, len(naive)), marker="^vP<>X*"[k % 7], ls="--")
for ax, (ds, model) in zip(axes[:, 0], settings):
    part = per[(per["dataset"] == ds) & (per["model"] == model)]
    for scheme in sorted(part["scheme"].unique(), key=report.scheme_order):
        g = part[part["scheme"] == scheme].sort_values("budget")
        ax.errorbar(g["budget"] / 1e6, g["error"], yerr=[g["below"], g["above"]], capsize=3, label=scheme,
                    **styles[scheme])
    ax.set_xscale("log")
    plots.log_ticks(ax, axis="x", fmt="{x:g}")
    ax.set_xlabel("storage budget s (MB)")
    ax.set_ylabel("test error (1 - top-1 accuracy)")
    ax.set_title(f"{setting_name(ds, model)}: error at equal storage")
handles = {}  # one legend for every panel, below them: no legend over the data
for ax in axes[:, 0]:
    shown_handles, shown_labels = ax.get_legend_handles_labels()
    handles.update(zip(shown_labels, shown_handles))
order = sorted(handles, key=report.scheme_order)
fig.legend([handles[k] for k in order], order, loc="outside lower center", ncols=3)
fig.suptitle("Filling a storage budget" + title_note(budget_t.source))
plots.glue_figure("rand_fig_budget", fig)

# %% [markdown]
# Randomized against deterministic (storage-optimal) at each budget, and storage-optimal against
# the original format: differences of the seed-mean test errors (negative = the first is better).

# %%
diff = report.scheme_differences({name: tt.frame for name, tt in t.items()})
diff_shown = report.differences_table(diff)
diff_shown = diff_shown.assign(dataset=diff_shown["dataset"].map(plots.label),
                               model=diff_shown["model"].map(plots.label), budget=diff_shown["budget"] / 1e6)
plots.glue_table("rand_table_diff", diff_shown.rename(columns={
    "randomized - optimal (points)": "randomized minus storage-optimal (points)",
    "optimal - original (points)": "storage-optimal minus original format (points)"}),
                 units={"budget": "MB"}, formats={"budget": "{:.3g}"})
glue("rand_diff_text", report.differences_sentence(diff, plots.label) if real else PENDING, display=False)
glue("rand_mean_text", report.mean_differences_sentence(diff, plots.label) if real else PENDING, display=False)
glue("rand_best_text", report.best_schemes_sentence(per, plots.label) if real else PENDING, display=False)
glue("rand_capped_text", report.capped_allocations_sentence(t["budget"].frame, plots.label) if real else PENDING,
     display=False)
glue("rand_degenerate_text", report.degenerate_sentence(t["randomized"].frame, plots.label) if real else PENDING,
     display=False)

paper = PAPER.assign(**{"randomized - optimal (points)": 100 * (PAPER["randomized"] - PAPER["storage-optimal"]),
                        "optimal - original (points)": 100 * (PAPER["storage-optimal"] - PAPER["original format"])})
plots.glue_table("rand_paper_table", paper, formats={"budget (MB)": "{:g}", "randomized - optimal (points)": "{:+.1f}",
                                                      "optimal - original (points)": "{:+.1f}"})

# %% [markdown]
# How the budgets were met: the distance found for the storage-optimal runs, the range of the
# randomized runs, and the share of the budget the real encodes used. Every run here; the chapter
# shows the summary below it.

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
display(plots.table(fit, units={"budget": "B", "total_bytes": "B"}))
fit_summary = report.budget_fit_summary(b, r)
plots.glue_table("rand_table_fit", fit_summary.assign(dataset=fit_summary["dataset"].map(plots.label),
                                                      model=fit_summary["model"].map(plots.label)))
searched = fit[~fit["range"].str.startswith("originals")]  # kept originals fill what their prefix fills
glue("rand_min_fill", plots.fmt(float(searched["budget_fill"].min()) if len(searched) else np.nan, ".2%"), display=False)
glue("rand_max_fill", plots.fmt(float(searched["budget_fill"].max()) if len(searched) else np.nan, ".2%"), display=False)

# %% [markdown]
# ## Cross-compression: train at one distance, test at another

# %%
tables.banner(cross_t)
heat = report.cross_summary(cross_t.frame)
csettings = list(heat.groupby(report.SETTING).groups)
fig, axes = plots.subplots(len(csettings), 1, row_height=5.2, squeeze=False)
for ax, (ds, model) in zip(axes[:, 0], csettings):
    m, train_bytes, test_bytes = report.cross_matrix(heat, ds, model)  # the randomized model, if any, last
    im = ax.imshow(m.to_numpy(), cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(m.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < np.nanmean(m.to_numpy()) else "k",
                fontsize=10)
    # the unit in the axis label, not in every tick: seven columns of "1,807 B" collide at the column width
    ax.set_xticks(range(m.shape[1]), [f"{name}\n{test_bytes[name]:,.0f}" for name in m.columns], fontsize=10)
    ax.set_yticks(range(m.shape[0]), [f"{name}: {train_bytes[name]:,.0f}" for name in m.index], fontsize=10)
    ax.set_xlabel("test set: format and mean bytes per image (B)")
    ax.set_ylabel("training set: format and mean bytes per image (B)")
    ax.set_title(f"{plots.label(ds)}, {plots.label(model)}: test accuracy")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="top-1 accuracy")
fig.suptitle("Train/test compression grid" + title_note(cross_t.source))
plots.glue_figure("rand_fig_cross", fig)
cross_real = cross_t.source in ("committed", "full", "partial")
glue("rand_cross_status", tables.status_text(cross_t, "the cross-compression grid"), display=False)
glue("rand_cross_min", plots.fmt(float(heat["accuracy"].min()) if cross_real else np.nan, ".1%"), display=False)
glue("rand_cross_max", plots.fmt(float(heat["accuracy"].max()) if cross_real else np.nan, ".1%"), display=False)
glue("rand_cross_models", report.kept_models_sentence(cross_t.frame, plots.label), display=False)
