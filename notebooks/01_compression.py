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
# # Compression: what an image costs in bytes
#
# Mean bytes per image $L(d)$ at JPEG XL Butteraugli distance $d$ (effort 7, as the paper) on
# Food-101 64 px (the whole train pool), the 300 full-size Food-101 originals and CIFAR-10 train;
# the three "original format" accountings; the paper's fit $L(d) = 1/(a d + b)$;
# rate–distortion of JPEG XL, JPEG, WebP and AVIF; an image strip; the blog's capacity plot.

# %% tags=["parameters"]
profile = "publish"
workers = None  # encoder processes (None: all cores)
progress = False  # tqdm bars in the executed notebook

# %%
import math

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import budget, codecs, data, quality, store, tables

DATASETS = {  # name -> (split, what we use, label)
    "food101-64px": ("train", "paper train pool (80% of the official train split, seed 42)", "Food-101 64 px"),
    "food101-originals": ("sample", "300 full-size originals", "Food-101 full size (300 originals)"),
    "cifar10-jpg": ("train", "official train split", "CIFAR-10 32 px"),
}
DISTANCES = [1, 2, 4, 7, 10, 15]  # the paper's grid
CAPACITY_DISTANCES = [2, 4, 6, 8, 10]  # the blog's bars (d = 0 is the original format)
EFFORT = 7
PAPER_L = {1: 39966, 2: 33150, 4: 17902, 7: 10437, 10: 7937, 15: 5621}  # Food-101 full size, bytes
PAPER_ORIGINAL = 43000  # lossless JXL transcode, read off the paper's figure
PAPER_POOL = 60600
BLOG_RATIO = 5.6
BLOG_BASELINE = 9985

SIZE_PARAMS = {
    "datasets": list(DATASETS), "distances_by_dataset": {
        "food101-64px": sorted(set(DISTANCES + CAPACITY_DISTANCES)),
        "food101-originals": sorted(set(DISTANCES + CAPACITY_DISTANCES)),
        "cifar10-jpg": DISTANCES},
    "effort": EFFORT, "pool_seed": 42,
}
FULL_LIMITS = {ds: None for ds in DATASETS}
SMOKE_LIMITS = {"food101-64px": 400, "food101-originals": 12, "cifar10-jpg": 400}
FULL_SIZES = {**SIZE_PARAMS, "limit": FULL_LIMITS}
SMOKE_SIZES = {**SIZE_PARAMS, "limit": SMOKE_LIMITS}


def image_pool(dataset: str, limit=None) -> data.ImageSet:
    """The images whose bytes we count: the paper's train pool for Food-101 64 px."""
    split = DATASETS[dataset][0]
    images = data.load(dataset, split)
    if dataset == "food101-64px":
        keep, _ = data.paper_split(images.labels, seed=42)
        images = images.subset(keep)
    if limit is not None and len(images) > limit:
        images = images.subset(data.nested_subset(images.labels, limit, seed=0))
    return images


# %% [markdown]
# ## Bytes per image at each distance, and the original format three ways
#
# *Stored JPEG*: the file as the dataset ships it (what a team keeps; what the blog counted).
# *Lossless JXL transcode*: `jpegxl_encode_jpeg` of that file (what the paper counted at
# $d = 0$; the JPEG comes back bit for bit). *JPEG without the shared header*: every header
# segment that other files repeat byte for byte (JFIF, quantisation and Huffman tables, frame and
# scan headers) is stored once for the whole set, and each file keeps only its own bytes plus a
# template reference (`codecs.jpeg_header_accounting`).

