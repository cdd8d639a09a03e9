"""The compression tables of chapter 1: what an image costs in bytes, computed by a command.

Four committed tables, each a function of a parameter dict (``tables.profile_table`` records the
dict with the table, and a publish build loads the table only when the dict is identical):

``compression_sizes``     mean / median / total bytes per image for every dataset: the stored
                          JPEG, its lossless JPEG XL transcode, the JPEG without its shared header,
                          and JPEG XL at each Butteraugli distance (:func:`compute_sizes`); for
                          CamVid's PNG scenes the stored PNG and its lossless JPEG XL encode (the
                          original format, by the paper's rule for Cityscapes) instead of the three
                          JPEG accountings;
``compression_headers``   how much of each stored JPEG is header that other files repeat
                          (:func:`compute_headers`; JPEG datasets only);
``compression_rd``        rate-distortion of JPEG XL, JPEG, WebP and AVIF (:func:`compute_rd`);
``compression_capacity``  the blog's capacity plot: how many images fit in a budget
                          (:func:`compute_capacity`).

The images are the pools the experiments train on (``data.pool``): the paper's train pool for
Food-101 64 px, the whole official train split for CIFAR-10 and CamVid, all 300 full-size
Food-101 originals. Everything the chapter quotes is derived here from the tables
(:func:`chapter_numbers`), so notebook 01 only loads, plots and glues::

    storage-scaling tables --profile full            # all four into results/ (24 min, 2 cores)
    storage-scaling tables sizes rd --profile smoke  # toy size, into <cache>/smoke-results/
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import budget, codecs, quality, store

from .. import data, law, paths, tables

# ---------------------------------------------------------------------------------------------
# What is measured (these dicts are recorded with the committed tables: keep them as they are)

DATASETS = {  # name -> (pool kind for data.pool, what we use, label)
    "food101-64px": ("paper", "paper train pool (80% of the official train split, seed 42)", "Food-101 64 px"),
    "food101-originals": ("all", "300 full-size originals", "Food-101 full size (300 originals)"),
    "cifar10-jpg": ("all", "official train split", "CIFAR-10 32 px"),
    "camvid-240x180": ("all", "official train split", "CamVid 240x180 (PNG)"),
}
SLUGS = {"food101-64px": "64", "food101-originals": "full", "cifar10-jpg": "cifar",
         "camvid-240x180": "camvid"}  # glue key parts
PNG_DATASETS = ("camvid-240x180",)  # PNG originals: stored PNG and lossless JPEG XL, no JPEG accounting
JPEG_DATASETS = tuple(ds for ds in DATASETS if ds not in PNG_DATASETS)
DISTANCES = [1, 2, 4, 7, 10, 15]  # the paper's grid
CAPACITY_DISTANCES = [2, 4, 6, 8, 10]  # the blog's bars (d = 0 is the original format)
EFFORT = codecs.DEFAULT_EFFORT  # 7, the paper's
POOL_SEED = 42  # data.paper_split's seed: the paper's 80/20 split of the Food-101 train split

# The Granica blog, Part 2 (5 Dec 2023): "about 5.6x" as many Food-101 images fit at d = 10 as
# original JPEGs (9,985 of them) in its budget. Source: ../shared/reference/paper-facts.md §2.2
# (law.py holds the paper's constants; the blog's are not the paper's, so they live here).
BLOG_RATIO = 5.6
BLOG_BASELINE = 9985
BLOG_BUDGET_BYTES = 0.5e9  # "approximately 0.5 GB" (the exact value is in a footnote we could not retrieve)
# Its training result (a secondary summary of the blog, not the page itself; paper-facts.md §2.2 [B]): an
# ImageNet-21k ViT fine-tuned with the same steps at every distance gains "more than 10 points" of
# accuracy at d = 10 over the original JPEGs. A lower bound, not a measurement we can recompute.
BLOG_GAIN_POINTS = 10.0

SIZE_PARAMS = {
    "datasets": list(DATASETS), "distances_by_dataset": {
        "food101-64px": sorted(set(DISTANCES + CAPACITY_DISTANCES)),
        "food101-originals": sorted(set(DISTANCES + CAPACITY_DISTANCES)),
        "cifar10-jpg": DISTANCES, "camvid-240x180": DISTANCES},
    "effort": EFFORT, "pool_seed": POOL_SEED,
}
FULL_LIMITS = {ds: None for ds in DATASETS}
SMOKE_LIMITS = {"food101-64px": 400, "food101-originals": 12, "cifar10-jpg": 400, "camvid-240x180": 12}
FULL_SIZES = {**SIZE_PARAMS, "limit": FULL_LIMITS}
SMOKE_SIZES = {**SIZE_PARAMS, "limit": SMOKE_LIMITS}

RD_SETTINGS_FULL = {"jxl": [0.5, 1, 2, 4, 7, 10, 15, 25], "jpeg": [10, 20, 30, 50, 70, 85, 95],
                    "webp": [5, 15, 30, 50, 70, 85, 95], "avif": [10, 25, 40, 55, 70, 85]}
RD_SETTINGS_SMOKE = {"jxl": [1, 4, 15], "jpeg": [30, 70, 90], "webp": [30, 70], "avif": [30, 60]}
RD_FULL = {"sets": {"food101-64px": 200, "food101-originals": 15}, "settings": RD_SETTINGS_FULL,
           "effort": EFFORT, "seed": 0}
RD_SMOKE = {"sets": {"food101-64px": 24, "food101-originals": 2}, "settings": RD_SETTINGS_SMOKE,
            "effort": EFFORT, "seed": 0}
RD_LABELS = {"food101-64px": "Food-101 64 px", "food101-originals": "Food-101 full size"}
CODEC_LABELS = {"jxl": "JPEG XL", "jpeg": "JPEG", "webp": "WebP", "avif": "AVIF"}
AT_RATES = {"food101-64px": ("psnr", 1.0, 1), "food101-originals": ("ssimulacra2", 0.3, 1)}  # metric, bpp, digits

CAP_FULL = {"limit": {ds: FULL_LIMITS[ds] for ds in JPEG_DATASETS}, "capacity_distances": CAPACITY_DISTANCES,
            "effort": EFFORT, "order_seed": 0}  # the blog's JPEG datasets
CAP_SMOKE = {**CAP_FULL, "limit": {ds: SMOKE_LIMITS[ds] for ds in JPEG_DATASETS}}

ORIGINAL_SCHEMES = ("stored-jpeg", "jxl-transcode", "jpeg-headerless")  # three accountings of d = 0
PNG_SCHEMES = ("stored-png", "jxl-lossless")  # a PNG original, as stored and in the original format
SOURCE_TEXT = {"committed": "committed full-size tables", "full": "a full-size run",
               "smoke": "a smoke-size run (toy numbers)",
               "smoke-fallback": "smoke-size placeholders (the full tables are pending)",
               "partial": "a partial full-size run"}


def image_pool(dataset: str, limit=None) -> data.ImageSet:
    """The images whose bytes we count (``data.pool``; ``limit``: the nested subset of a smoke run)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r} for the compression tables; choose one of {list(DATASETS)}")
    return data.pool(dataset, DATASETS[dataset][0], None, limit)


