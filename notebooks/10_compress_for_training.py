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
# # Tutorial: from a folder of photos to a PyTorch DataLoader
#
# The practitioner's path on real photos: `plan` how hard to compress, look first with
# `compress --dry-run`, `compress` to WebDataset shards, and read them back into a PyTorch
# `DataLoader`. Each step calls the Python function behind the command (with the command's
# options); `storage_scaling.practice.tutorial` prepares the folder and draws the figures. The
# images are the 300 full-size Food-101 originals, or, where `../shared/data` is absent, a
# handful of scikit-image's photos (the page says which).

# %% tags=["parameters"]
profile = "publish"
smoke_images = 24  # originals in the smoke profile (a stratified subset)
max_side = 192  # --max-side: what a training pipeline at 128-192 px reads
precision = 0.1  # --precision of the plan's adaptive sample (a quick look)
dry_sample = 30  # --sample of the dry run
shard_size = 1_000_000  # --shard-size: 1 MB, so that even this small dataset makes a few shards
batch_size = 32
loader_workers = 2
workers = None  # encoder processes (None: all cores)
seed = 0

# %%
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from IPython.display import Markdown, display
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from storage_scaling import law, plots, tables
from storage_scaling.practice import cluster, compress_folder as cf, images as images_mod, loader, plan, shards, tutorial
from storage_scaling.practice.units import format_size

tables.check_profile(profile)
plots.use_style()
started = time.perf_counter()
work = Path(tempfile.mkdtemp(prefix="storage-scaling-tutorial-"))
source = tutorial.prepare_images(work / "photos", images=smoke_images if profile == "smoke" else None, seed=seed)
display(Markdown(f"*{source.note}*"))
pool = cluster.open_pool(processes=workers)

# %% [markdown]
# ## 1. Plan
#
# `storage-scaling plan photos/ --budget 48.48MB --pool-size 60600 --max-side 192 --precision 0.1`:
# the photos stand for a dataset of Food-101's size, at the paper's smallest Food-101 budget,
# with the paper's law (borrowed). The time estimate comes first.

# %%
budget, pool_size = law.PAPER_BUDGETS["food101"][0], law.PAPER_POOL_SIZE["food101"]
settings = plan.PlanSettings(law="paper:food101", pool_size=pool_size, max_side=max_side, precision=precision,
                             bootstrap=0, seed=seed, extrapolate=not source.real)
found = images_mod.open_images(source.folder)
t0 = time.perf_counter()
the_plan = plan.plan_images(found, budget, settings, pool, progress=False)
plan_seconds = time.perf_counter() - t0
for line in plan.summary_lines(the_plan):
    print(line)

# %% [markdown]
# ## 2. Look first: dry runs
#
# `storage-scaling compress photos/ shards/ --distance D --max-side 192 --format webdataset --dry-run --sample 30`,
# with D the planned distance; and, to compare, every pixel kept (`--original --dry-run`).

# %%
distance = round(the_plan.distance, 2)
opts = cf.Options(distance=distance, fmt="webdataset", max_side=max_side, shard_size=shard_size, seed=seed)
looked = plan.PlanSettings(sample=dry_sample, seed=seed)
dry = cf.run(source.folder, work / "shards", opts, pool=pool, plan_args=looked, dry_run=True, progress=False)
for line in dry.lines():
    print(line)
lossless = cf.run(source.folder, work / "lossless", cf.Options(original=True), pool=pool, plan_args=looked,
                  dry_run=True, progress=False)
for line in lossless.lines():
    print(line)

# %% [markdown]
# ## 3. Compress to shards

# %%
t0 = time.perf_counter()
summary = cf.run(source.folder, work / "shards", opts, pool=pool, progress=False)
compress_seconds = time.perf_counter() - t0
pool.close()
for line in summary.lines():
    print(line)
shard_bytes = [(work / "shards" / name).stat().st_size for name in summary.shards]
display(Markdown(f"Shards: {', '.join(f'`{n}` ({format_size(b)})' for n, b in zip(summary.shards, shard_bytes))}"))