# %%
def compute_sizes(params: dict) -> pd.DataFrame:
    rows = []
    for dataset in params["datasets"]:
        images = image_pool(dataset, params["limit"][dataset])
        shapes = np.asarray([codecs.jpeg_shape(b) for b in images.encoded])
        pixels = shapes[:, 0] * shapes[:, 1]

        def row(scheme, distance, sizes):
            sizes = np.asarray(sizes, dtype=np.float64)
            rows.append({"dataset": dataset, "split": images.split, "scheme": scheme, "distance": distance,
                         "n_images": len(sizes), "mean_bytes": sizes.mean(), "median_bytes": np.median(sizes),
                         "std_bytes": sizes.std(), "total_bytes": sizes.sum(),
                         "mean_pixels": pixels.mean(), "bpp": float(np.mean(8 * sizes / pixels))})

        row("stored-jpeg", np.nan, images.stored_bytes)
        entry = store.compress(images, "jxl-transcode", workers=workers, progress=progress)
        row("jxl-transcode", np.nan, entry.sizes)
        row("jpeg-headerless", np.nan, codecs.jpeg_header_accounting(images.encoded).amortized)
        for d in params["distances_by_dataset"][dataset]:
            entry = store.compress(images, "jxl", float(d), effort=params["effort"], workers=workers,
                                   progress=progress)
            row("jxl", float(d), entry.sizes)
    return pd.DataFrame(rows)


def compute_headers(params: dict) -> pd.DataFrame:
    rows = []
    for dataset in params["datasets"]:
        images = image_pool(dataset, params["limit"][dataset])
        h = codecs.jpeg_header_accounting(images.encoded)
        rows.append({"dataset": dataset, "n_images": len(images), "stored_mean": h.stored.mean(),
                     "shared_per_image_mean": h.shared_per_image.mean(),
                     "shared_share": float(np.mean(h.shared_per_image / h.stored)),
                     "own_mean": h.per_image.mean(), "dictionary_bytes": h.dictionary_bytes,
                     "amortized_mean": h.amortized.mean(), "n_shared_segments": h.n_shared_segments,
                     "n_templates": h.n_templates, "reference_bytes": h.reference_bytes,
                     "common_prefix_bytes": h.common_prefix})
    return pd.DataFrame(rows)


sizes_table = tables.profile_table("compression_sizes", profile=profile, full_params=FULL_SIZES,
                                   smoke_params=SMOKE_SIZES, compute=compute_sizes)
headers_table = tables.profile_table("compression_headers", profile=profile, full_params=FULL_SIZES,
                                     smoke_params=SMOKE_SIZES, compute=compute_headers)
tables.banner(sizes_table)
sizes = sizes_table.frame
headers = headers_table.frame


def L(dataset, scheme="jxl", distance=None):
    sel = sizes[(sizes.dataset == dataset) & (sizes.scheme == scheme)]
    if distance is not None:
        sel = sel[np.isclose(sel.distance, distance)]
    return float(sel.mean_bytes.iloc[0])


n_pool = int(sizes[(sizes.dataset == "food101-64px") & (sizes.scheme == "stored-jpeg")].n_images.iloc[0])
display(headers.round(3))

# %% [markdown]
# ### Our numbers beside the paper's
#
# The paper's $L$ is the mean JPEG XL size over the full-size Food-101 train pool (up to
# 512 px); the 300 originals are a sample of exactly those images, so they are the comparison.
# The 64 px column is what our training runs store.

# %%
compare = pd.DataFrame({
    "distance": [str(d) for d in DISTANCES] + ["original (lossless JXL transcode)", "original (stored JPEG)"],
    "paper, full size (B)": [PAPER_L[d] for d in DISTANCES] + [PAPER_ORIGINAL, np.nan],
    "ours, full size (B)": [L("food101-originals", "jxl", d) for d in DISTANCES]
    + [L("food101-originals", "jxl-transcode"), L("food101-originals", "stored-jpeg")],
    "ours, 64 px pool (B)": [L("food101-64px", "jxl", d) for d in DISTANCES]
    + [L("food101-64px", "jxl-transcode"), L("food101-64px", "stored-jpeg")],
    "ours, CIFAR-10 (B)": [L("cifar10-jpg", "jxl", d) for d in DISTANCES]
    + [L("cifar10-jpg", "jxl-transcode"), L("cifar10-jpg", "stored-jpeg")],
})
compare["full size / paper"] = compare["ours, full size (B)"] / compare["paper, full size (B)"]
compare["64 px / paper"] = compare["ours, 64 px pool (B)"] / compare["paper, full size (B)"]
compare_styled = compare.style.format({c: "{:,.0f}" for c in compare.columns if "(B)" in c} | {
    "full size / paper": "{:.2f}", "64 px / paper": "{:.3f}"}, na_rep="–").hide(axis="index")
display(compare_styled)