def _check_params(params: Mapping, keys: Sequence[str], table: str) -> None:
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"parameters of {table} lack {missing}; start from its FULL or SMOKE dict")
    if "pool_seed" in params and params["pool_seed"] != POOL_SEED:
        raise ValueError(f"pool_seed={params['pool_seed']} but data.pool draws the paper pool with seed "
                         f"{POOL_SEED}; keep pool_seed={POOL_SEED}")
    for dataset in params.get("datasets", []):
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r} in {table}; choose from {list(DATASETS)}")


# ---------------------------------------------------------------------------------------------
# The four tables


def compute_sizes(params: dict, *, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per (dataset, scheme, distance): mean, median, std and total bytes, pixels, bits per pixel."""
    _check_params(params, ("datasets", "distances_by_dataset", "effort", "limit"), "compression_sizes")
    rows = []
    for dataset in params["datasets"]:
        images = image_pool(dataset, params["limit"][dataset])
        shapes = np.asarray([codecs.stored_shape(b) for b in images.encoded])
        pixels = shapes[:, 0] * shapes[:, 1]

        def row(scheme, distance, sizes):
            sizes = np.asarray(sizes, dtype=np.float64)
            rows.append({"dataset": dataset, "split": images.split, "scheme": scheme, "distance": distance,
                         "n_images": len(sizes), "mean_bytes": sizes.mean(), "median_bytes": np.median(sizes),
                         "std_bytes": sizes.std(), "total_bytes": sizes.sum(),
                         "mean_pixels": pixels.mean(), "bpp": float(np.mean(8 * sizes / pixels))})

        if dataset in PNG_DATASETS:  # the original format: lossless JPEG XL (the experiments' "original")
            row("stored-png", np.nan, images.stored_bytes)
            row("jxl-lossless", np.nan, store.compress(images, "jxl", 0.0, effort=codecs.DEFAULT_EFFORT,
                                                       workers=workers, progress=progress).sizes)
        else:
            row("stored-jpeg", np.nan, images.stored_bytes)
            row("jxl-transcode", np.nan, store.compress(images, "jxl-transcode", workers=workers,
                                                        progress=progress).sizes)
            row("jpeg-headerless", np.nan, codecs.jpeg_header_accounting(images.encoded).amortized)
        for d in params["distances_by_dataset"][dataset]:
            entry = store.compress(images, "jxl", float(d), effort=params["effort"], workers=workers,
                                   progress=progress)
            row("jxl", float(d), entry.sizes)
    return pd.DataFrame(rows)


def compute_headers(params: dict, *, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per JPEG dataset: the stored JPEG's bytes split into shared header and the file's own bytes."""
    _check_params(params, ("datasets", "limit"), "compression_headers")
    rows = []
    for dataset in [ds for ds in params["datasets"] if ds not in PNG_DATASETS]:
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


def compute_rd(params: dict, *, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Mean rate and quality per (dataset, codec, setting) on a nested subset of each pool.

    SSIMULACRA2 only on the full-size set: it needs >= 256 px for its six scales.
    """
    _check_params(params, ("sets", "settings", "effort", "seed"), "compression_rd")
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


def compute_capacity(params: dict, *, workers: int | None = None, progress: bool = False) -> pd.DataFrame:
    """How many images fit in the budget "whole 64 px pool at d = 10", for each distance and accounting.

    64 px: the longest prefix of a class-balanced random order whose real per-image bytes fit
    (``budget.largest_prefix``). Full size (300 originals only): budget / mean bytes per image, with
    the budget = pool size x mean full-size bytes at d = 10, capped at the pool size.
    """
    _check_params(params, ("limit", "capacity_distances", "effort", "order_seed"), "compression_capacity")
    if 10 not in params["capacity_distances"]:
        raise ValueError("capacity_distances must include 10: the budget is the whole pool at d = 10")
    rows = []
    images = image_pool("food101-64px", params["limit"]["food101-64px"])
    order = data.nested_order(images.labels, seed=params["order_seed"])
    compress = partial(store.compress, workers=workers, progress=progress)
    budget_bytes = compress(images, "jxl", 10.0, effort=params["effort"]).total_bytes
    header = codecs.jpeg_header_accounting(images.encoded)
    schemes = [("stored-jpeg", 0.0, images.stored_bytes, 0),
               ("jxl-transcode", 0.0, compress(images, "jxl-transcode").sizes, 0),
               ("jpeg-headerless", 0.0, header.per_image, header.dictionary_bytes)]
    for d in params["capacity_distances"]:
        schemes.append(("jxl", float(d), compress(images, "jxl", float(d), effort=params["effort"]).sizes, 0))
    for scheme, d, per_image, fixed in schemes:
        fit = budget.largest_prefix(np.asarray(per_image)[order], budget_bytes - fixed)
        rows.append({"dataset": "food101-64px", "scheme": scheme, "distance": d, "budget_bytes": budget_bytes,
                     "n_fit": fit.n, "pool_size": len(images), "pool_exhausted": fit.pool_exhausted,
                     "count": "prefix of a class-balanced random order, real per-image bytes"})
    originals = image_pool("food101-originals", params["limit"]["food101-originals"])
    pool_n = len(images)
    means = {("stored-jpeg", 0.0): originals.stored_bytes.mean(),
             ("jxl-transcode", 0.0): compress(originals, "jxl-transcode").mean_bytes,
             ("jpeg-headerless", 0.0): codecs.jpeg_header_accounting(originals.encoded).amortized.mean()}
    for d in params["capacity_distances"]:
        means[("jxl", float(d))] = compress(originals, "jxl", float(d), effort=params["effort"]).mean_bytes
    budget_full = pool_n * means[("jxl", 10.0)]
    for (scheme, d), mean in means.items():
        n = min(pool_n, int(math.floor(budget_full / mean + 1e-9)))
        rows.append({"dataset": "food101-originals", "scheme": scheme, "distance": d, "budget_bytes": budget_full,
                     "n_fit": n, "pool_size": pool_n, "pool_exhausted": n >= pool_n,
                     "count": f"budget / mean bytes of {len(originals)} originals, capped at the pool"})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class TableSpec:
    """One committed table: its full and smoke parameters and the function that computes it."""

    full: dict
    smoke: dict
    compute: Callable[..., pd.DataFrame]


TABLES: dict[str, TableSpec] = {
    "compression_sizes": TableSpec(FULL_SIZES, SMOKE_SIZES, compute_sizes),
    "compression_headers": TableSpec(FULL_SIZES, SMOKE_SIZES, compute_headers),
    "compression_rd": TableSpec(RD_FULL, RD_SMOKE, compute_rd),
    "compression_capacity": TableSpec(CAP_FULL, CAP_SMOKE, compute_capacity),
}


def table_name(name: str) -> str:
    """``sizes`` or ``compression_sizes`` -> ``compression_sizes``; anything else is a ValueError."""
    full = name if name.startswith("compression_") else f"compression_{name}"
    if full not in TABLES:
        short = [t.removeprefix("compression_") for t in TABLES]
        raise ValueError(f"unknown compression table {name!r}; choose from {short} (or their compression_ names)")
    return full


def load_table(name: str, profile: str, *, workers: int | None = None, progress: bool = False,
               results_dir: Path | None = None) -> tables.ProfileTable:
    """The table as the profile asks (``tables.profile_table``): publish loads the committed one."""
    name = table_name(name)
    spec = TABLES[name]
    return tables.profile_table(name, profile=profile, full_params=spec.full, smoke_params=spec.smoke,
                                compute=partial(spec.compute, workers=workers, progress=progress),
                                results_dir=results_dir)


def smoke_results_dir() -> Path:
    """Where a smoke run from the command line writes (never ``results/``)."""
    return paths.cache_dir() / "smoke-results"


def run_tables(names: Sequence[str] | None, profile: str, *, workers: int | None = None,
               progress: bool = True) -> list[Path]:
    """Compute tables and write them: ``full`` to ``results/`` (commit them), ``smoke`` to the cache.

    ``names``: short (``sizes``) or full (``compression_sizes``) names; empty or None means all
    four. Returns the CSV paths written. Names, profile and workers are checked before any work.
    """
    chosen = [table_name(n) for n in (names or TABLES)]
    if profile not in ("full", "smoke"):
        raise ValueError(f"profile must be 'full' or 'smoke' for a command-line run, got {profile!r} "
                         "(publish only loads committed tables: it is the notebook's default)")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    written = []
    for name in dict.fromkeys(chosen):
        spec = TABLES[name]
        compute = partial(spec.compute, workers=workers, progress=progress)
        if profile == "full":
            tables.profile_table(name, profile="full", full_params=spec.full, smoke_params=spec.smoke,
                                 compute=compute)
            written.append(tables.table_paths(name)[0])
        else:
            start = time.perf_counter()
            frame = compute(dict(spec.smoke))
            tables.write_table(name, frame, spec.smoke, time.perf_counter() - start, smoke_results_dir())
            written.append(tables.table_paths(name, smoke_results_dir())[0])
    return written


TABLES_EXAMPLES = """examples:
  storage-scaling tables --profile smoke               all four at toy size (about a minute)
  storage-scaling tables sizes capacity --profile full  two tables at full size into results/
"""


def add_tables_parser(subparsers) -> argparse.ArgumentParser:
    """The ``tables`` subcommand of ``storage-scaling``."""
    parser = subparsers.add_parser(
        "tables", help="compute the compression tables of chapter 1 (sizes, headers, rd, capacity)",
        description="Compute the compression tables of chapter 1 (storage_scaling.compress.compression_tables).\n"
                    "--profile full writes results/<name>.csv and its .json provenance (all four: about\n"
                    "24 min on 2 cores from an empty cache; commit them). --profile smoke computes toy\n"
                    "sizes into <cache>/smoke-results/ and never touches results/.",
        epilog=TABLES_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    short = ", ".join(t.removeprefix("compression_") for t in TABLES)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"tables to compute (default: all): {short}")
    parser.add_argument("--profile", choices=("full", "smoke"), required=True,
                        help="full: real size into results/; smoke: toy size into the cache")
    parser.add_argument("--workers", type=int, default=None, help="encoder processes (default: all cores)")
    parser.set_defaults(func=cmd_tables)
    return parser


def cmd_tables(args: argparse.Namespace) -> int:
    for path in run_tables(args.names, args.profile, workers=args.workers):
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------
# Reading the tables (everything the chapter quotes)


def mean_bytes(sizes: pd.DataFrame, dataset: str, scheme: str = "jxl", distance=None) -> float:
    """Mean bytes per image of one row of the sizes table (``distance`` for ``jxl`` rows)."""
    sel = sizes[(sizes.dataset == dataset) & (sizes.scheme == scheme)]
    if distance is not None:
        sel = sel[np.isclose(sel.distance, distance)]
    if sel.empty:
        raise ValueError(f"the sizes table has no row for {dataset!r}, {scheme!r}, distance {distance}")
    return float(sel.mean_bytes.iloc[0])


def _jxl_row(sizes: pd.DataFrame, dataset: str, distance: float) -> pd.Series:
    sel = sizes[(sizes.dataset == dataset) & (sizes.scheme == "jxl") & np.isclose(sizes.distance, distance)]
    return sel.iloc[0]


def paper_comparison(sizes: pd.DataFrame) -> pd.DataFrame:
    """Our mean bytes beside the paper's at each distance and for the original format (lossless
    JPEG XL: the transcode of a JPEG, the encode of a PNG; then the stored file). CamVid stands
    beside the paper's Cityscapes, its other PNG dataset (2048 x 1024 scenes, so bytes are far apart)."""
    paper, cityscapes = law.PAPER_SIZE_TABLES["food101"], law.PAPER_SIZE_TABLES["cityscapes"]
    originals = ["original (lossless JXL)", "original (stored file)"]

    def column(dataset):
        lossless, stored = ("jxl-lossless", "stored-png") if dataset in PNG_DATASETS else ("jxl-transcode",
                                                                                          "stored-jpeg")
        return ([mean_bytes(sizes, dataset, "jxl", d) for d in DISTANCES]
                + [mean_bytes(sizes, dataset, lossless), mean_bytes(sizes, dataset, stored)])

    frame = pd.DataFrame({
        "distance": [str(d) for d in DISTANCES] + originals,
        "paper, full size (B)": [paper[d] for d in DISTANCES] + [law.PAPER_ORIGINAL_BYTES["food101"], np.nan],
        "ours, full size (B)": column("food101-originals"),
        "ours, 64 px pool (B)": column("food101-64px"),
        "ours, CIFAR-10 (B)": column("cifar10-jpg"),
        "paper, Cityscapes (B)": [cityscapes[d] for d in DISTANCES] + [law.PAPER_ORIGINAL_BYTES["cityscapes"], np.nan],
        "ours, CamVid (B)": column("camvid-240x180"),
    })
    frame["full size / paper"] = frame["ours, full size (B)"] / frame["paper, full size (B)"]
    frame["64 px / paper"] = frame["ours, 64 px pool (B)"] / frame["paper, full size (B)"]
    return frame


def original_formats(sizes: pd.DataFrame, headers: pd.DataFrame) -> pd.DataFrame:
    """The original format three ways (stored JPEG, lossless transcode, JPEG without shared header)."""
    h = headers.set_index("dataset")
    rows = []
    for ds in JPEG_DATASETS:
        jpeg, transcode = mean_bytes(sizes, ds, "stored-jpeg"), mean_bytes(sizes, ds, "jxl-transcode")
        headerless = mean_bytes(sizes, ds, "jpeg-headerless")
        rows.append({"dataset": DATASETS[ds][2], "images": int(h.loc[ds, "n_images"]),
                     "stored JPEG (B)": jpeg, "lossless JXL transcode (B)": transcode,
                     "JPEG without shared header (B)": headerless,
                     "shared header per file (B)": h.loc[ds, "shared_per_image_mean"],
                     "header share of file": h.loc[ds, "shared_share"],
                     "transcode / stored": transcode / jpeg, "headerless / stored": headerless / jpeg})
    return pd.DataFrame(rows)


PAPER_FIT = "paper (Food-101 full size)"


@dataclass(frozen=True)
class SizeFit:
    """The paper's curve L(d) = 1/(a d + b) fitted to one dataset's six grid points."""

    label: str
    curve: law.SizeCurve
    max_rel_error: float  # over the fitted points


def _fit(label: str, distance, mean, source: str) -> SizeFit:
    d, L = np.asarray(distance, dtype=float), np.asarray(mean, dtype=float)
    curve = law.fit_size_curve(d, L, source=source)
    return SizeFit(label, curve, float(np.max(np.abs(curve.size(d) / L - 1))))


def size_fits(sizes: pd.DataFrame) -> dict[str, SizeFit]:
    """``law.fit_size_curve`` on each dataset's paper-grid points, and on the paper's own table."""
    fits = {}
    for ds in DATASETS:
        pts = sizes[(sizes.dataset == ds) & (sizes.scheme == "jxl") & sizes.distance.isin(DISTANCES)]
        fits[ds] = _fit(DATASETS[ds][2], pts.distance, pts.mean_bytes, f"{ds} compression_sizes")
    paper = law.PAPER_SIZE_TABLES["food101"]
    fits[PAPER_FIT] = _fit(PAPER_FIT, list(paper), list(paper.values()), law.PAPER_SOURCE)
    return fits


def fit_frame(fits: Mapping[str, SizeFit]) -> pd.DataFrame:
    """The fitted a, b, the worst relative error and L(0) = 1/b, one row per curve."""
    return pd.DataFrame([{"dataset": f.label, "a (1/B per unit d)": f.curve.a, "b (1/B)": f.curve.b,
                          "max relative error": f.max_rel_error, "L(0) = 1/b (B)": 1 / f.curve.b}
                         for f in fits.values()])


def rd_sets(rd: pd.DataFrame) -> dict[str, int]:
    """Images per dataset in the rate-distortion table."""
    return {ds: int(rd[rd.dataset == ds].n_images.max()) for ds in rd.dataset.unique()}


def rd_crossovers(rd: pd.DataFrame) -> pd.DataFrame:
    """Rates where another codec and JPEG XL swap places, per dataset and metric (``quality.crossovers``)."""
    found = []
    for ds in rd.dataset.unique():
        summary = rd[rd.dataset == ds]
        for metric in quality.METRICS:
            if metric in summary and summary[metric].notna().any():
                cross = quality.crossovers(summary, metric, reference="jxl")
                cross.insert(0, "dataset", ds)
                found.append(cross)
    return pd.concat(found, ignore_index=True)


def describe_crossovers(cross: pd.DataFrame, dataset: str) -> str:
    """The crossovers of one dataset in words (for the chapter)."""
    sub = cross[cross.dataset == dataset]
    if sub.empty:
        return "no crossover with JPEG XL in the measured range"
    return "; ".join(f"{CODEC_LABELS[r.other]} on {r.metric.upper()} at {r.bpp:.2f} bpp "
                     f"({CODEC_LABELS[r.better_above]} better above)" for r in sub.itertuples())


def describe_at(rd: pd.DataFrame, dataset: str, metric: str, bpp: float, digits: int) -> str:
    """Every codec's ``metric`` at one rate, best first (``quality.value_at``), in words."""
    at = quality.value_at(rd[rd.dataset == dataset], metric, bpp)
    if at.empty:
        return "no codec was measured at this rate"
    return ", ".join(f"{CODEC_LABELS[c]} {v:.{digits}f}" for c, v in at.items())


def at_rates(rd: pd.DataFrame) -> dict[str, str]:
    """:func:`describe_at` at the rates the chapter quotes (``AT_RATES``)."""
    return {ds: describe_at(rd, ds, *spec) for ds, spec in AT_RATES.items()}


def n_fit(cap: pd.DataFrame, dataset: str, scheme: str, distance: float = 0.0) -> int:
    """Images that fit in the capacity budget for one dataset, scheme and distance."""
    sel = cap[(cap.dataset == dataset) & (cap.scheme == scheme) & np.isclose(cap.distance, distance)]
    if sel.empty:
        raise ValueError(f"the capacity table has no row for {dataset!r}, {scheme!r}, distance {distance}")
    return int(sel.n_fit.iloc[0])


def capacity_bars(cap: pd.DataFrame, dataset: str) -> list[tuple[str, int]]:
    """(bar label, images that fit) in the blog's order: d = 0 three ways, then each distance."""
    labels = {"stored-jpeg": "0: stored\nJPEG", "jxl-transcode": "0: JXL\ntranscode",
              "jpeg-headerless": "0: JPEG,\nno shared\nheader"}
    return ([(labels[s], n_fit(cap, dataset, s)) for s in ORIGINAL_SCHEMES]
            + [(str(d), n_fit(cap, dataset, "jxl", d)) for d in CAPACITY_DISTANCES])


def versions_text() -> str:
    v = codecs.versions()
    return f"{v['jxl']}, {v['jpeg']}, {v['webp']}, {v['avif']} (imagecodecs {v['imagecodecs']})"


def chapter_numbers(loaded: Mapping[str, tables.ProfileTable]) -> dict[str, float | str]:
    """Every number chapters 1 and 6 quote, keyed by its glue key (``comp_...``).

    ``loaded`` maps the four table names to their ``ProfileTable`` (:func:`load_table`).
    """
    sizes, headers = loaded["compression_sizes"].frame, loaded["compression_headers"].frame
    rd, cap = loaded["compression_rd"].frame, loaded["compression_capacity"].frame
    fits = size_fits(sizes)
    paper = law.PAPER_SIZE_TABLES["food101"]
    L = partial(mean_bytes, sizes)
    out: dict[str, float | str] = {}
    hrows = headers.set_index("dataset")
    for ds, s in SLUGS.items():
        for d in DISTANCES:
            out[f"comp_L{s}_d{d}"] = L(ds, "jxl", d)
        out[f"comp_fit{s}_err"] = fits[ds].max_rel_error
        out[f"comp_fit{s}_a"] = fits[ds].curve.a
        out[f"comp_fit{s}_b"] = fits[ds].curve.b
        if ds in PNG_DATASETS:
            out[f"comp_L{s}_png"] = L(ds, "stored-png")
            out[f"comp_L{s}_lossless"] = L(ds, "jxl-lossless")
            out[f"comp_lossless{s}_ratio"] = L(ds, "jxl-lossless") / L(ds, "stored-png")
            out[f"comp_n{s}"] = float(sizes[(sizes.dataset == ds) & (sizes.scheme == "stored-png")].n_images.iloc[0])
            out[f"comp_bpp{s}_lossless"] = float(sizes[(sizes.dataset == ds) & (sizes.scheme == "jxl-lossless")].bpp.iloc[0])
            continue
        out[f"comp_L{s}_jpeg"] = L(ds, "stored-jpeg")
        out[f"comp_L{s}_transcode"] = L(ds, "jxl-transcode")
        out[f"comp_L{s}_headerless"] = L(ds, "jpeg-headerless")
        h = hrows.loc[ds]
        out[f"comp_header{s}_bytes"] = float(h.shared_per_image_mean)
        out[f"comp_header{s}_share"] = float(h.shared_share)
        out[f"comp_header{s}_prefix"] = float(h.common_prefix_bytes)
        out[f"comp_header{s}_templates"] = float(h.n_templates)
        out[f"comp_n{s}"] = float(h.n_images)
        out[f"comp_transcode{s}_ratio"] = L(ds, "jxl-transcode") / L(ds, "stored-jpeg")
        out[f"comp_headerless{s}_ratio"] = L(ds, "jpeg-headerless") / L(ds, "stored-jpeg")
    full_ratios = []
    for d in DISTANCES:
        out[f"comp_ratio_full_d{d}"] = L("food101-originals", "jxl", d) / paper[d]
        out[f"comp_ratio64_d{d}"] = L("food101-64px", "jxl", d) / paper[d]
        full_ratios.append(out[f"comp_ratio_full_d{d}"])
    out["comp_ratio_full_orig"] = L("food101-originals", "jxl-transcode") / law.PAPER_ORIGINAL_BYTES["food101"]
    out["comp_paper_fit_err"] = fits[PAPER_FIT].max_rel_error
    out["comp_ratio_full_min"], out["comp_ratio_full_max"] = min(full_ratios), max(full_ratios)
    stored_full = sizes[(sizes.dataset == "food101-originals") & (sizes.scheme == "stored-jpeg")]
    out["comp_pixel_ratio"] = float(stored_full.mean_pixels.iloc[0] / (64 * 64))
    out["comp_size_ratio_d10"] = L("food101-originals", "jxl", 10) / L("food101-64px", "jxl", 10)
    out["comp_size_ratio_d1"] = L("food101-originals", "jxl", 1) / L("food101-64px", "jxl", 1)
    out["comp_bpp64_d10"] = float(_jxl_row(sizes, "food101-64px", 10).bpp)
    out["comp_bppfull_d10"] = float(_jxl_row(sizes, "food101-originals", 10).bpp)
    out["comp_header64_bpp"] = float(hrows.loc["food101-64px", "shared_per_image_mean"]) * 8 / (64 * 64)
    stored_64 = sizes[(sizes.dataset == "food101-64px") & (sizes.scheme == "stored-jpeg")]
    out["comp_npool"] = float(int(stored_64.n_images.iloc[0]))
    out["comp_paper_pool"] = float(law.PAPER_POOL_SIZE["food101"])

    n = partial(n_fit, cap)
    out["comp_cap_ratio64"] = n("food101-64px", "jxl", 10.0) / n("food101-64px", "stored-jpeg")
    out["comp_cap_ratio_full"] = n("food101-originals", "jxl", 10.0) / n("food101-originals", "stored-jpeg")
    out["comp_cap_ratio64_transcode"] = n("food101-64px", "jxl", 10.0) / n("food101-64px", "jxl-transcode")
    out["comp_cap_ratio64_headerless"] = n("food101-64px", "jxl", 10.0) / n("food101-64px", "jpeg-headerless")
    out["comp_cap_ratio_full_transcode"] = (n("food101-originals", "jxl", 10.0)
                                            / n("food101-originals", "jxl-transcode"))
    out["comp_cap_n64_jpeg"] = float(n("food101-64px", "stored-jpeg"))
    out["comp_cap_nfull_jpeg"] = float(n("food101-originals", "stored-jpeg"))
    for ds, s in (("food101-64px", "64"), ("food101-originals", "full")):
        out[f"comp_cap_budget{s}_mb"] = float(cap[cap.dataset == ds].budget_bytes.iloc[0]) / 1e6
    out["comp_blog_ratio"] = BLOG_RATIO

    sets, cross, at = rd_sets(rd), rd_crossovers(rd), at_rates(rd)
    out["comp_rd_n64"] = float(sets.get("food101-64px", 0))
    out["comp_rd_nfull"] = float(sets.get("food101-originals", 0))
    out["comp_at64"], out["comp_atfull"] = at["food101-64px"], at["food101-originals"]
    rd64 = rd[rd.dataset == "food101-64px"]
    out["comp_jpeg64_min_bpp"] = float(rd64[rd64.codec == "jpeg"].bpp.min())
    out["comp_jxl64_min_bpp"] = float(rd64[rd64.codec == "jxl"].bpp.min())
    out["comp_cross64"] = describe_crossovers(cross, "food101-64px")
    out["comp_crossfull"] = describe_crossovers(cross, "food101-originals")
    out["comp_sizes_minutes"] = float(loaded["compression_sizes"].meta.get("seconds", float("nan"))) / 60
    out["comp_full_minutes"] = sum(float(t.meta.get("seconds", float("nan"))) for t in loaded.values()) / 60
    out["comp_source"] = SOURCE_TEXT[loaded["compression_sizes"].source]
    return out


# ---------------------------------------------------------------------------------------------
# The image strip: one photo at every distance


@dataclass(frozen=True)
class StripPanel:
    title: str  # "stored JPEG" or "d = 4"
    full: np.ndarray  # centre crop of the full-size image (CROP px)
    full_bytes: int  # bytes of the whole full-size image
    small: np.ndarray  # the 64 px image
    small_bytes: int


@dataclass(frozen=True)
class PhotoStrip:
    photo_id: str
    full_shape: tuple[int, int]  # (height, width) of the whole full-size image
    panels: list[StripPanel]


CROP = 192  # px: the centre of the full-size photo shown in the strip


def photo_strip(distances=DISTANCES, effort: int = EFFORT) -> PhotoStrip:
    """The first waffles photo (the originals' last class), full size and 64 px, stored and at each distance."""
    full_set = data.load_cached("food101-originals", "sample")
    small_set = data.load_cached("food101-64px", "train")
    pick = int(np.flatnonzero(full_set.labels == full_set.labels[-1])[0])
    photo_id = full_set.ids[pick]
    matches = np.flatnonzero(small_set.ids == photo_id)
    if matches.size == 0:
        raise ValueError(f"photo {photo_id!r} of food101-originals is not in food101-64px train")
    small_k = int(matches[0])
    full_px = codecs.decode_source(full_set.encoded[pick], photo_id, full_set.dataset)
    small_px = codecs.decode_source(small_set.encoded[small_k], photo_id, small_set.dataset)
    h, w = full_px.shape[:2]
    crop = (slice(h // 2 - CROP // 2, h // 2 + CROP // 2), slice(w // 2 - CROP // 2, w // 2 + CROP // 2))
    panels = [StripPanel("stored JPEG", full_px[crop], len(full_set.encoded[pick]), small_px,
                         len(small_set.encoded[small_k]))]
    for d in distances:
        full_bits = codecs.encode(full_px, "jxl", float(d), effort=effort)
        small_bits = codecs.encode(small_px, "jxl", float(d), effort=effort)
        panels.append(StripPanel(f"d = {d}", codecs.decode(full_bits)[crop], len(full_bits),
                                 codecs.decode(small_bits), len(small_bits)))
    return PhotoStrip(str(photo_id), (h, w), panels)
