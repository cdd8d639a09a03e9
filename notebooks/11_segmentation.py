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
# # Segmentation: the storage scaling law for a second task, CamVid on a CPU
#
# The paper fitted its law to SegFormer-B5 on Cityscapes (error $1-$mIoU). We run the same program
# on CamVid's 240 x 180 street scenes (the SegNet tutorial's split: 367 train, 101 val, 233 test,
# 11 classes and void) with the `segmenter` model (`learn/segmentation.py`): the frozen
# ImageNet EfficientNet-Lite0 of the pretrained tier, read at strides 4 to 32 of the scene upsampled
# twice, and a light decoder trained on the exact masks. Only the images are compressed. The
# original format is the lossless JPEG XL encode of each PNG, the paper's rule for Cityscapes.
# Rows: `results/training_<experiment>_segmenter.csv`; the knobs were chosen on the val split
# (`results/choice_segmenter*.csv`). The law's fit and bootstrap are chapter 3's, for this group.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook
n_boot = 1000  # bootstrap resamples of the grid's law (full / publish): chapter 3's table
n_boot_smoke = 100  # (smoke)
seed = 0  # the bootstrap's seed, as chapter 3's

# %%
from functools import partial

import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from storage_scaling import data, experiments, law, law_report, paths, plots, tables
from storage_scaling.experiments import checks, report
from storage_scaling.experiments import segmentation_report as sr
from storage_scaling.results import read_rows

plots.use_style()
DS, MODEL = sr.DATASET, sr.MODEL
PAPER = law.paper_law(sr.PAPER)
PAPER_MACC = law.paper_law("cityscapes_macc")
plots.glue_values("seg_paper_", {"alpha": PAPER.alpha, "beta": PAPER.beta, "E": PAPER.E, "nu": PAPER.nu,
                                 "macc_alpha": PAPER_MACC.alpha, "macc_beta": PAPER_MACC.beta,
                                 "pool": law.PAPER_POOL_SIZE[sr.PAPER]})
FLOOR = checks.FLOORS[(DS, MODEL)]
glue("seg_floor", FLOOR, display=False)


def pending(what: str, command: str):
    """The note a chapter shows in place of a table or figure that has not run, with its command."""
    return tables.note_box(f"Pending: {what} has not run yet.", [command], title="Pending")


# %% [markdown]
# ## 1. The model, chosen on the val split
#
# Each run trains on the whole train split in the original format and is scored on the 101 val
# scenes, never the test set. The first run is the trial of `benchmarks/bench_segmentation_head.py`;
# each other changes one knob. The decoder's seconds are its training alone (the features are
# cached per store). These tables are committed choices: every profile reads them.

# %%
choice = pd.concat([read_rows(p) for p in sorted(paths.results_dir().glob("choice_segmenter*.csv"))],
                   ignore_index=True)
choice_view = sr.choice_table(choice)
plots.glue_table("seg_table_choice", choice_view, formats={"val mIoU": "{:.3f}", "val 1 - mean class acc.": "{:.3f}",
                                                           "mIoU change (points)": "{:+.1f}", "decoder (s)": "{:.0f}"})
by_run = choice_view.set_index("run")
glue("seg_choice_runs", len(choice_view), display=False)
for key, run in (("ref", "the reference"), ("width32", "width 32"), ("ep15", "epochs 15"), ("ep60", "epochs 60"),
                 ("scale1", "scale 1"), ("small", "n = 73"), ("small_floor", "n = 73, min steps 300")):
    if run in by_run.index:
        glue(f"seg_choice_{key}_miou", float(by_run.loc[run, "val mIoU"]), display=False)
        glue(f"seg_choice_{key}_seconds", float(by_run.loc[run, "decoder (s)"]), display=False)
by_lr = choice_view[choice_view["run"].str.contains("learning rate")].set_index("steps")["val mIoU"]
if len(by_lr) == 2:  # 30 and 60 epochs at the doubled rate: what one more doubling gains
    glue("seg_choice_lr_gain", 100 * float(by_lr.sort_index().iloc[1] - by_lr.sort_index().iloc[0]), display=False)
