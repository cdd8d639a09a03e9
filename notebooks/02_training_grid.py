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
# Models trained from scratch on nested, stratified subsets of $n$ images, every image of a run
# stored as JPEG XL at one Butteraugli distance $d$ (effort 7), scored on the official test split
# at its original format. One row per (dataset, $n$, $d$, seed) in `results/training_grid.csv`.
# The step budget is the same for every $n$ (see `storage_scaling.train`); the validation
# selection that fixes it and the GPU quality checks of the training engine are shown at the end.

# %% tags=["parameters"]
profile = "publish"
progress = False  # tqdm bars in the executed notebook

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import experiments, tables, train

LABELS = {"cifar10-jpg": "CIFAR-10 32 px", "food101-64px": "Food-101 64 px"}
TARGETS = {"cifar10-jpg": 0.90, "food101-64px": 0.55}  # item 5 of the training issue
# The paper's fitted law on its grid (paper-facts 1.6, Food-101 / ResNet-50 fine-tuned, full size):
PAPER_CORNERS = pd.DataFrame([
    {"corner": "smallest n, highest quality", "paper n": 3030, "paper d": 1, "paper L (B)": 39966, "paper error (law)": 0.481},
    {"corner": "smallest n, lowest quality", "paper n": 3030, "paper d": 15, "paper L (B)": 5621, "paper error (law)": 0.606},
    {"corner": "largest n, highest quality", "paper n": 60600, "paper d": 1, "paper L (B)": 39966, "paper error (law)": 0.189},
    {"corner": "largest n, lowest quality", "paper n": 60600, "paper d": 15, "paper L (B)": 5621, "paper error (law)": 0.313},
])


def table(name):
    return tables.profile_table(experiments.RESULT_FILES[name], profile=profile,
                                full_params=experiments.table_params(name, "full"),
                                smoke_params=experiments.table_params(name, "smoke"),
                                compute=lambda p: experiments.run_table(p, progress=progress),
                                partial=lambda: experiments.committed_rows(name))


def status(t, what):
    if t.source == "committed":
        return f"measured on {t.meta.get('device', 'a GPU')} (committed results)"
    if t.source == "full":
        return "measured now at full size"
    if t.source == "partial":
        return (f"partial: {t.meta['done']} of {t.meta['total']} full-size runs measured on "
                f"{', '.join(t.meta['devices'])} (committed results; the rest has not run yet)")
    return f"pending: {what} has not run on a GPU yet; the numbers shown come from a toy-size CPU run"


def fmt(x, spec=".3f", missing="pending"):
    return missing if x is None or not np.isfinite(x) else format(x, spec)


# %% [markdown]
# ## The grid

# %%
grid_t = table("grid")
tables.banner(grid_t)
grid = grid_t.frame.copy()
summary = (grid.groupby(["dataset", "n", "distance"], as_index=False)
           .agg(mean_bytes=("mean_bytes", "mean"), error=("error", "mean"), error_sd=("error", "std"),
                error_min=("error", "min"), error_max=("error", "max"), f1_macro=("f1_macro", "mean"),
                seeds=("seed", "nunique"), steps=("steps", "first"), epochs=("epochs", "first")))
display(summary.round(4))
glue("grid_status", status(grid_t, "the grid"), display=False)
glue("grid_runs", int(len(grid)), display=False)
glue("grid_table", summary.round(4), display=False)
protocols = grid.groupby("dataset").agg(protocol=("protocol", "first"), steps=("steps", "first"),
                                         batch=("batch_size", "first"), network=("network", "first"))
protocol_text = "; ".join(f"{LABELS.get(ds, ds)}: {r.network}, {r.protocol.replace('_', ' ')}, "
                          f"{int(r.steps):,} steps of {int(r.batch):,} images" for ds, r in protocols.iterrows())
glue("grid_protocol", protocol_text, display=False)
display(Markdown(f"Protocol of these rows: {protocol_text}."))

# %% [markdown]
# Error against $n$ (one line per distance) and against $L$, the mean bytes per image actually
# stored (one line per $n$), both on log axes. Points are means over seeds; bars span the
# lowest and highest seed.

# %%
datasets = list(dict.fromkeys(grid["dataset"]))
fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 4.2 * len(datasets)), squeeze=False)
for row, ds in enumerate(datasets):
    part = summary[summary["dataset"] == ds]
    ax_n, ax_l = axes[row]
    for i, (d, g) in enumerate(part.groupby("distance")):
        g = g.sort_values("n")
        ax_n.errorbar(g["n"], g["error"], yerr=[g["error"] - g["error_min"], g["error_max"] - g["error"]],
                      marker="o", capsize=3, color=plt.cm.viridis(0.85 * i / max(1, part["distance"].nunique() - 1)),
                      label=f"d = {d:g} (L ≈ {g['mean_bytes'].mean():,.0f} B)")
    for i, (n, g) in enumerate(part.groupby("n")):
        g = g.sort_values("mean_bytes")
        ax_l.errorbar(g["mean_bytes"], g["error"], yerr=[g["error"] - g["error_min"], g["error_max"] - g["error"]],
                      marker="s", capsize=3, color=plt.cm.plasma(0.85 * i / max(1, part["n"].nunique() - 1)),
                      label=f"n = {n:,}")
    for ax in (ax_n, ax_l):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_n.set_xlabel("training images n")
    ax_l.set_xlabel("mean bytes per stored image L (bytes)")
    ax_n.set_ylabel("test error (1 - top-1 accuracy)")
    ax_l.set_ylabel("test error (1 - top-1 accuracy)")
    ax_n.set_title(f"{LABELS.get(ds, ds)}: error against n")
    ax_l.set_title(f"{LABELS.get(ds, ds)}: error against L")
