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
# # The training grid: test error against n and L
#
# Models trained on nested, stratified subsets of $n$ images, every image of a run stored in one
# format (the original files, or JPEG XL at one Butteraugli distance $d$, effort 7), scored on the
# official test split at its original format. One table per experiment and model
# (`results/training_grid_<model>.csv`); every summary keeps datasets and models apart. The
# validation selection of the step budget and the quality checks of each model close the page.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import experiments, law, plots, tables

from storage_scaling.learn import train
from storage_scaling.experiments import checks, report

plots.use_style()


# %% [markdown]
# ## The grid

# %%
grid_t = experiments.book_table("grid", profile, progress)
tables.banner(grid_t)
summary = report.grid_summary(grid_t.frame)
glue("grid_status", tables.status_text(grid_t, "the grid"), display=False)
glue("grid_runs", int(len(grid_t.frame)), display=False)
plots.glue_table("grid_table", summary, show=False, units={"mean_bytes": "B"})
highlights = report.grid_highlights(grid_t.frame)
plots.glue_table("grid_highlights", highlights, show=False,
                 units={"lowest error": "1 - accuracy", "hours": "h"}, precision=3)
glue("grid_highlights_text", " ".join(report.highlight_sentence(h, plots.label) for _, h in highlights.iterrows())
     if grid_t.source in ("committed", "full", "partial") else "pending (no full-size grid rows yet)", display=False)
protocol_text = "; ".join(f"{plots.label(r.dataset)}, {plots.label(r.model)}: {r.protocol}"
                          for r in report.protocols(grid_t.frame).itertuples())
glue("grid_protocol", protocol_text, display=False)
display(Markdown(f"Protocol of these rows: {protocol_text}."))

# %% [markdown]
# Error against $n$ (one line per format) and against $L$, the mean bytes per image actually
# stored (one line per $n$), both on log axes; one row of panels per dataset and model. Points
# are means over seeds; bars span the lowest and highest seed.