bf16 = choice_view[choice_view["decoder autocast"] == "bf16"]
glue("seg_choice_bf16_text", "; ".join(f"{r['run']}: val mIoU {r['val mIoU']:.3f} in {r['decoder (s)']:.0f} s"
                                       for _, r in bf16.iterrows()) or "not measured", display=False)

# %% [markdown]
# ## 2. The quality floor: the whole train split, original format, test split

# %%
quality_t = experiments.book_table("quality", profile, progress)
quality = sr.rows_of(quality_t.frame)
floor_text = f"pending: the quality check of the segmenter has not run (floor {FLOOR:.0%} test mIoU)"
if len(quality):
    tables.banner(quality_t)
    whole = checks.whole_pool(quality)
    row = whole.iloc[0]
    spread = ("one seed, no spread yet" if pd.isna(row["accuracy_sd"]) or row["seeds"] < 2 else
              f"mean of {int(row['seeds'])} seeds, sd {row['accuracy_sd']:.1%}")
    floor_text = (f"test mIoU {row['accuracy']:.1%} ({spread}) "
                  f"on the {int(row['n'])} training scenes, against the floor of {FLOOR:.0%}: "
                  f"{'met' if row['meets floor'] else 'NOT met'}; {tables.status_text(quality_t, 'the quality check')}")
    done, total = (experiments.setting_progress("quality").get((DS, MODEL), (0, 0)) if profile == "publish"
                   else (0, 0))
    if done < total:  # the table's own status counts every model's quality runs; say the segmenter's
        floor_text += f" (the segmenter: {done} of {total} seeds so far)"
    display(plots.table(plots.labelled(whole)))
    extra = quality[["seed", "miou", "class_error", "pixel_accuracy", "train_seconds", "decoder_seconds",
                     "images_per_second", "steps"]]
    display(plots.table(extra))
    glue("seg_floor_seconds", float(quality["train_seconds"].median()), display=False)
    glue("seg_floor_images_per_second", float(quality["images_per_second"].median()), display=False)
glue("seg_floor_text", floor_text, display=False)
print(floor_text)

# %% [markdown]
# ## 3. The grid: 1 − mIoU by training-set size and format
#
# 20 to 100 % of the 367 training scenes (the paper's Cityscapes grid: 20 to 100 % of 2,975) x
# the original format and six distances x 3 seeds. Beside it, the paper's law at its own cells
# (it published its grid only as a figure).

# %%
grid_t = experiments.book_table("grid", profile, progress)
grid = sr.rows_of(grid_t.frame)
pool_size = len(data.pool(DS, "paper"))
grid_progress = experiments.setting_progress("grid").get((DS, MODEL), (0, 0)) if profile == "publish" else None
grid_status = (tables.status_text(grid_t, "the grid") if len(grid) else
               "pending: the segmenter's grid has not run yet")
if grid_progress and grid_progress[0] < grid_progress[1]:
    grid_status = f"partial: {grid_progress[0]} of {grid_progress[1]} grid runs so far"
glue("seg_grid_status", grid_status, display=False)
grid_table = pending("the grid", "storage-scaling run grid --profile full --models segmenter")
classes_table = pending("the grid", "storage-scaling run grid --profile full --models segmenter")
classes_text = "pending (no grid yet)"
if len(grid):
    tables.banner(grid_t)
    grid_table = plots.table(sr.grid_error_table(grid, pool_size))
    display(grid_table)
    change = sr.class_iou_change(grid)
    if len(change):
        classes_table = plots.table(change, formats={"change (points)": "{:+.1f}"})
        worst, best = change.iloc[0], change.iloc[-1]
        classes_text = (f"from d = 1 to d = 15 on the whole pool, {worst['class']} loses most "
                        f"({worst['change (points)']:+.1f} IoU points) and {best['class']} least "
                        f"({best['change (points)']:+.1f})")
glue("seg_table_grid", grid_table, display=False)
glue("seg_table_classes", classes_table, display=False)
glue("seg_classes_text", classes_text, display=False)
plots.glue_table("seg_table_paper_grid", sr.paper_grid_table(), precision=3)

