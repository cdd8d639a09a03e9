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
# The tables are computed by `storage_scaling.compress.compression_tables` (also `storage-scaling tables`);
# this notebook loads them, plots and glues.

# %% tags=["parameters"]
profile = "publish"
workers = None  # encoder processes (None: all cores)
progress = False  # tqdm bars in the executed notebook

# %%
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np
from IPython.display import Markdown, display
from myst_nb import glue

from storage_scaling import law, tables

from storage_scaling.compress import codecs
from storage_scaling.compress import compression_tables as ct

# figures are 7 in wide at 100 dpi, the book's column: fonts render at their point size
plt.rcParams.update({"figure.dpi": 100, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
                     "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9})
WIDTH = 7.0
loaded = {name: ct.load_table(name, profile, workers=workers, progress=progress) for name in ct.TABLES}
sizes, headers = loaded["compression_sizes"].frame, loaded["compression_headers"].frame
rd, cap = loaded["compression_rd"].frame, loaded["compression_capacity"].frame
numbers = ct.chapter_numbers(loaded)

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
tables.banner(loaded["compression_sizes"])
header_view = headers.rename(columns={
    "n_images": "images", "stored_mean": "stored mean (B)", "shared_per_image_mean": "shared header per file (B)",
    "shared_share": "header share", "own_mean": "own bytes mean (B)", "dictionary_bytes": "dictionary (B)",
    "amortized_mean": "amortized mean (B)", "n_shared_segments": "shared segments", "n_templates": "templates",
    "reference_bytes": "reference (B)", "common_prefix_bytes": "common prefix (B)"})
counts = [c for c in header_view.columns if c not in ("dataset", "header share")]
display(header_view.style.format("{:,.0f}", subset=counts).format("{:.1%}", subset=["header share"])
        .hide(axis="index"))

# %% [markdown]
# ### Our numbers beside the paper's
#
# The paper's $L$ is the mean JPEG XL size over the full-size Food-101 train pool (up to
# 512 px); the 300 originals are a sample of exactly those images, so they are the comparison.
# The 64 px column is what our training runs store.

# %%
compare = ct.paper_comparison(sizes)
compare_styled = compare.style.format({c: "{:,.0f}" for c in compare.columns if "(B)" in c} | {
    "full size / paper": "{:.2f}", "64 px / paper": "{:.3f}"}, na_rep="–").hide(axis="index")
display(compare_styled)

originals = ct.original_formats(sizes, headers)
originals_styled = originals.style.format({c: "{:,.0f}" for c in originals.columns if "(B)" in c} | {
    "images": "{:,}", "header share of file": "{:.0%}", "transcode / stored": "{:.3f}",
    "headerless / stored": "{:.3f}"}).hide(axis="index")
display(originals_styled)

# %% [markdown]
# ### The paper's interpolation $L(d) = 1/(a d + b)$
# Fitted (`law.fit_size_curve`: least squares on $L$, as the paper's `curve_fit`) to each
# dataset's six points; cheap, so it always runs on the table above.

# %%
fits = ct.size_fits(sizes)
fit_styled = ct.fit_frame(fits).style.format({
    "a (1/B per unit d)": "{:.3e}", "b (1/B)": "{:.3e}", "max relative error": "{:.1%}",
    "L(0) = 1/b (B)": "{:,.0f}"}).hide(axis="index")
display(fit_styled)

fig_sizes, ax = plt.subplots(figsize=(WIDTH, 5.6))
grid = np.linspace(codecs.STUDY_DISTANCES[0], codecs.STUDY_DISTANCES[1] + 0.5, 200)
colors = {"food101-64px": "C0", "food101-originals": "C1", "cifar10-jpg": "C2", "camvid-240x180": "C3"}
for ds, (_, _, label) in ct.DATASETS.items():
    pts = sizes[(sizes.dataset == ds) & (sizes.scheme == "jxl")]
    ax.plot(pts.distance, pts.mean_bytes, "o", color=colors[ds], label=f"{label}: measured")
    ax.plot(grid, fits[ds].curve.size(grid), "-", color=colors[ds], alpha=0.7, label=f"{label}: fit")
    ax.axhline(ct.mean_bytes(sizes, ds, "stored-png" if ds in ct.PNG_DATASETS else "stored-jpeg"), color=colors[ds],
               ls=":", lw=1)
paper_sizes = law.PAPER_SIZE_TABLES["food101"]
ax.plot(list(paper_sizes), list(paper_sizes.values()), "ks", mfc="none", label="paper, Food-101 full size")
ax.plot(grid, fits[ct.PAPER_FIT].curve.size(grid), "k--", lw=1, label="paper: fit")
ax.set_yscale("log")
ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
ax.set_xlabel("Butteraugli distance $d$")
ax.set_ylabel("mean bytes per image $L$ (B, log scale)")
ax.set_title("JPEG XL bytes per image (effort 7), fits $1/(ad+b)$; dotted: stored file")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
fig_sizes.tight_layout()
plt.show()

# %% [markdown]
# ## Rate–distortion: JPEG XL against JPEG, WebP and AVIF
# Each codec encodes the decoded stored photos (so the reference is the stored JPEG's pixels)
# at a range of settings; curves are means over the image set. SSIMULACRA2 only on the
# full-size set (it needs at least 256 px for its six scales).

# %%
tables.banner(loaded["compression_rd"])
rd_sets = ct.rd_sets(rd)
versions = codecs.versions()
display(Markdown(
    f"Codecs: {versions['jxl']} (effort {ct.EFFORT}), {versions['jpeg']} (4:2:0, optimised Huffman), "
    f"{versions['webp']} (lossy, method {codecs.WEBP_METHOD}), {versions['avif']} (speed {codecs.AVIF_SPEED}); "
    f"imagecodecs {versions['imagecodecs']}; one thread per image. Image sets: "
    + ", ".join(f"{n} images of {ct.RD_LABELS[ds]}" for ds, n in rd_sets.items()) + "."))

metrics = {"psnr": "PSNR (dB)", "ssim": "SSIM", "ssimulacra2": "SSIMULACRA2 (100 = identical)"}
fig_rd, axes = plt.subplots(3, 2, figsize=(WIDTH, 9.6))
for c, ds in enumerate(["food101-64px", "food101-originals"]):
    sub = rd[rd.dataset == ds]
    for r, (metric, ylabel) in enumerate(metrics.items()):
        ax = axes[r, c]
        ax.set_title(f"{ct.RD_LABELS[ds]}, {rd_sets[ds]} images")
        if metric not in sub or sub[metric].isna().all():
            ax.text(0.5, 0.5, f"{metric.upper()} not computed:\nit needs images\nof at least 256 px",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([]), ax.set_yticks([])
            continue
        for codec, cur in sub.groupby("codec"):
            cur = cur.sort_values("bpp")
            ax.errorbar(cur.bpp, cur[metric], yerr=cur[f"{metric}_sem"], marker="o", ms=3, capsize=2,
                        label=ct.CODEC_LABELS[codec])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(ylabel)
handles, labels = axes[0, 0].get_legend_handles_labels()
fig_rd.legend(handles, labels, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.985), frameon=False)
fig_rd.suptitle("Rate–distortion, mean over the image set (error bars: standard error)", y=0.995)
fig_rd.tight_layout(rect=(0, 0, 1, 0.965))
plt.show()

cross = ct.rd_crossovers(rd)
cross_view = cross.assign(dataset=cross.dataset.map(ct.RD_LABELS), other=cross.other.map(ct.CODEC_LABELS),
                          better_above=cross.better_above.map(ct.CODEC_LABELS), metric=cross.metric.str.upper())
cross_styled = cross_view[["dataset", "other", "metric", "bpp", "value", "better_above"]].rename(columns={
    "other": "codec (against JPEG XL)", "bpp": "crossing (bits per pixel)", "value": "metric value at crossing",
    "better_above": "better above the crossing"}).style.format(
    {"crossing (bits per pixel)": "{:.3f}", "metric value at crossing": "{:.3f}"}).hide(axis="index")
display(cross_styled)
at_rates = ct.at_rates(rd)
display(Markdown("; ".join(f"{ct.DATASETS[ds][2]}, {ct.AT_RATES[ds][0].upper()} at {ct.AT_RATES[ds][1]} bpp: "
                           f"{txt}" for ds, txt in at_rates.items())))

# %% [markdown]
# ## The same photo at every distance
# Left: the centre 192 px of the full-size photo; right: the 64 px version we train on. Each
# title gives the bytes of the whole image.

# %%
strip = ct.photo_strip()
h, w = strip.full_shape
fig_strip, axes = plt.subplots(len(strip.panels), 2, figsize=(4.9, 2.3 * len(strip.panels)))
for row, panel in enumerate(strip.panels):
    for col, (px, nbytes, what) in enumerate([(panel.full, panel.full_bytes, f"{w}x{h}"),
                                              (panel.small, panel.small_bytes, "64 px")]):
        ax = axes[row, col]
        ax.imshow(px, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{panel.title}, {what}: {nbytes:,} B")
fig_strip.suptitle(f"{strip.photo_id}: JPEG XL effort {ct.EFFORT}", y=0.998)
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
tables.banner(loaded["compression_capacity"])
fig_cap, axes = plt.subplots(2, 1, figsize=(WIDTH, 8.4))
for ax, ds, title in [(axes[0], "food101-64px", "Food-101 64 px train pool (real per-image bytes)"),
                      (axes[1], "food101-originals", "Food-101 full size (mean bytes of 300 originals)")]:
    bars = ct.capacity_bars(cap, ds)  # d = 0 three ways, then each distance
    ns = [n for _, n in bars]
    drawn = ax.bar(range(len(bars)), ns, color=["0.35", "0.6", "0.8"] + ["C0"] * len(ct.CAPACITY_DISTANCES))
    for bar, n in zip(drawn, ns):
        ax.text(bar.get_x() + bar.get_width() / 2, n, f"{n:,}\n({n / ns[0]:.1f}x)", ha="center", va="bottom",
                fontsize=9)
    ax.set_xticks(range(len(bars)), [label for label, _ in bars])
    ax.set_xlabel("Butteraugli distance $d$ (0 = original format, three accountings)")
    ax.set_ylabel("images that fit in the budget")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
    ax.set_ylim(0, max(ns) * 1.25)
    budget_mb = float(cap[cap.dataset == ds].budget_bytes.iloc[0]) / 1e6
    ax.set_title(f"{title}\nbudget {budget_mb:,.1f} MB = the whole pool at d = 10")
fig_cap.suptitle(f"How many images fit in one budget (blog: about {ct.BLOG_RATIO}x at d = 10)")
fig_cap.tight_layout()
plt.show()
display(Markdown(f"Ratio at d = 10 over the stored JPEG: **{numbers['comp_cap_ratio64']:.2f}x** at 64 px, "
                 f"**{numbers['comp_cap_ratio_full']:.2f}x** at full size; the blog reported about "
                 f"{ct.BLOG_RATIO}x."))

# %% [markdown]
# ## Numbers for the chapter

# %%
for key, value in numbers.items():
    glue(key, value, display=False)
glue("comp_versions", ct.versions_text(), display=False)
glue("comp_photo_id", strip.photo_id, display=False)
glue("comp_fig_sizes", fig_sizes, display=False)
glue("comp_fig_rd", fig_rd, display=False)
glue("comp_fig_strip", fig_strip, display=False)
glue("comp_fig_capacity", fig_cap, display=False)
glue("comp_table_compare", compare_styled, display=False)
glue("comp_table_original", originals_styled, display=False)
glue("comp_table_fit", fit_styled, display=False)
glue("comp_table_cross", cross_styled, display=False)