originals = pd.DataFrame([
    {"dataset": DATASETS[ds][2], "images": int(headers.set_index("dataset").loc[ds, "n_images"]),
     "stored JPEG (B)": L(ds, "stored-jpeg"), "lossless JXL transcode (B)": L(ds, "jxl-transcode"),
     "JPEG without shared header (B)": L(ds, "jpeg-headerless"),
     "shared header per file (B)": headers.set_index("dataset").loc[ds, "shared_per_image_mean"],
     "header share of file": headers.set_index("dataset").loc[ds, "shared_share"],
     "transcode / stored": L(ds, "jxl-transcode") / L(ds, "stored-jpeg"),
     "headerless / stored": L(ds, "jpeg-headerless") / L(ds, "stored-jpeg")}
    for ds in DATASETS])
originals_styled = originals.style.format({c: "{:,.0f}" for c in originals.columns if "(B)" in c} | {
    "images": "{:,}", "header share of file": "{:.0%}", "transcode / stored": "{:.3f}",
    "headerless / stored": "{:.3f}"}
).hide(axis="index")
display(originals_styled)

# %% [markdown]
# ### The paper's interpolation $L(d) = 1/(a d + b)$
# Fitted (least squares on $L$, as the paper's `curve_fit`) to each dataset's six points; cheap,
# so it always runs on the table above.

# %%
fits = {}
for ds in DATASETS:
    pts = sizes[(sizes.dataset == ds) & (sizes.scheme == "jxl") & sizes.distance.isin(DISTANCES)]
    a, b = codecs.fit_rate_curve(pts.distance, pts.mean_bytes)
    pred = codecs.rate_curve(pts.distance, a, b)
    fits[ds] = {"a": a, "b": b, "max_rel_error": float(np.max(np.abs(pred / pts.mean_bytes - 1)))}
a, b = codecs.fit_rate_curve(list(PAPER_L), list(PAPER_L.values()))
fits["paper (Food-101 full size)"] = {"a": a, "b": b, "max_rel_error": float(np.max(np.abs(
    codecs.rate_curve(list(PAPER_L), a, b) / np.array(list(PAPER_L.values())) - 1)))}
fit_frame = pd.DataFrame(fits).T.rename_axis("dataset").reset_index()
fit_frame["L(0) = 1/b (B)"] = 1 / fit_frame["b"]
display(fit_frame.style.format({"a": "{:.3e}", "b": "{:.3e}", "max_rel_error": "{:.1%}", "L(0) = 1/b (B)": "{:,.0f}"}).hide(axis="index"))

fig_sizes, ax = plt.subplots(figsize=(10, 4.8))
grid = np.linspace(0.5, 15.5, 200)
colors = {"food101-64px": "C0", "food101-originals": "C1", "cifar10-jpg": "C2"}
for ds, (_, _, label) in DATASETS.items():
    pts = sizes[(sizes.dataset == ds) & (sizes.scheme == "jxl")]
    ax.plot(pts.distance, pts.mean_bytes, "o", color=colors[ds], label=f"{label}: measured")
    ax.plot(grid, codecs.rate_curve(grid, fits[ds]["a"], fits[ds]["b"]), "-", color=colors[ds], alpha=0.7,
            label=f"{label}: fit $1/(ad+b)$")
    ax.axhline(L(ds, "stored-jpeg"), color=colors[ds], ls=":", lw=1)
ax.plot(list(PAPER_L), list(PAPER_L.values()), "ks", mfc="none", label="paper, Food-101 full size")
pf = fits["paper (Food-101 full size)"]
ax.plot(grid, codecs.rate_curve(grid, pf["a"], pf["b"]), "k--", lw=1, label="paper: fit")
ax.set_yscale("log")
ax.set_xlabel("Butteraugli distance $d$")
ax.set_ylabel("mean bytes per image $L$ (log scale)")
ax.set_title("JPEG XL size per image (effort 7); dotted: stored JPEG")
ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
fig_sizes.tight_layout()
plt.show()

# %% [markdown]
# ## Rate–distortion: JPEG XL against JPEG, WebP and AVIF
# Each codec encodes the decoded stored photos (so the reference is the stored JPEG's pixels)
# at a range of settings; curves are means over the image set. SSIMULACRA2 only on the
# full-size set (it needs at least 256 px for its six scales).