# %% [markdown]
# ## 4. The law: our fit beside the paper's Cityscapes fit
#
# Chapter 3 fits every (dataset, model) of the committed grids on its own (robust fit with a floor,
# 1,000 bootstrap resamples, the held-out check); this is its row for CamVid, read from the same
# committed tables in every profile (the smoke profile bootstraps this group alone, 100 times). A
# setting whose grid is unfinished is not fitted (a law fitted to part of a grid would read as the
# result).

# %%
fit_text = "pending (the segmenter's grid is not complete)"
law_table = pending("the grid's law", "storage-scaling run grid --profile full --models segmenter")
fit = None
groups = law_report.read_grid(paths.results_dir() / "training_grid_*.csv", experiments.setting_progress("grid"))
if groups is not None and (DS, MODEL) in groups.frames:
    if profile == "smoke":  # this group alone: chapter 3 bootstraps every group
        part = groups.frames[(DS, MODEL)]
        groups = law_report.GridGroups({(DS, MODEL): part}, [], len(part), groups.model_column,
                                       law_report.fitted_digest(part))
    boot_params = partial(law_report.grid_bootstrap_params, groups.digest, seed)
    boot = tables.profile_table("law_grid_bootstrap", profile=profile, full_params=boot_params(n_boot),
                                smoke_params=boot_params(n_boot_smoke),
                                compute=partial(law_report.grid_bootstrap_table, groups=groups))
    all_groups = groups
    rep = law_report.grid_report(all_groups, boot.frame, label=plots.label)
    fit = rep.fits[(DS, MODEL)]
    ours = rep.table[(rep.table["dataset"] == DS) & (rep.table["model"] == MODEL)]
    mine = ours[ours["metric"] == "error"].iloc[0]
    law_view = pd.DataFrame({
        "": ["ours, CamVid (1 - mIoU)", "paper, Cityscapes (1 - mIoU)"],
        "alpha": [mine["alpha (robust)"], f"{PAPER.alpha:.3f}"], "beta": [mine["beta (robust)"], f"{PAPER.beta:.3f}"],
        "E": [mine["E (robust)"], f"{PAPER.E:.3f}"], "nu": [mine["nu (robust)"], f"{PAPER.nu:.3f}"],
        "on a bound": [mine["on a bound"], ""], "held-out largest n": [mine["held-out largest n"], ""]})
    law_table = plots.table(law_view)
    fit_text = rep.summary
    display(plots.table(ours))
glue("seg_table_law", law_table, display=False)
glue("seg_fit_text", fit_text, display=False)
print(fit_text)

# %% [markdown]
# ## 5. Storage-optimal against the original format and the other schemes
#
# The five budgets are $s = f \times 367 \times L(15)$ with the classification programs' $f$.

# %%
frames = {name: sr.rows_of(experiments.book_table(name, profile, progress).frame)
          for name in ("budget", "original", "naive", "randomized")}
schemes_table = pending("the budget scheme", "storage-scaling run budget --profile full --models segmenter "
                        "(after the grid), then original, naive and randomized")
schemes_text = "pending (no budget scheme has run yet)"
if any(len(f) for f in frames.values()):
    per = report.scheme_summary({k: v for k, v in frames.items() if len(v)})
    schemes_table = plots.table(report.scheme_budget_table(per, DS, MODEL))
    schemes_text = report.best_schemes_sentence(per, plots.label)
glue("seg_table_schemes", schemes_table, display=False)
glue("seg_schemes_text", schemes_text, display=False)
paper_alloc = law.paper_allocation_table()
paper_alloc = paper_alloc[paper_alloc["dataset"] == sr.PAPER].drop(columns="dataset")
paper_alloc = paper_alloc.assign(budget_bytes=paper_alloc["budget_bytes"] / 1e6).rename(columns={
    "budget_bytes": "budget (MB)", "n_star": "n*", "L_star": "L* (B)", "err_pred": "law's error at n*, L*",
    "err_opt_measured": "storage-optimal error", "n_original": "original format n",
    "err_original_measured": "original format error"})
plots.glue_table("seg_table_paper_schemes", paper_alloc, precision=3, formats={"budget (MB)": "{:.1f}"})

# %% [markdown]
# ## 6. Train and test compression