# %%
settings = list(summary.groupby(report.SETTING).groups)
fig, axes = plots.subplots(2 * len(settings), 1, row_height=3.6, squeeze=False)
axes = axes.reshape(len(settings), 2)
for (ds, model), (ax_n, ax_l) in zip(settings, axes):
    part = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
    formats = list(dict.fromkeys(part.sort_values("mean_bytes", ascending=False)["format"]))
    for i, f in enumerate(formats):
        g = part[part["format"] == f].sort_values("n")
        ax_n.errorbar(g["n"], g["error"], yerr=[g["below"], g["above"]],
                      marker="o", capsize=3, color=plots.sequential("viridis", i, len(formats), 0.9),
                      label=f"{f} (L ≈ {g['mean_bytes'].mean():,.0f} B)")
    for i, (n, g) in enumerate(part.groupby("n")):
        g = g.sort_values("mean_bytes")
        ax_l.errorbar(g["mean_bytes"], g["error"], yerr=[g["below"], g["above"]],
                      marker="s", capsize=3, color=plots.sequential("plasma", i, part["n"].nunique(), 0.85),
                      label=f"n = {n:,}")
    for ax, xlabel, fmt_x in ((ax_n, "training images n", "plain"), (ax_l, "mean bytes per stored image L", "bytes")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        plots.log_ticks(ax, axis="x", fmt=fmt_x)
        plots.log_ticks(ax, axis="y", fmt="{x:.2f}")
        ax.legend(ncol=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (1 - top-1 accuracy)")
    ax_n.set_title(f"{plots.label(ds)}, {plots.label(model)}: error against n")
    ax_l.set_title(f"{plots.label(ds)}, {plots.label(model)}: error against L")
fig.suptitle("Training grid" + ("" if grid_t.source in ("committed", "full") else f" ({grid_t.source} rows)"))
plots.glue_figure("grid_fig_error", fig)

# %% [markdown]
# Our grid corners beside the paper's. The paper's column is its fitted law at its own grid
# corners (Food-101, ImageNet-pretrained ResNet-50 fine-tuned on full-size images, $L$ in bytes
# of full-size JPEG XL files); ours is Food-101 at 64 px trained from scratch, so only the
# *pattern* (how much error falls with $n$ and rises with compression) is comparable.

# %%
paper_n, paper_L = law.PAPER_N_GRIDS["food101"], law.PAPER_SIZE_TABLES["food101"]
paper_law = law.paper_law("food101")
paper = pd.DataFrame([{"paper n": n, "paper d": d, "paper L (B)": paper_L[d],
                       "paper error (law)": round(float(paper_law.error(n, paper_L[d])), 3)}
                      for n in (paper_n[0], paper_n[-1]) for d in (min(paper_L), max(paper_L))])
food_models = sorted(summary.loc[summary["dataset"] == "food101-64px", "model"].unique())
ours = {m: report.corners(summary, "food101-64px", m) for m in food_models} or {"none yet": report.corners(summary, "food101-64px")}
corner_table = pd.concat([paper, next(iter(ours.values()))[["n", "d"]].rename(columns={"n": "our n", "d": "our d"})]
                         + [c[["error"]].rename(columns={"error": f"our error ({plots.label(m)})"}) for m, c in ours.items()],
                         axis=1)
plots.glue_table("grid_corners", corner_table)
pe = paper["paper error (law)"]
glue("grid_paper_compression_penalty", f"{pe.iloc[3] - pe.iloc[2]:.3f} ({pe.iloc[2]:.3f} to {pe.iloc[3]:.3f})",
     display=False)
glue("grid_paper_data_gain", f"{pe.iloc[0] - pe.iloc[2]:.3f} ({pe.iloc[0]:.3f} to {pe.iloc[2]:.3f})", display=False)

# %% [markdown]
# ## How the step budget was chosen (validation split)
#
# The sweep of the `select` experiment: subsets of the paper's train pool (80 % of the official
# train split), scored on the held-out 20 % (never the test set), at step budgets that are
# multiples of "10 epochs at the largest $n$" and three learning rates. `train.choose_protocol`
# takes, per budget, the learning rate best at the largest $n$, and picks the smallest budget
# whose doubling moves the validation error by at most one point at both the smallest and the
# largest $n$.

# %%
select_t = experiments.book_table("select", profile, progress)
tables.banner(select_t)
choices = pd.DataFrame([{"dataset": plots.label(ds), "model": plots.label(model), "chosen steps": c["steps"],
                         "chosen lr": c["lr"], "doubling criterion met": c["converged"],
                         "n (small, large)": f"{c['n_small']:,}, {c['n_large']:,}"}
                        for (ds, model), part in report.with_model(select_t.frame).groupby(report.SETTING)
                        for c in [train.choose_protocol(part)]])
plots.glue_table("grid_select_table", choices)
glue("grid_select_status", tables.status_text(select_t, "the validation selection"), display=False)

# %% [markdown]
# ## Quality of training
#
# With the whole training pool at the original format, each model must reach its accuracy floor
# (`experiments.checks.FLOORS`: 90 % for the CIFAR-10 network, whose reference airbench 0.1.8
# reaches 90.6 % on these stored JPEGs; 55 % for the Food-101 64 px network); doubling the step
# budget must change the error at the smallest and the largest $n$ of the grid by at most one point.

# %%
quality_t = experiments.book_table("quality", profile, progress)
tables.banner(quality_t)
q = report.with_model(quality_t.frame)
whole, changes = checks.whole_pool(q), checks.doubling(q)
plots.glue_table("grid_quality_whole", whole, units={"seconds": "s"})
plots.glue_table("grid_quality_doubling", changes, precision=2)
glue("grid_quality_status", tables.status_text(quality_t, "the quality check"), display=False)
real = quality_t.source in ("committed", "full", "partial")
glue("grid_quality_whole_text", "; ".join(checks.whole_pool_sentence(r, plots.label) for _, r in whole.iterrows())
     if real and len(whole) else "pending (no full-size quality rows yet)", display=False)
glue("grid_doubling_max_change",
     plots.fmt(changes["error change (points)"].abs().max() if real and len(changes) else np.nan, ".2f"), display=False)

# %% [markdown]
# ## What the whole program cost
#
# Every experiment's rows recorded so far (nothing is run here), each training counted once:
# a cross-grid model scored at seven test formats is one training.

# %%
recorded = experiments.recorded_rows(profile)
program_hours = report.run_hours(recorded)
plots.glue_table("grid_program_hours", program_hours.assign(dataset=program_hours["dataset"].map(plots.label),
                                                            model=program_hours["model"].map(plots.label)),
                 units={"hours": "h"}, formats={"hours": "{:.2f}"})
glue("grid_program_text", report.run_hours_sentence(program_hours, plots.label) if profile != "smoke"
     else "smoke profile: toy-size runs on this machine, not the full program", display=False)