# %%
RD_SETTINGS_FULL = {"jxl": [0.5, 1, 2, 4, 7, 10, 15, 25], "jpeg": [10, 20, 30, 50, 70, 85, 95],
                    "webp": [5, 15, 30, 50, 70, 85, 95], "avif": [10, 25, 40, 55, 70, 85]}
RD_LABELS = {"food101-64px": "Food-101 64 px", "food101-originals": "Food-101 full size"}
RD_SETTINGS_SMOKE = {"jxl": [1, 4, 15], "jpeg": [30, 70, 90], "webp": [30, 70], "avif": [30, 60]}
RD_FULL = {"sets": {"food101-64px": 200, "food101-originals": 15}, "settings": RD_SETTINGS_FULL,
           "effort": EFFORT, "seed": 0}
RD_SMOKE = {"sets": {"food101-64px": 24, "food101-originals": 2}, "settings": RD_SETTINGS_SMOKE,
            "effort": EFFORT, "seed": 0}


def compute_rd(params: dict) -> pd.DataFrame:
    frames = []
    for dataset, n in params["sets"].items():
        pool = image_pool(dataset)
        images = pool.subset(data.nested_subset(pool.labels, n, seed=params["seed"]))
        metrics = ("psnr", "ssim", "ssimulacra2") if dataset == "food101-originals" else ("psnr", "ssim")
        rows = quality.rate_distortion(images, params["settings"], metrics=metrics, effort=params["effort"],
                                       workers=workers, progress=progress)
        summary = quality.summarize(rows, metrics=metrics)
        summary.insert(0, "dataset", dataset)
        frames.append(summary)
    return pd.concat(frames, ignore_index=True)


rd_table = tables.profile_table("compression_rd", profile=profile, full_params=RD_FULL, smoke_params=RD_SMOKE,
                                compute=compute_rd)
tables.banner(rd_table)
rd = rd_table.frame
rd_sets = {ds: int(rd[rd.dataset == ds].n_images.max()) for ds in rd.dataset.unique()}
versions = codecs.versions()
display(Markdown(
    f"Codecs: {versions['jxl']} (effort {EFFORT}), {versions['jpeg']} (4:2:0, optimised Huffman), "
    f"{versions['webp']} (lossy, method {codecs.WEBP_METHOD}), {versions['avif']} (speed {codecs.AVIF_SPEED}); "
    f"imagecodecs {versions['imagecodecs']}; one thread per image. Image sets: "
    + ", ".join(f"{n} images of {RD_LABELS[ds]}" for ds, n in rd_sets.items()) + "."))