# %%
cross = sr.rows_of(experiments.book_table("cross", profile, progress).frame)
cross_fig = pending("cross-compression", "storage-scaling run cross --profile full --models segmenter")
if len(cross):
    heat = report.cross_summary(cross)
    matrix, train_bytes, test_bytes = report.cross_matrix(heat, DS, MODEL)
    fig, ax = plots.subplots(1, 1, row_height=4.8)
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis")
    ax.set_xticks(range(matrix.shape[1]), list(matrix.columns), rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), list(matrix.index))
    ax.set(xlabel="test format", ylabel="training format", title="Test mIoU, trained x tested (CamVid)")
    for (i, j), v in np.ndenumerate(matrix.to_numpy(dtype=float)):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < np.nanmean(matrix) else "black",
                fontsize=9)
    fig.colorbar(im, ax=ax, label="test mIoU (fraction)")
    plots.check_legible(fig, "seg_fig_cross")
    cross_fig = fig
glue("seg_fig_cross", cross_fig, display=False)

# %% [markdown]
# ## 7. What the model sees: one scene at three distances
#
# The grid's whole-pool models of seed 0 at d = 1, 7 and 15 (the smoke profile: the smoke grid's
# distances), each shown the test scene with the most classes, stored at its own distance. The
# masks come from `storage-scaling scenes`, which reads the models the grid kept on the machine that
# ran it; they are committed (`results/segmentation_scenes.npz`, with a `.json` of provenance), so
# the figure needs no model. The scene is encoded again here (JPEG XL is deterministic).

# %%
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import seaborn as sns  # noqa: E402

from storage_scaling.experiments import scenes  # noqa: E402

scene_profile = "smoke" if profile == "smoke" else "full"
if profile == "smoke":  # the smoke grid above kept its whole-pool models in this machine's cache
    scenes.write(scenes.predict(DS, MODEL, scenes.default_distances("smoke"), profile="smoke"),
                 experiments.runner.results_folder("smoke"))
shown = scenes.read(experiments.runner.results_folder(scene_profile))
scene_fig = pending("the predicted scenes", "storage-scaling scenes --profile full (after the grid)")
if shown is not None:
    class_names = data.load_cached(DS, "train").classes
    void = data.spec(DS).void_label
    tab20 = sns.color_palette("tab20", 20).as_hex()  # its 10 dark hues, then the light ones: distinct classes
    palette = [*(tab20[0::2] + tab20[1::2])[:len(class_names)], "#000000"]  # void black
    cmap = ListedColormap(palette)
    truth = data.masks_of(DS, [shown["scene_id"]])[0]
    scored = truth != void
    shown_labels = lambda labels: np.where(scored, labels, len(class_names))  # noqa: E731 (void drawn black)
    original, original_size = scenes.stored_scene(DS, shown["split"], shown["scene_id"], 0.0, shown["effort"])
    panels = [(original, f"original (lossless JPEG XL, {original_size / 1000:.1f} kB)"), (shown_labels(truth), "ground truth")]
    for d, labels in zip(shown["distances"], shown["predictions"]):
        pixels, size = scenes.stored_scene(DS, shown["split"], shown["scene_id"], d, shown["effort"])
        agree = float((labels[scored] == truth[scored]).mean())
        panels += [(pixels, f"stored at d = {d:g} ({size / 1000:.1f} kB)"),
                   (shown_labels(labels), f"its prediction ({agree:.0%} of pixels right)")]
    fig, axes = plots.subplots(len(panels) // 2, 2, row_height=2.6)
    for ax, (image, title) in zip(np.ravel(axes), panels):
        ax.imshow(image, cmap=None if image.ndim == 3 else cmap, vmin=0, vmax=len(class_names), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
    fig.legend(handles=[Patch(color=palette[i], label=name) for i, name in enumerate(class_names)],
               loc="lower center", ncol=4, fontsize=9, frameon=False, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(f"Test scene {shown['scene_id']}, whole-pool models (seed {shown['seed']})", fontsize=11)
    plots.check_legible(fig, "seg_fig_scenes")
    scene_fig = fig
glue("seg_fig_scenes", scene_fig, display=False)