fig.suptitle("Training grid" + ("" if grid_t.source in ("committed", "full") else " (toy-size placeholder)"))
fig.tight_layout()
glue("grid_fig_error", fig, display=False)
plt.show()

# %% [markdown]
# Our grid corners beside the paper's. The paper's column is its fitted law at its own grid
# corners (Food-101, ImageNet-pretrained ResNet-50 fine-tuned on full-size images, $L$ in bytes
# of full-size JPEG XL files); ours is Food-101 at 64 px trained from scratch, so only the
# *pattern* (how much error falls with $n$ and rises with compression) is comparable.

# %%
def corner(ds, which_n, which_d):
    part = summary[summary["dataset"] == ds]
    if part.empty:
        return np.nan, np.nan, np.nan
    n = part["n"].min() if which_n == "min" else part["n"].max()
    d = part["distance"].min() if which_d == "min" else part["distance"].max()
    r = part[(part["n"] == n) & (part["distance"] == d)]
    return (float(n), float(d), float(r["error"].iloc[0])) if len(r) else (np.nan, np.nan, np.nan)


ours = []
for (wn, wd) in (("min", "min"), ("min", "max"), ("max", "min"), ("max", "max")):
    n, d, e = corner("food101-64px", wn, wd)
    ours.append({"our n": n, "our d": d, "our error (Food-101 64 px)": e})
corners = pd.concat([PAPER_CORNERS, pd.DataFrame(ours)], axis=1)
display(corners)
glue("grid_corners", corners, display=False)
food_penalty = corners["our error (Food-101 64 px)"].iloc[3] - corners["our error (Food-101 64 px)"].iloc[2]
food_gain = corners["our error (Food-101 64 px)"].iloc[0] - corners["our error (Food-101 64 px)"].iloc[2]
glue("grid_food_compression_penalty", fmt(food_penalty), display=False)
glue("grid_food_data_gain", fmt(food_gain), display=False)
for ds, key in (("cifar10-jpg", "cifar"), ("food101-64px", "food")):
    _, _, best = corner(ds, "max", "min")
    glue(f"grid_{key}_err_best", fmt(best), display=False)

# %% [markdown]
# ## How the step budget was chosen (validation split)
#
# The sweep of `experiments.run_experiment("select")`: subsets of the paper's train pool
# (80 % of the official train split), scored on the held-out 20 % (never the test set), at
# step budgets that are multiples of "10 epochs at the largest $n$" and three learning rates.
# `train.choose_protocol` takes, per budget, the learning rate best at the largest $n$, and
# picks the smallest budget whose doubling moves the validation error by at most one point at
# both the smallest and the largest $n$.

# %%
select_t = table("select")
tables.banner(select_t)
sel = select_t.frame
choices = []
for ds, part in sel.groupby("dataset"):
    c = train.choose_protocol(part)
    choices.append({"dataset": LABELS.get(ds, ds), "chosen steps": c["steps"], "chosen lr": c["lr"],
                    "doubling criterion met": c["converged"], "n (small, large)": f"{c['n_small']:,}, {c['n_large']:,}"})
choices = pd.DataFrame(choices)
display(choices)
glue("grid_select_table", choices, display=False)
glue("grid_select_status", status(select_t, "the validation selection"), display=False)

# %% [markdown]
# ## Quality of training (GPU checks)
#
# With the whole training pool at the original format, the CIFAR-10 trainer must reach at least
# 90 % test accuracy (airbench 0.1.8 reaches 90.6 % on these stored JPEGs) and the Food-101 64 px
# trainer at least 55 %; doubling the step budget must change the error at the smallest and the
# largest $n$ of the grid by at most one point.

# %%
quality_t = table("quality")
tables.banner(quality_t)
q = quality_t.frame
whole = (q[q["check"] == "whole_pool"].groupby("dataset", as_index=False)
         .agg(n=("n", "first"), accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
              seeds=("seed", "nunique"), seconds=("train_seconds", "median"),
              images_per_second=("images_per_second", "median")))
whole["target"] = whole["dataset"].map(TARGETS)
whole["meets target"] = whole["accuracy"] >= whole["target"]
dbl = q[q["check"] == "doubling"].groupby(["dataset", "n", "steps"], as_index=False)["error"].mean()
changes = []
for (ds, n), g in dbl.groupby(["dataset", "n"]):
    g = g.sort_values("steps")
    if len(g) == 2:
        changes.append({"dataset": ds, "n": n, "steps": f"{g['steps'].iloc[0]:,} -> {g['steps'].iloc[1]:,}",
                        "error change (points)": 100 * (g["error"].iloc[1] - g["error"].iloc[0])})
changes = pd.DataFrame(changes, columns=["dataset", "n", "steps", "error change (points)"])
display(whole.round(4))
display(changes.round(2))
glue("grid_quality_whole", whole.round(4), display=False)
glue("grid_quality_doubling", changes.round(2), display=False)
glue("grid_quality_status", status(quality_t, "the quality check"), display=False)
acc = dict(zip(whole["dataset"], whole["accuracy"]))
real = quality_t.source in ("committed", "full")
glue("grid_quality_cifar_acc", fmt(acc.get("cifar10-jpg", np.nan) if real else np.nan, ".1%"), display=False)
glue("grid_quality_food_acc", fmt(acc.get("food101-64px", np.nan) if real else np.nan, ".1%"), display=False)
glue("grid_doubling_max_change",
     fmt(changes["error change (points)"].abs().max() if real and len(changes) else np.nan, ".2f"), display=False)