fig_rd, axes = plt.subplots(2, 3, figsize=(12, 7.2))
labels = {"jxl": "JPEG XL", "jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}
ylabels = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ssimulacra2": "SSIMULACRA2 (100 = identical)"}
for r, ds in enumerate(["food101-64px", "food101-originals"]):
    sub = rd[rd.dataset == ds]
    for c, metric in enumerate(["psnr", "ssim", "ssimulacra2"]):
        ax = axes[r, c]
        if metric not in sub or sub[metric].isna().all():
            ax.text(0.5, 0.5, "not computed:\nSSIMULACRA2 needs\n≥ 256 px images", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{RD_LABELS[ds]}, {rd_sets[ds]} images: {metric.upper()}", fontsize=10)
            continue
        for codec, cur in sub.groupby("codec"):
            cur = cur.sort_values("bpp")
            ax.errorbar(cur.bpp, cur[metric], yerr=cur[f"{metric}_sem"], marker="o", ms=3, capsize=2,
                        label=labels[codec])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(ylabels[metric])
        ax.set_title(f"{RD_LABELS[ds]}, {rd_sets[ds]} images: {metric.upper()}", fontsize=10)
        ax.legend(fontsize=7)
fig_rd.suptitle("Rate–distortion, mean over the image set (error bars: standard error)")
fig_rd.tight_layout()
plt.show()

cross = []
for ds in rd.dataset.unique():
    summary = rd[rd.dataset == ds]
    for metric in ("psnr", "ssim", "ssimulacra2"):
        if metric in summary and summary[metric].notna().any():
            found = quality.crossovers(summary, metric, reference="jxl")
            found.insert(0, "dataset", ds)
            cross.append(found)
cross = pd.concat(cross, ignore_index=True)
display(cross.round(3))


def describe_crossovers(frame, dataset) -> str:
    sub = frame[(frame.dataset == dataset)]
    if sub.empty:
        return "no crossover with JPEG XL in the measured range"
    parts = [f"{labels[r.other]} on {r.metric.upper()} at {r.bpp:.2f} bpp ({labels[r.better_above]} better above)"
             for r in sub.itertuples()]
    return "; ".join(parts)


def describe_at(dataset, metric, bpp, digits) -> str:
    at = quality.value_at(rd[rd.dataset == dataset], metric, bpp)
    if at.empty:
        return "no codec was measured at this rate"
    return ", ".join(f"{labels[c]} {v:.{digits}f}" for c, v in at.items())


AT_RATES = {"food101-64px": ("psnr", 1.0, 1), "food101-originals": ("ssimulacra2", 0.3, 1)}
at_rates = {ds: describe_at(ds, *spec) for ds, spec in AT_RATES.items()}
display(Markdown("; ".join(f"{DATASETS[ds][2]}, {AT_RATES[ds][0].upper()} at {AT_RATES[ds][1]} bpp: {txt}"
                           for ds, txt in at_rates.items())))

# %% [markdown]
# ## The same photo at every distance

# %%
full_set = data.load("food101-originals", "sample")
small_set = data.load("food101-64px", "train")
pick = int(np.flatnonzero(full_set.labels == full_set.labels[-1])[0])  # the first waffles photo
photo_id = full_set.ids[pick]
full_px = codecs.decode_source(full_set.encoded[pick], photo_id, full_set.dataset)
small_k = int(np.flatnonzero(small_set.ids == photo_id)[0])
small_px = codecs.decode_source(small_set.encoded[small_k], photo_id, small_set.dataset)
h, w = full_px.shape[:2]
crop = (slice(h // 2 - 96, h // 2 + 96), slice(w // 2 - 96, w // 2 + 96))
fig_strip, axes = plt.subplots(2, len(DISTANCES) + 1, figsize=(2.0 * (len(DISTANCES) + 1), 5.4))
for col, d in enumerate([None] + DISTANCES):
    for row, (px, stored, what) in enumerate([(full_px, full_set.encoded[pick], f"{w}x{h}"),
                                              (small_px, small_set.encoded[small_k], "64 px")]):
        if d is None:
            shown, nbytes, title = px, len(stored), "stored JPEG"
        else:
            bits = codecs.encode(px, "jxl", float(d), effort=EFFORT)
            shown, nbytes, title = codecs.decode(bits), len(bits), f"d = {d}"
        ax = axes[row, col]
        ax.imshow(shown[crop] if row == 0 else shown, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{title}\n{nbytes:,} B", fontsize=8)
        if col == 0:
            ax.set_ylabel(f"{what}\n(centre 192 px)" if row == 0 else what, fontsize=8)
fig_strip.suptitle(f"{photo_id}: JPEG XL effort {EFFORT} at each distance (bytes of the whole image)")
fig_strip.tight_layout()
plt.show()

# %% [markdown]
# ## The blog's capacity plot
# Budget = the whole train pool at $d = 10$. At 64 px we count, for each distance, the longest
# prefix of a class-balanced random order of the pool whose real per-image bytes fit
# (`budget.largest_prefix`); at $d = 10$ that is the whole pool by construction. For full size
# we only have 300 originals, so the count is budget / mean bytes per image, with the budget =
# (size of the 64 px pool) x (mean full-size bytes at $d = 10$), capped at the pool size.

# %%
def compute_capacity(params: dict) -> pd.DataFrame:
    rows = []
    images = image_pool("food101-64px", params["limit"]["food101-64px"])
    order = data.nested_order(images.labels, seed=0)
    at10 = store.compress(images, "jxl", 10.0, effort=params["effort"], workers=workers, progress=progress)
    budget_bytes = at10.total_bytes
    header = codecs.jpeg_header_accounting(images.encoded)
    schemes = [("stored-jpeg", 0.0, images.stored_bytes, 0),
               ("jxl-transcode", 0.0, store.compress(images, "jxl-transcode", workers=workers,
                                                     progress=progress).sizes, 0),
               ("jpeg-headerless", 0.0, header.per_image, header.dictionary_bytes)]
    for d in params["capacity_distances"]:
        entry = store.compress(images, "jxl", float(d), effort=params["effort"], workers=workers, progress=progress)
        schemes.append(("jxl", float(d), entry.sizes, 0))
    for scheme, d, per_image, fixed in schemes:
        fit = budget.largest_prefix(np.asarray(per_image)[order], budget_bytes - fixed)
        rows.append({"dataset": "food101-64px", "scheme": scheme, "distance": d, "budget_bytes": budget_bytes,
                     "n_fit": fit.n, "pool_size": len(images), "pool_exhausted": fit.pool_exhausted,
                     "count": "prefix of a class-balanced random order, real per-image bytes"})
    # full size: 300 originals, counted through mean bytes per image
    originals = image_pool("food101-originals", params["limit"]["food101-originals"])
    pool_n = len(images)
    means = {("stored-jpeg", 0.0): originals.stored_bytes.mean(),
             ("jxl-transcode", 0.0): store.compress(originals, "jxl-transcode", workers=workers,
                                                    progress=progress).mean_bytes,
             ("jpeg-headerless", 0.0): codecs.jpeg_header_accounting(originals.encoded).amortized.mean()}
    for d in params["capacity_distances"]:
        means[("jxl", float(d))] = store.compress(originals, "jxl", float(d), effort=params["effort"],
                                                  workers=workers, progress=progress).mean_bytes
    budget_full = pool_n * means[("jxl", 10.0)]
    for (scheme, d), mean in means.items():
        n = min(pool_n, int(math.floor(budget_full / mean + 1e-9)))
        rows.append({"dataset": "food101-originals", "scheme": scheme, "distance": d, "budget_bytes": budget_full,
                     "n_fit": n, "pool_size": pool_n, "pool_exhausted": n >= pool_n,
                     "count": f"budget / mean bytes of {len(originals)} originals, capped at the pool"})
    return pd.DataFrame(rows)


CAP_FULL = {"limit": FULL_LIMITS, "capacity_distances": CAPACITY_DISTANCES, "effort": EFFORT, "order_seed": 0}
CAP_SMOKE = {**CAP_FULL, "limit": SMOKE_LIMITS}
cap_table = tables.profile_table("compression_capacity", profile=profile, full_params=CAP_FULL,
                                 smoke_params=CAP_SMOKE, compute=compute_capacity)
tables.banner(cap_table)
cap = cap_table.frame


def n_fit(dataset, scheme, d=0.0):
    sel = cap[(cap.dataset == dataset) & (cap.scheme == scheme) & np.isclose(cap.distance, d)]
    return int(sel.n_fit.iloc[0])


fig_cap, axes = plt.subplots(1, 2, figsize=(13, 4.8))
for ax, ds, title in [(axes[0], "food101-64px", "Food-101 64 px train pool (real per-image bytes)"),
                      (axes[1], "food101-originals", "Food-101 full size (mean bytes of 300 originals)")]:
    xs = ["0: stored\nJPEG", "0: JXL\ntranscode", "0: JPEG w/o\nshared header"] + [str(d) for d in CAPACITY_DISTANCES]
    ns = [n_fit(ds, s) for s in ("stored-jpeg", "jxl-transcode", "jpeg-headerless")] + [
        n_fit(ds, "jxl", d) for d in CAPACITY_DISTANCES]
    colors_ = ["0.35", "0.6", "0.8"] + ["C0"] * len(CAPACITY_DISTANCES)
    bars = ax.bar(range(len(xs)), ns, color=colors_)
    for k, (bar, n) in enumerate(zip(bars, ns)):
        ax.text(bar.get_x() + bar.get_width() / 2, n, f"{n:,}\n({n / ns[0]:.1f}x)", ha="center", va="bottom",
                fontsize=7)
    ax.set_xticks(range(len(xs)), xs, fontsize=7)
    ax.set_xlabel("Butteraugli distance $d$ (0 = original format, three accountings)")
    ax.set_ylabel("images that fit in the budget")
    ax.set_ylim(0, max(ns) * 1.2)
    budget_mb = float(cap[cap.dataset == ds].budget_bytes.iloc[0]) / 1e6
    ax.set_title(f"{title}\nbudget {budget_mb:,.1f} MB = whole pool at d = 10", fontsize=9)
fig_cap.suptitle(f"How many images fit: the blog's plot (blog: about {BLOG_RATIO}x at d = 10 on full-size Food-101)")
fig_cap.tight_layout()
plt.show()

cap_ratio64 = n_fit("food101-64px", "jxl", 10.0) / n_fit("food101-64px", "stored-jpeg")
cap_ratio_full = n_fit("food101-originals", "jxl", 10.0) / n_fit("food101-originals", "stored-jpeg")
display(Markdown(f"Ratio at d = 10 over the stored JPEG: **{cap_ratio64:.2f}x** at 64 px, "
                 f"**{cap_ratio_full:.2f}x** at full size; the blog reported about {BLOG_RATIO}x."))

# %% [markdown]
# ## Numbers for the chapter

# %%
slug = {"food101-64px": "64", "food101-originals": "full", "cifar10-jpg": "cifar"}
for ds, s in slug.items():
    for d in DISTANCES:
        glue(f"comp_L{s}_d{d}", L(ds, "jxl", d), display=False)
    glue(f"comp_L{s}_jpeg", L(ds, "stored-jpeg"), display=False)
    glue(f"comp_L{s}_transcode", L(ds, "jxl-transcode"), display=False)
    glue(f"comp_L{s}_headerless", L(ds, "jpeg-headerless"), display=False)
    hrow = headers.set_index("dataset").loc[ds]
    glue(f"comp_header{s}_bytes", float(hrow.shared_per_image_mean), display=False)
    glue(f"comp_header{s}_share", float(hrow.shared_share), display=False)
    glue(f"comp_header{s}_prefix", float(hrow.common_prefix_bytes), display=False)
    glue(f"comp_header{s}_templates", float(hrow.n_templates), display=False)
    glue(f"comp_n{s}", float(hrow.n_images), display=False)
    glue(f"comp_transcode{s}_ratio", L(ds, "jxl-transcode") / L(ds, "stored-jpeg"), display=False)
    glue(f"comp_headerless{s}_ratio", L(ds, "jpeg-headerless") / L(ds, "stored-jpeg"), display=False)
    glue(f"comp_fit{s}_err", fits[ds]["max_rel_error"], display=False)
    glue(f"comp_fit{s}_a", fits[ds]["a"], display=False)
    glue(f"comp_fit{s}_b", fits[ds]["b"], display=False)
for d in DISTANCES:
    glue(f"comp_ratio_full_d{d}", L("food101-originals", "jxl", d) / PAPER_L[d], display=False)
    glue(f"comp_ratio64_d{d}", L("food101-64px", "jxl", d) / PAPER_L[d], display=False)
glue("comp_ratio_full_orig", L("food101-originals", "jxl-transcode") / PAPER_ORIGINAL, display=False)
glue("comp_paper_fit_err", fits["paper (Food-101 full size)"]["max_rel_error"], display=False)
full_ratios = [L("food101-originals", "jxl", d) / PAPER_L[d] for d in DISTANCES]
glue("comp_ratio_full_min", min(full_ratios), display=False)
glue("comp_ratio_full_max", max(full_ratios), display=False)
px_ratio = float(sizes[(sizes.dataset == "food101-originals") & (sizes.scheme == "stored-jpeg")].mean_pixels.iloc[0]
                 / (64 * 64))
glue("comp_pixel_ratio", px_ratio, display=False)
glue("comp_size_ratio_d10", L("food101-originals", "jxl", 10) / L("food101-64px", "jxl", 10), display=False)
glue("comp_size_ratio_d1", L("food101-originals", "jxl", 1) / L("food101-64px", "jxl", 1), display=False)
glue("comp_bpp64_d10", float(sizes[(sizes.dataset == "food101-64px") & (sizes.scheme == "jxl")
                                   & np.isclose(sizes.distance, 10)].bpp.iloc[0]), display=False)
glue("comp_bppfull_d10", float(sizes[(sizes.dataset == "food101-originals") & (sizes.scheme == "jxl")
                                     & np.isclose(sizes.distance, 10)].bpp.iloc[0]), display=False)
glue("comp_header64_bpp", float(headers.set_index("dataset").loc["food101-64px", "shared_per_image_mean"]) * 8 / (64 * 64),
     display=False)
glue("comp_npool", float(n_pool), display=False)
glue("comp_paper_pool", float(PAPER_POOL), display=False)

glue("comp_cap_ratio64", cap_ratio64, display=False)
glue("comp_cap_ratio_full", cap_ratio_full, display=False)
glue("comp_cap_ratio64_transcode", n_fit("food101-64px", "jxl", 10.0) / n_fit("food101-64px", "jxl-transcode"),
     display=False)
glue("comp_cap_ratio64_headerless",
     n_fit("food101-64px", "jxl", 10.0) / n_fit("food101-64px", "jpeg-headerless"), display=False)
glue("comp_cap_ratio_full_transcode",
     n_fit("food101-originals", "jxl", 10.0) / n_fit("food101-originals", "jxl-transcode"), display=False)
glue("comp_cap_n64_jpeg", float(n_fit("food101-64px", "stored-jpeg")), display=False)
glue("comp_cap_nfull_jpeg", float(n_fit("food101-originals", "stored-jpeg")), display=False)
glue("comp_cap_budget64_mb", float(cap[cap.dataset == "food101-64px"].budget_bytes.iloc[0]) / 1e6, display=False)
glue("comp_cap_budgetfull_mb", float(cap[cap.dataset == "food101-originals"].budget_bytes.iloc[0]) / 1e6,
     display=False)
glue("comp_blog_ratio", BLOG_RATIO, display=False)

glue("comp_rd_n64", float(rd_sets.get("food101-64px", 0)), display=False)
glue("comp_rd_nfull", float(rd_sets.get("food101-originals", 0)), display=False)
glue("comp_at64", at_rates["food101-64px"], display=False)
rd64 = rd[rd.dataset == "food101-64px"]
glue("comp_jpeg64_min_bpp", float(rd64[rd64.codec == "jpeg"].bpp.min()), display=False)
glue("comp_jxl64_min_bpp", float(rd64[rd64.codec == "jxl"].bpp.min()), display=False)
glue("comp_atfull", at_rates["food101-originals"], display=False)
glue("comp_cross64", describe_crossovers(cross, "food101-64px"), display=False)
glue("comp_crossfull", describe_crossovers(cross, "food101-originals"), display=False)
glue("comp_versions", f"{versions['jxl']}, {versions['jpeg']}, {versions['webp']}, {versions['avif']} "
     f"(imagecodecs {versions['imagecodecs']})", display=False)
glue("comp_photo_id", str(photo_id), display=False)
glue("comp_sizes_minutes", float(sizes_table.meta.get("seconds", float("nan"))) / 60, display=False)
glue("comp_full_minutes", sum(float(t.meta.get("seconds", float("nan")))
                              for t in (sizes_table, headers_table, rd_table, cap_table)) / 60, display=False)
glue("comp_source", {"committed": "committed full-size tables", "full": "a full-size run",
                     "smoke": "a smoke-size run (toy numbers)",
                     "smoke-fallback": "smoke-size placeholders (the full tables are pending)"}[sizes_table.source],
     display=False)

glue("comp_fig_sizes", fig_sizes, display=False)
glue("comp_fig_rd", fig_rd, display=False)
glue("comp_fig_strip", fig_strip, display=False)
glue("comp_fig_capacity", fig_cap, display=False)
glue("comp_table_compare", compare_styled, display=False)
glue("comp_table_original", originals_styled, display=False)
glue("comp_table_fit", fit_frame.style.format({"a": "{:.3e}", "b": "{:.3e}", "max_rel_error": "{:.1%}",
                                               "L(0) = 1/b (B)": "{:,.0f}"}).hide(axis="index"), display=False)
glue("comp_table_cross", cross[["dataset", "other", "metric", "bpp", "value", "better_above"]].style.format(
    {"bpp": "{:.3f}", "value": "{:.3f}"}).hide(axis="index"), display=False)