# %% [markdown]
# ## 4. Load back into a PyTorch DataLoader

# %%
crop = v2.Compose([v2.Resize(128, antialias=True), v2.CenterCrop(128), v2.ToDtype(torch.float32, scale=True)])
stream = loader.ShardStream(work / "shards", transform=crop, shuffle=True, seed=seed)
batches = DataLoader(stream, batch_size=batch_size, num_workers=loader_workers)
t0 = time.perf_counter()
seen, count, labels, first = 0, 0, [], None
for images, classes in batches:
    first = (images, classes) if first is None else first
    seen, count = seen + len(images), count + 1
    labels += classes.tolist()
load_seconds = time.perf_counter() - t0
per_class = np.bincount(labels, minlength=len(source.classes)).tolist()
print(f"{seen} images in {count} batches of {tuple(first[0].shape[1:])} in {load_seconds:.1f} s; per class: {per_class}")
assert seen == summary.ok, (seen, summary.ok)  # every image once

# %% [markdown]
# ## Figures and numbers

# %%
fig = tutorial.size_figure(the_plan.sample, the_plan.distance, the_plan.prediction.L,
                           summary.total_bytes / max(summary.ok, 1), max_side)
plots.glue_figure("tut_fig_sizes", fig)
fig = tutorial.batch_figure(first[0], first[1], stream.classes)
plots.glue_figure("tut_fig_batch", fig)

# %%
info = the_plan.sample.sampling
status = source.note if profile != "smoke" else f"{source.note} Smoke profile: toy sizes."
numbers = {
    "status": status, "real_data": "yes" if source.real else "no", "images": source.images,
    "classes": len(source.classes), "class_names": ", ".join(c.replace("_", " ") for c in source.classes),
    "max_side": max_side, "budget_mb": budget / 1e6, "pool": pool_size,
    "n_star": the_plan.prediction.n, "L_star": the_plan.prediction.L, "distance": the_plan.distance,
    "distance_lo": the_plan.distance_interval[0], "distance_hi": the_plan.distance_interval[1],
    "sample_images": info["images"], "sample_distances": len(info["distances"]), "grid": len(info["grid"]),
    "encodes": info["encodes"], "exhaustive_encodes": info["exhaustive_encodes"],
    "sample_precision": info["relative_precision"], "precision": precision, "plan_seconds": plan_seconds,
    "dry_sample": dry_sample, "dry_predicted_mb": dry.predicted / 1e6,
    "dry_predicted_hi_mb": (dry.predicted_hi or dry.predicted) / 1e6,
    "lossless_mb": lossless.predicted / 1e6, "stored_mb": summary.source_bytes / 1e6,
    "lossless_saving": 1 - lossless.predicted / summary.source_bytes,
    "written": summary.ok, "written_mb": summary.total_bytes / 1e6, "mean_bytes": summary.total_bytes / summary.ok,
    "vs_Lstar": summary.total_bytes / summary.ok / the_plan.prediction.L - 1,
    "vs_predicted": summary.total_bytes / dry.predicted - 1, "ratio": summary.source_bytes / summary.total_bytes,
    "compress_seconds": compress_seconds, "shards": len(summary.shards), "shard_size_mb": shard_size / 1e6,
    "largest_shard_mb": max(shard_bytes) / 1e6, "shard_pattern": shards.pattern("webdataset", len(summary.shards)),
    "on_disk_mb": summary.shard_bytes / 1e6, "tar_overhead": summary.shard_bytes / summary.total_bytes - 1,
    "tar_per_image": (summary.shard_bytes - summary.total_bytes) / summary.ok,
    "batch_size": batch_size, "loaded": seen, "batch_shape": " x ".join(map(str, first[0].shape)),
    "load_seconds": load_seconds, "loader_workers": loader_workers,
    "total_seconds": time.perf_counter() - started,
}
plots.glue_values("tut_", numbers)
display(Markdown(f"*{status}* The whole page took {numbers['total_seconds']:.0f} s."))
