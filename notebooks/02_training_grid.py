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

# the chapter's table: mean error per (n, format), one row per n; a setting is named once, on its first row
errors = report.name_once(plots.labelled(report.grid_error_table(summary)).rename(columns={"n": "training images n"}),
                          ["dataset", "model"])
plots.glue_table("grid_table", errors, caption="Mean test error (1 - top-1 accuracy) over seeds, by training "
                 "images n (rows) and stored format (columns: the original files, or JPEG XL at distance d)")
highlights = report.grid_highlights(grid_t.frame)
plots.glue_table("grid_highlights", plots.labelled(highlights), show=False,
                 units={"lowest error": "1 - accuracy", "hours": "h"}, precision=3,
                 formats={"compression penalty (points)": "{:.1f}", "data gain (points)": "{:.1f}", "hours": "{:.2f}"})
glue("grid_highlights_text", " ".join(report.highlight_sentence(h, plots.label) for _, h in highlights.iterrows())
     if grid_t.source in ("committed", "full", "partial") else "pending (no full-size grid rows yet)", display=False)
protocol_text = "; ".join(f"{plots.label(r.dataset)}, {plots.label(r.model)}: {r.protocol}"
                          for r in report.protocols(grid_t.frame).itertuples())
glue("grid_protocol", protocol_text, display=False)
display(Markdown(f"Protocol of these rows: {protocol_text}."))

# %% [markdown]
# Every (n, format) cell of the grid, with its seed range: the rows behind the chapter's table.

# %%
display(plots.table(plots.labelled(summary).drop(columns=["below", "above"]).rename(columns={
    "mean_bytes": "mean bytes per image", "error": "test error (mean)", "error_min": "lowest seed",
    "error_max": "highest seed", "f1_macro": "macro F1"}), units={"mean bytes per image": "B"}))

# %% [markdown]
# Error against $n$ (one line per format) and against $L$, the mean bytes per image actually
# stored (one line per $n$), both on log axes; one row of panels per dataset and model. Points
# are means over seeds; bars span the lowest and highest seed.

# %%
settings = list(summary.groupby(report.SETTING).groups)
MARKERS = "osD^vPX*"  # with the colours, every line is told apart without colour vision
fig, axes = plots.subplots(2 * len(settings), 1, row_height=3.4, squeeze=False)
axes = axes.reshape(len(settings), 2)
for (ds, model), (ax_n, ax_l) in zip(settings, axes):
    part = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
    formats = list(dict.fromkeys(part.sort_values("mean_bytes", ascending=False)["format"]))
    for i, f in enumerate(formats):
        g = part[part["format"] == f].sort_values("n")
        ax_n.errorbar(g["n"], g["error"], yerr=[g["below"], g["above"]], marker=MARKERS[i % len(MARKERS)],
                      capsize=3, color=plots.colour(i),
                      label=f"{f} (L ≈ {g['mean_bytes'].mean():,.0f} B)")
    for i, (n, g) in enumerate(part.groupby("n")):
        g = g.sort_values("mean_bytes")
        ax_l.errorbar(g["mean_bytes"], g["error"], yerr=[g["below"], g["above"]], marker=MARKERS[i % len(MARKERS)],
                      capsize=3, color=plots.sequential("plasma", i, part["n"].nunique(), 0.7), label=f"n = {n:,}")
    for ax, xlabel, fmt_x, title in ((ax_n, "training images n", "plain", "format"),
                                     (ax_l, "mean bytes per stored image L", "bytes", "training images")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        plots.log_ticks(ax, axis="x", fmt=fmt_x)
        plots.log_ticks(ax, axis="y", fmt="{x:.2f}")
        ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # beside the data
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test error (1 - accuracy)")
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
if select_t.is_placeholder:
    # a publish build without the committed sweep: the chapter says so and gives the commands, no toy numbers
    gpu = report.not_run_models("select", select_t.frame.iloc[:0])
    blocks = experiments.default_spec("select", "full")["datasets"]
    names = " and ".join(f"{plots.label(b['model'])} on {plots.label(b['dataset'])}" for b in blocks if b["model"] in gpu)
    without_grid = set(gpu) <= set(report.not_run_models("grid", grid_t.frame))
    box = tables.note_box(
        f"The GPU tier ({names}) has not run: "
        + ("no validation sweep, quality check or grid rows yet" if without_grid else "no validation sweep rows yet")
        + ", so this page shows none of its numbers (the GPU floors below are targets). On a machine with a "
        "GPU, from the repository root (each command resumes where it stopped):",
        [f"storage-scaling run {name} --profile full" for name in ("select", "quality", "grid")],
        title="The GPU tier has not run")
    glue("grid_select_table", box, display=False)
    display(box)
    glue("grid_select_status", "not run yet (the box below says how to run it)", display=False)
else:
    choices = pd.DataFrame([{"dataset": plots.label(ds), "model": plots.label(model), "chosen steps": int(c["steps"]),
                             "chosen learning rate": c["lr"], "doubling criterion met": c["converged"],
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
whole_shown = pd.DataFrame({"dataset": whole["dataset"].map(plots.label), "model": whole["model"].map(plots.label),
                            "training images": whole["n"], "seeds": whole["seeds"],
                            "test accuracy (%)": 100 * whole["accuracy"], "seed SD (points)": 100 * whole["accuracy_sd"],
                            "floor (%)": 100 * whole["floor"], "meets floor": whole["meets floor"],
                            "time per run (s)": whole["seconds"]})
if "images_per_second" in whole and whole["images_per_second"].notna().any():  # networks only
    whole_shown["images per second"] = whole["images_per_second"]
plots.glue_table("grid_quality_whole", whole_shown,
                 formats={"test accuracy (%)": "{:.1f}", "seed SD (points)": "{:.2f}", "floor (%)": "{:.0f}",
                          "time per run (s)": "{:,.0f}", **({"images per second": "{:,.0f}"}
                                                           if "images per second" in whole_shown else {})})
plots.glue_table("grid_quality_doubling", plots.labelled(changes).rename(columns={
    "n": "training images", "steps": "steps (budget -> doubled)", "within limit": "within 1 point"}), precision=2)
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
display(plots.table(plots.labelled(program_hours), units={"hours": "h"}, formats={"hours": "{:.2f}"}))  # every row
# the chapter's table: hours per experiment (rows) and dataset and model (columns), and their total
setting = [f"{plots.label(d)}, {plots.label(m)}" for d, m in zip(program_hours["dataset"], program_hours["model"])]
hours = (program_hours.assign(setting=setting).groupby(["experiment", "setting"], sort=False)["hours"]
         .sum(min_count=1).unstack("setting"))
hours = hours.reindex(list(dict.fromkeys(program_hours["experiment"])))
hours.loc["all experiments"] = hours.sum(min_count=1)
plots.glue_table("grid_program_hours", hours.reset_index(), formats={c: "{:.2f}" for c in hours.columns},
                 caption="Hours each experiment took (h), per dataset and model; each training counted once")
glue("grid_program_text", report.run_hours_sentence(program_hours, plots.label) if profile != "smoke"
     else "smoke profile: toy-size runs on this machine, not the full program", display=False)
