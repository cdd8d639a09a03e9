"""``storage-scaling plan IMAGES --budget 10GB``: how hard to compress *your* images for a budget.

1. A seeded sample of a few hundred of the images is encoded with the book's codec settings
   (JPEG XL, effort 7, one thread per image) at a grid of distances: the mean bytes per image
   L(d), with a bootstrap interval over the sampled images (:func:`measure`).
2. A law (:mod:`.laws`: your own from ``storage-scaling fit --save-law`` or ``pilot``, a committed
   fit of the book, or the paper's Food-101 constants, borrowed) gives the storage-optimal n and
   L at the budget, n capped at the images there are (:func:`make_plan`).
3. The distance that gives that L on your images, how many images fit at the original format
   and at the optimum, and the predicted error of both, with intervals. When L* lies below what
   the largest distance measured gives, the plan keeps only the images that fit at that distance.

A law only holds where it was fitted: when the budget, the optimum or your images' L(d) lie
outside its fitted range, the plan says so and stops, unless ``--extrapolate`` is given. A law used
far outside its range can predict errors above 1: they are shown clipped at 1, and said.

Outputs: printed lines, and in ``--report DIR`` a Markdown report, a PNG of predicted error against
storage for the schemes, and ``plan.json`` (machine-readable). Bad input is one line before any
work; unreadable files are skipped, counted and listed, never fatal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import atomic, provenance
from ..compress import budget as budget_mod
from ..compress import codecs
from . import cluster, images as images_mod, laws
from .units import format_count, format_size, parse_count, parse_size

DEFAULT_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0)  # inside codecs.STUDY_DISTANCES
DEFAULT_SAMPLE = 300
CHUNK = 4  # images per task: a full-size photo at 10 distances is a few seconds of work
PRECHECK_IMAGES = 4
LEVEL = 0.95

EXAMPLES = """examples:
  storage-scaling plan ~/photos --budget 10GB                        # the paper's Food-101 law, borrowed
  storage-scaling plan ~/photos --budget 500MB --law my_law.json     # your law (fit --save-law, or pilot)
  storage-scaling plan train.parquet --budget 1.5GiB --law book:cifar10-jpg/probe --extrapolate
  storage-scaling plan files.txt --budget 2e9 --workers 8            # a list of paths, a local Dask cluster
"""


# ---------------------------------------------------------------------------------------------
# Measuring L(d) on a sample (runs in workers)


@dataclass(frozen=True)
class SizeTask:
    ids: list
    data: list  # stored bytes (or images.Unreadable)
    grid: list
    effort: int
    limits: images_mod.Limits = images_mod.Limits()


def measure_chunk(task: SizeTask) -> list[dict]:
    """Each image's JPEG XL bytes at every distance of the grid (and the seconds it took), or why
    it is unusable."""
    out = []
    for image_id, data in zip(task.ids, task.data):
        row = {"id": image_id, "source_bytes": images_mod.stored_bytes(data)}
        try:
            pixels, notes = images_mod.to_rgb8(data, task.limits)
        except images_mod.Unusable as exc:
            out.append({**row, "ok": False, "reason": str(exc)})
            continue
        start = time.perf_counter()
        sizes = [len(codecs.encode(pixels, "jxl", float(d), effort=task.effort)) for d in task.grid]
        out.append({**row, "ok": True, "sizes": sizes, "notes": list(notes), "seconds": time.perf_counter() - start,
                    "pixels": int(pixels.shape[0] * pixels.shape[1])})
    return out


@dataclass
class SizeSample:
    """The sampled images' sizes: ``sizes[i, j]`` bytes of usable image ``ids[i]`` at ``grid[j]``."""

    ids: list
    sizes: np.ndarray  # (m, D) int64
    grid: np.ndarray
    original: np.ndarray  # (m,) stored bytes of the same images
    pixels: np.ndarray  # (m,) pixels per image
    listed: int  # candidates in IMAGES
    sampled: int  # candidates read (usable or not)
    skipped: list = field(default_factory=list)  # (id, reason)
    notes: Counter = field(default_factory=Counter)  # conversion note -> images
    seconds: np.ndarray | None = None  # (m,) seconds to encode each image at every distance of the grid

    @property
    def usable_fraction(self) -> float:
        return len(self.ids) / self.sampled if self.sampled else 0.0

    def curve(self, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> dict:
        """Mean bytes per image at each distance (and of the originals), with percentile
        intervals from resampling the sampled images."""
        rng = np.random.default_rng(seed)
        m = len(self.ids)
        idx = rng.integers(0, m, size=(n_boot, m))
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        means = self.sizes[idx].mean(axis=1)  # (n_boot, D)
        orig = self.original[idx].mean(axis=1)
        return {"distance": self.grid.tolist(), "mean": self.sizes.mean(0).tolist(),
                "lo": np.quantile(means, lo_q, axis=0).tolist(), "hi": np.quantile(means, hi_q, axis=0).tolist(),
                "original_mean": float(self.original.mean()),
                "original_lo": float(np.quantile(orig, lo_q)), "original_hi": float(np.quantile(orig, hi_q))}

    def distance_for(self, L: float, rows: np.ndarray | None = None) -> tuple[float, str]:
        """The distance at which the (resampled) images average ``L`` bytes, and a note when L
        lies beyond the grid (then the grid's end is returned)."""
        sizes = self.sizes if rows is None else self.sizes[rows]
        mean = sizes.mean(0)
        if L >= mean[0]:
            return float(self.grid[0]), "at or below the smallest distance measured"
        if L < mean[-1]:
            return float(self.grid[-1]), "beyond the largest distance measured"
        return float(budget_mod.distance_for_budget(sizes, self.grid, L * len(sizes))), ""

    def distance_interval(self, L_lo: float, L_hi: float, n_boot: int = 200, seed: int = 0,
                          level: float = LEVEL) -> tuple[float, float]:
        """Distances for the ends of an L interval, widened by the sampling of the images."""
        rng = np.random.default_rng(seed + 1)
        m = len(self.ids)
        lows, highs = [], []
        for _ in range(n_boot):
            rows = rng.integers(0, m, size=m)
            highs.append(self.distance_for(L_lo, rows)[0])  # fewer bytes: larger distance
            lows.append(self.distance_for(L_hi, rows)[0])
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        return float(np.quantile(lows, lo_q)), float(np.quantile(highs, hi_q))


def sample_indices(n: int, sample: int, seed: int) -> np.ndarray:
    """A seeded sample of ``sample`` of ``n`` candidates (all of them when there are fewer)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(sample, n), replace=False))


def check_grid(grid) -> np.ndarray:
    grid = np.asarray(sorted(float(d) for d in grid), dtype=np.float64)
    if len(grid) < 2 or len(np.unique(grid)) != len(grid):
        raise ValueError(f"--distances needs at least two different distances, got {list(grid)}")
    lo, hi = codecs.DISTANCE_RANGE
    if grid[0] <= 0 or grid[-1] > hi:
        raise ValueError(f"--distances must lie in (0, {hi:g}] (Butteraugli distances; 0 is lossless), "
                         f"got {list(grid)}")
    return grid


def _tasks(images, indices, grid, effort, limits):
    for k in range(0, len(indices), CHUNK):
        part = [images.items[i] for i in indices[k:k + CHUNK]]
        yield SizeTask([it.id for it in part], images.read_many(part), list(map(float, grid)), effort, limits)


def precheck_budget(images, indices, budget: float, d_max: float, effort: int,
                    limits: images_mod.Limits | None = None) -> None:
    """Refuse, from a handful of images encoded at the largest distance, a budget smaller than
    one image (before the sample is encoded)."""
    sizes = []
    for it in (images.items[i] for i in indices):
        if len(sizes) >= PRECHECK_IMAGES:
            break
        try:
            pixels, _ = images_mod.to_rgb8(images.read(it), limits)
        except images_mod.Unusable:
            continue
        sizes.append(len(codecs.encode(pixels, "jxl", d_max, effort=effort)))
    if sizes and budget < min(sizes):
        raise ValueError(f"--budget {format_size(budget)} is smaller than one of these images at the largest "
                         f"distance d={d_max:g} (the smallest of {len(sizes)} tried takes {format_size(min(sizes))}); "
                         "choose a larger budget")


def measure(images, pool, *, sample: int = DEFAULT_SAMPLE, grid=DEFAULT_GRID, effort: int = codecs.DEFAULT_EFFORT,
            seed: int = 0, progress: bool = True, budget: float | None = None,
            limits: images_mod.Limits | None = None) -> SizeSample:
    """Encode a seeded sample of ``images`` at every distance of ``grid`` on ``pool`` (images over
    ``limits`` are skipped, as ``compress`` would skip them)."""
    from tqdm import tqdm

    grid = check_grid(grid)
    limits = limits or images_mod.Limits()
    indices = sample_indices(len(images), sample, seed)
    if budget is not None:
        precheck_budget(images, indices, budget, float(grid[-1]), effort, limits)
    rows: dict[int, list] = {}
    bar = tqdm(total=len(indices), desc=f"sizes at {len(grid)} distances", unit="img", disable=not progress)
    try:
        for k, part in pool.imap_unordered(measure_chunk, _tasks(images, indices, grid, effort, limits)):
            rows[k] = part
            bar.update(len(part))
    finally:
        bar.close()
    ordered = [r for k in sorted(rows) for r in rows[k]]
    ok = [r for r in ordered if r["ok"]]
    skipped = [(r["id"], r["reason"]) for r in ordered if not r["ok"]]
    if not ok:
        raise ValueError(f"none of the {len(ordered)} sampled files of {images.describe()} is a usable image "
                         f"(first: {skipped[0][0]}: {skipped[0][1]}); point at a folder of images")
    notes = Counter(n for r in ok for n in r["notes"])
    return SizeSample([r["id"] for r in ok], np.asarray([r["sizes"] for r in ok], dtype=np.int64), grid,
                      np.asarray([r["source_bytes"] for r in ok], dtype=np.int64),
                      np.asarray([r["pixels"] for r in ok], dtype=np.int64), len(images), len(ordered),
                      skipped, notes, np.asarray([r["seconds"] for r in ok], dtype=float))


# ---------------------------------------------------------------------------------------------
# The plan


@dataclass
class Plan:
    budget: float
    saved: laws.SavedLaw
    sample: SizeSample
    pool_size: int  # images the user has (usable), the cap on n
    prediction: laws.Prediction
    curve: dict
    distance: float
    distance_interval: tuple[float, float] | None
    distance_note: str
    n_optimum: int  # images kept at the optimum
    n_original: int  # images that fit at the original format
    L_original: float
    problems: list[str]
    extrapolated: bool
    sample_source: str = ""
    capped: dict | None = None  # L* below the bytes at the largest distance: {"n", "L", "distance", "error", ...}

    @property
    def bytes_per_image(self) -> float:
        """The bytes each kept image is planned to take: L*, or what the largest distance gives."""
        return self.capped["L"] if self.capped else self.prediction.L

    @property
    def original(self) -> dict:
        return self.prediction.points[0]

    def to_dict(self) -> dict:
        p = self.prediction
        return {
            "budget_bytes": self.budget,
            "images": {"source": self.sample_source, "listed": self.sample.listed, "sampled": self.sample.sampled,
                       "usable_in_sample": len(self.sample.ids), "pool_size": self.pool_size,
                       "skipped": [{"id": i, "reason": r} for i, r in self.sample.skipped],
                       "conversions": dict(self.sample.notes)},
            "law": {k: v for k, v in self.saved.to_dict().items() if k != "runs"},
            "size_curve": self.curve,
            "optimum": {"n": self.n_optimum, "n_law": p.n, "n_interval": p.n_interval, "L_bytes": p.L,
                        "L_interval": p.L_interval, "distance": self.distance,
                        "distance_interval": self.distance_interval, "distance_note": self.distance_note,
                        "error": p.error, "error_interval": p.error_interval, "pool_capped": p.pool_capped,
                        "bytes": self.n_optimum * self.bytes_per_image, "error_law": p.error_law,
                        "capped_at_largest_distance": self.capped},
            "original_format": {"n": self.n_original, "L_bytes": self.L_original, "error": self.original["error"],
                                "error_interval": self.original["interval"], "error_law": self.original["error_law"],
                                "bytes": self.n_original * self.L_original},
            "bootstrap_resamples": p.resamples, "errors_above_one": p.above_one,
            "outside_fitted_range": self.problems, "extrapolated": self.extrapolated,
            "provenance": provenance.stamp(),
        }


def range_problems(saved: laws.SavedLaw, budget: float, n: float, L: float,
                   L_span: tuple[float, float] | None = None) -> list[str]:
    """Where the plan leaves the law's fitted range (empty: inside)."""
    out = []
    s_lo, s_hi = saved.storage_range
    if not s_lo <= budget <= s_hi:
        out.append(f"the budget {format_size(budget)} lies outside the storage range the law was fitted on "
                   f"({format_size(s_lo)}-{format_size(s_hi)})")
    n_lo, n_hi = saved.n_range
    if not n_lo * 0.999 <= n <= n_hi * 1.001:
        out.append(f"the plan's n = {n:,.0f} images lies outside the law's fitted n ({n_lo:,.0f}-{n_hi:,.0f})")
    L_lo, L_hi = saved.L_range
    if not L_lo * 0.999 <= L <= L_hi * 1.001:
        out.append(f"the plan's L = {L:,.0f} bytes per image lies outside the law's fitted L "
                   f"({L_lo:,.0f}-{L_hi:,.0f} bytes)")
    if L_span is not None and (L_span[1] < L_lo or L_span[0] > L_hi):
        out.append(f"your images take {L_span[0]:,.0f}-{L_span[1]:,.0f} bytes each over the distances measured, "
                   f"and the law was fitted on {L_lo:,.0f}-{L_hi:,.0f} bytes per image: it says nothing about "
                   "images of this size")
    return out


def refuse(problems: list[str], saved: laws.SavedLaw) -> None:
    raise ValueError("OUTSIDE THE LAW'S FITTED RANGE: " + "; ".join(problems) + f". The law ({saved.describe()}) "
                     "holds only where it was fitted: fit your own with `storage-scaling pilot`, choose a budget "
                     "inside the range, or add --extrapolate to plan anyway")


def make_plan(sample: SizeSample, saved: laws.SavedLaw, budget: float, *, pool_size: int | None = None,
              extrapolate: bool = False, n_boot: int = 200, seed: int = 0) -> Plan:
    """Combine the size sample with the law at ``budget`` (see the module docstring)."""
    pool = int(pool_size) if pool_size else max(1, round(sample.listed * sample.usable_fraction))
    curve = sample.curve(seed=seed)
    if budget < curve["mean"][-1]:
        raise ValueError(f"--budget {format_size(budget)} is smaller than one image at the largest distance "
                         f"d={sample.grid[-1]:g} (about {format_size(curve['mean'][-1])} each); choose a larger budget")
    L_orig = float(sample.original.mean())
    n_orig = int(min(pool, math.floor(budget / L_orig)))
    alloc = saved.params.allocation([budget], n_max=pool).iloc[0]
    span = (float(curve["mean"][-1]), float(max(curve["mean"][0], L_orig)))
    problems = range_problems(saved, budget, float(alloc["n_star"]), float(alloc["L_star"]), span)
    if problems and not extrapolate:
        refuse(problems, saved)
    # L* below the bytes of the largest distance measured: n must shrink to what fits there
    L_last = float(curve["mean"][-1])
    capped = None
    points = [(max(n_orig, 1), L_orig)]
    if float(alloc["L_star"]) < L_last < L_orig:
        capped = {"n": int(min(pool, math.floor(budget / L_last))), "L": L_last, "distance": float(sample.grid[-1])}
        points.append((capped["n"], L_last))
    prediction = laws.predict(saved, budget, n_max=pool, points=points, n_boot=n_boot, seed=seed)
    if capped:
        capped.update(error=prediction.points[1]["error"], error_interval=prediction.points[1]["interval"],
                      error_law=prediction.points[1]["error_law"])
    distance, note = sample.distance_for(prediction.L)
    if prediction.L >= L_orig:
        note = (f"L* is at least the originals' {format_size(L_orig)} per image: keep the originals, or compress "
                f"at d = {distance:g} at most")
    elif note:
        note = (f"{note}: L* lies above the bytes at d = {distance:g}; compress at most this lightly"
                if distance == sample.grid[0] else f"{note}: L* lies below the bytes at d = {distance:g}")
    interval = None
    if prediction.L_interval is not None:
        interval = sample.distance_interval(*prediction.L_interval, seed=seed)
    elif len(sample.ids) > 1:
        interval = sample.distance_interval(prediction.L, prediction.L, seed=seed)
    n_opt = int(min(pool, math.floor(prediction.n)))
    if capped:
        n_opt = min(n_opt, capped["n"])
    return Plan(budget, saved, sample, pool, prediction, curve, distance, interval, note, n_opt, n_orig, L_orig,
                problems, bool(problems), capped=capped)


# ---------------------------------------------------------------------------------------------
# Reports


def _ci(interval, spec: str) -> str:
    if interval is None:
        return ""
    lo, hi = interval
    return f" [{format(lo, spec)}, {format(hi, spec)}]"


def _error(value: float, law_value: float, interval) -> str:
    """A predicted error as printed: clipped at 1, and said when it was."""
    text = f"{value:.3f}{_ci(interval, '.3f')}"
    if law_value == law_value and law_value > 1:
        text += f" (clipped at 1: the law gives {law_value:.3g})"
    return text


def summary_lines(plan: Plan) -> list[str]:
    p = plan.prediction
    lines = []
    if plan.saved.borrowed:
        lines.append(f"LAW: {plan.saved.label}.")
    else:
        lines.append(f"law: {plan.saved.label} ({plan.saved.source})")
    lines.append(f"  fitted on {plan.saved.range_text()}")
    if plan.problems:
        lines.append("WARNING: EXTRAPOLATING (--extrapolate): " + "; ".join(plan.problems) + ".")
    if p.above_one:
        lines.append(f"WARNING: the law predicts errors above 1 here (up to {max(p.above_one):.3g}): it is used far "
                     "outside its fitted range. Those predictions are shown clipped at 1; they say only that this "
                     "plan lies beyond what the law knows.")
    s = plan.sample
    lines.append(f"images: {s.listed:,} files listed; {s.sampled:,} sampled, {len(s.ids):,} usable "
                 f"({len(s.skipped):,} skipped); you have about {plan.pool_size:,} usable images")
    if s.notes:
        lines.append("  converted: " + "; ".join(f"{v:,} {k}" for k, v in sorted(s.notes.items())))
    c = plan.curve
    lines.append("bytes per image (sample means): original "
                 f"{format_size(c['original_mean'])}; " + "; ".join(
                     f"d={d:g} {format_size(m)}" for d, m in zip(c["distance"], c["mean"])))
    level = "95% bootstrap intervals" if p.resamples else "no intervals: the law has no runs to resample"
    lines.append(f"budget {format_size(plan.budget)} ({level}):")
    lines.append(f"  storage-optimal: n = {p.n:,.0f}{_ci(p.n_interval, ',.0f')} images at L = {p.L:,.0f}"
                 f"{_ci(p.L_interval, ',.0f')} bytes -> distance d = {plan.distance:.2f}"
                 f"{_ci(plan.distance_interval, '.2f')}" + (f" ({plan.distance_note})" if plan.distance_note else "")
                 + (f"; capped at your {plan.pool_size:,} images" if p.pool_capped else ""))
    c = plan.capped
    if c:
        lines.append(f"    L* lies below what the largest distance measured gives (d = {c['distance']:g}: "
                     f"{format_size(c['L'])} per image), so only {c['n']:,} images fit the budget there")
        lines.append(f"    keeps {plan.n_optimum:,} of your images at d = {c['distance']:g} "
                     f"({format_size(plan.n_optimum * c['L'])}); predicted error "
                     f"{_error(c['error'], c['error_law'], c['error_interval'])}")
    else:
        lines.append(f"    keeps {plan.n_optimum:,} of your images; predicted error "
                     f"{_error(p.error, p.error_law, p.error_interval)}")
    o = plan.original
    outside = plan.saved.outside(max(plan.n_original, 1), plan.L_original)
    lines.append(f"  original format: {plan.n_original:,} images fit at {format_size(plan.L_original)} each; "
                 f"predicted error {_error(o['error'], o.get('error_law', o['error']), o['interval'])}"
                 + (f" (extrapolated: {' and '.join(outside)} outside the law's fitted range)" if outside else ""))
    lines.append(f"before you commit: {CHECK_AGAINST_FIXED}")
    return lines


# The book's conclusions chapter: on its own runs a fixed mild distance matched or beat the law's split
CHECK_AGAINST_FIXED = ("train on a few fixed distances near the recommendation too; the book's chapter "
                       "'How hard should you compress?' shows where a law's split and a fixed distance differ")


def figure(plan: Plan):
    """:func:`draw_schemes` on a figure of its own (an Agg canvas, no pyplot state): the report's PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.8, 4.2), dpi=100, layout="constrained")  # inside the book's 7 in column
    FigureCanvasAgg(fig)
    draw_schemes(plan, fig.add_subplot())
    return fig


def draw_schemes(plan: Plan, ax) -> None:
    """Predicted error against storage for the schemes on ``ax``: storage-optimal, original
    format, and every image at d = 1, 4, 15; the law's fitted storage range shaded. Where the
    storage-optimal error itself reaches 1 (the law outside its range), every prediction above 1
    is drawn at 1 and a line at 1 says so; otherwise the axes end at 1, as errors do."""
    from matplotlib.ticker import FuncFormatter

    saved, pool = plan.saved, plan.pool_size
    lo, hi = saved.storage_range
    s_lo, s_hi = plan.budget / 8, plan.budget * 8
    if plan.budget < lo:  # reach into the fitted range, where the law says something
        s_hi = max(s_hi, lo * 4)
    elif plan.budget > hi:
        s_lo = min(s_lo, hi / 4)
    widened = (s_lo, s_hi) != (plan.budget / 8, plan.budget * 8)
    s = np.geomspace(s_lo, s_hi, 160 if widened else 120)
    alloc = saved.params.allocation(s, n_max=pool)
    curves = [(np.asarray(alloc["error_star"], dtype=float), {"lw": 2.2, "label": "storage-optimal (law)"})]
    n_o = np.minimum(s / plan.L_original, pool)
    curves.append((np.asarray(saved.params.error(np.maximum(n_o, 1), plan.L_original), dtype=float),
                   {"lw": 1.6, "label": f"original format ({format_size(plan.L_original)} per image)"}))
    for d in (1.0, 4.0, 15.0):
        if d in plan.curve["distance"]:
            L = plan.curve["mean"][plan.curve["distance"].index(d)]
            curves.append((np.asarray(saved.params.error(np.maximum(np.minimum(s / L, pool), 1), L), dtype=float),
                           {"lw": 1, "ls": "--", "label": f"every image at d = {d:g} ({format_size(L)})"}))
    top = float(np.nanmax(curves[0][0])) if len(alloc) else 1.0
    clip = top >= 1.0  # the optimum itself leaves the range errors live in: draw what can be drawn, at 1
    for err, style in curves:
        ax.plot(s, np.minimum(err, 1.0) if clip else err, **style)
    if max(lo, s[0]) < min(hi, s[-1]):
        ax.axvspan(max(lo, s[0]), min(hi, s[-1]), color="0.9", zorder=0, label="law's fitted storage range")
    ax.axvline(plan.budget, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_size(x)))
    if not clip:
        ax.set_ylim(0, min(1.0, max(top * 1.6, 0.1)))  # curves above 1 leave through the top
    else:
        ax.set_ylim(0, 1.05)
        ax.axhline(1.0, color="0.4", lw=0.8, ls=":", label="predictions above 1 drawn at 1 (the law outside its range)")
        if all(np.all(err >= 1) for err, _ in curves):
            ax.text(0.5, 0.62, "every prediction here is above 1:\nthe law says nothing about this many images "
                    "at these sizes", transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.set_xlabel("storage budget")
    ax.set_ylabel("predicted test error")
    ax.set_title(f"Predicted error against storage ({'BORROWED law' if saved.borrowed else 'law'}; "
                 f"{pool:,} images)", fontsize=10)
    ax.legend(fontsize=9)


def markdown(plan: Plan, png_name: str) -> str:
    d = plan.to_dict()
    lines = ["# Storage plan", "", f"Budget **{format_size(plan.budget)}** for {plan.sample_source}.", ""]
    lines += [f"- {line.strip()}" for line in summary_lines(plan)]
    lines += ["", "## Bytes per image", "", "| distance | mean bytes | 95% interval |", "|---|---|---|"]
    c = plan.curve
    lines.append(f"| original | {c['original_mean']:,.0f} | {c['original_lo']:,.0f}-{c['original_hi']:,.0f} |")
    for dist, m, lo, hi in zip(c["distance"], c["mean"], c["lo"], c["hi"]):
        lines.append(f"| {dist:g} | {m:,.0f} | {lo:,.0f}-{hi:,.0f} |")
    lines += ["", f"![Predicted error against storage]({png_name})", ""]
    skipped = d["images"]["skipped"]
    lines += ["## Files skipped in the sample", ""]
    lines += [f"- `{s['id']}`: {s['reason']}" for s in skipped] or ["None."]
    conv = d["images"]["conversions"]
    lines += ["", "## Conversions to 8-bit RGB", ""]
    lines += [f"- {v:,} images: {k}" for k, v in sorted(conv.items())] or ["None: every sampled image was 8-bit RGB."]
    if images_mod.ALPHA in conv:
        lines += ["", "Transparent pixels were composited over white before encoding."]
    lines += ["", "The codec: " + codecs.ENCODER_SETTINGS["jxl"] + ".",
              f"Code {d['provenance']['code_version']}, {d['provenance']['device']}, {d['provenance']['finished_at']}."]
    return "\n".join(lines) + "\n"


def write_report(plan: Plan, folder: Path) -> dict[str, Path]:
    """``plan.md``, ``plan.png`` and ``plan.json`` in ``folder`` (each written atomically)."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    out = {"md": folder / "plan.md", "png": folder / "plan.png", "json": folder / "plan.json"}
    buffer = io.BytesIO()
    figure(plan).savefig(buffer, format="png")
    atomic.write_bytes(out["png"], buffer.getvalue())
    atomic.write_text(out["json"], json.dumps(plan.to_dict(), indent=1, default=float) + "\n")
    atomic.write_text(out["md"], markdown(plan, out["png"].name))
    return out


# ---------------------------------------------------------------------------------------------
# The command


def check_writable_folder(folder: Path, what: str) -> Path:
    """A folder that exists and is writable, or whose parent does and is: else one ValueError."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{what} {folder} is a file, not a folder; give a folder")
    target = folder if folder.is_dir() else folder.parent
    if not target.is_dir():
        raise ValueError(f"{what} {folder}: its parent folder {target} does not exist; create it first")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {folder} is not writable (no permission to write in {target}); choose another")
    try:  # what the permission bits do not say (/proc, a read-only mount, a full disk): try, leave nothing
        os.rmdir(tempfile.mkdtemp(prefix=".storage-scaling-probe-", dir=target))
    except OSError as exc:
        raise ValueError(f"{what} {folder} cannot be written: creating a folder in {target} fails "
                         f"({(exc.strerror or str(exc)).lower()}); choose a folder on a writable disk") from exc
    return folder


@dataclass(frozen=True)
class PlanSettings:
    """The options of :func:`plan_images` (the command line's, or these defaults from Python)."""

    law: str | None = None
    extrapolate: bool = False
    sample: int = DEFAULT_SAMPLE
    distances: tuple = DEFAULT_GRID
    pool_size: int | None = None
    bootstrap: int = 200
    seed: int = 0
    effort: int = codecs.DEFAULT_EFFORT
    max_pixels: int = images_mod.DEFAULT_MAX_PIXELS
    worker_memory: float | None = None  # None: one worker's share of the pool's memory


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--law", default=None, metavar="LAW",
                        help=f"a law file (storage-scaling fit --save-law, or pilot), book:DATASET/MODEL (a committed "
                             f"fit of the book), or paper:food101 (the paper's constants, borrowed; the default)")
    parser.add_argument("--extrapolate", action="store_true",
                        help="plan even where the budget or your images lie outside the law's fitted range")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help=f"images to sample (default {DEFAULT_SAMPLE})")
    parser.add_argument("--distances", type=float, nargs="+", default=list(DEFAULT_GRID), metavar="D",
                        help="distances of the size curve (default: %(default)s)")
    parser.add_argument("--pool-size", type=int, default=None, metavar="N",
                        help="images in your whole dataset when IMAGES is a sample of it (default: the usable "
                             "images in IMAGES, estimated from the sample)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="resamples of the law's runs for the intervals (default 200; 0 = none)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed (default 0)")
    parser.add_argument("--effort", type=int, default=codecs.DEFAULT_EFFORT,
                        help=f"JPEG XL effort (default {codecs.DEFAULT_EFFORT}, the paper's)")
    add_limits(parser)


def add_limits(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels`` and ``--worker-memory``: the guards of :class:`images.Limits`."""
    parser.add_argument("--max-pixels", default=None, metavar="N",
                        help=f"skip images with more pixels than this, e.g. 300M (default "
                             f"{format_count(images_mod.DEFAULT_MAX_PIXELS)}; a guard against decompression bombs)")
    parser.add_argument("--worker-memory", default=None, metavar="SIZE",
                        help="memory one worker may use, e.g. 8GB; images that need more to encode (about "
                             f"{images_mod.PEAK_BYTES_PER_PIXEL} bytes per pixel) are skipped (default: the memory "
                             "available here divided among the workers, or a Dask worker's memory limit)")


def check_limits(args) -> None:
    """Parse ``--max-pixels`` and ``--worker-memory`` in place (one ValueError if either is bad)."""
    raw = getattr(args, "max_pixels", None)
    args.max_pixels = images_mod.DEFAULT_MAX_PIXELS if raw is None else parse_count(raw, "--max-pixels")
    raw = getattr(args, "worker_memory", None)
    args.worker_memory = None if raw is None else parse_size(raw, "--worker-memory")


def limits_for(args, pool) -> images_mod.Limits:
    """The guards of a run: its options, and by default one worker's share of ``pool``'s memory."""
    max_pixels = getattr(args, "max_pixels", None) or images_mod.DEFAULT_MAX_PIXELS
    memory = getattr(args, "worker_memory", None)
    return images_mod.Limits(int(max_pixels), float(memory) if memory else pool.memory_per_worker())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", help="a folder of images (recursive), a .parquet pack, or a text file of paths")
    parser.add_argument("--budget", required=True, help="storage budget: 500MB, 1.5GiB, 10GB, 48.48e6 (bytes)")
    parser.add_argument("--report", default="storage-plan", metavar="DIR",
                        help="folder for plan.md, plan.png and plan.json (default ./storage-plan)")
    add_common(parser)
    cluster.add_arguments(parser)


def check_common(args) -> None:
    if args.sample < 1:
        raise ValueError(f"--sample must be at least 1 image, got {args.sample}")
    if args.pool_size is not None and args.pool_size < 1:
        raise ValueError(f"--pool-size must be at least 1 image, got {args.pool_size}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0 resamples, got {args.bootstrap}")
    codecs.check_effort(args.effort)
    check_grid(args.distances)
    check_limits(args)


def plan_images(images, budget: float, args, pool, *, progress: bool = True) -> Plan:
    """Everything after the checks: the law, the early range check, the sample, the plan."""
    saved = laws.load(args.law)
    pool_guess = args.pool_size or len(images)
    alloc = saved.params.allocation([budget], n_max=pool_guess).iloc[0]
    early = range_problems(saved, budget, float(alloc["n_star"]), float(alloc["L_star"]))
    if early and not args.extrapolate:
        refuse(early, saved)  # before any image is encoded
    sample = measure(images, pool, sample=args.sample, grid=args.distances, effort=args.effort, seed=args.seed,
                     progress=progress, budget=budget, limits=limits_for(args, pool))
    result = make_plan(sample, saved, budget, pool_size=args.pool_size, extrapolate=args.extrapolate,
                       n_boot=args.bootstrap, seed=args.seed)
    result.sample_source = images.describe()
    return result


def cmd(args: argparse.Namespace) -> int:
    budget = parse_size(args.budget)
    check_common(args)
    report = check_writable_folder(Path(args.report), "--report")
    cluster.check_options(args.processes, args.workers, args.scheduler)
    images = images_mod.open_images(args.images)
    laws.load(args.law)  # a bad --law is one line before any work
    with cluster.open_pool(args.processes, args.workers, args.scheduler) as pool:
        result = plan_images(images, budget, args, pool)
    for line in summary_lines(result):
        print(line)
    written = write_report(result, report)
    print(f"report: {written['md']} (+ {written['png'].name}, {written['json'].name})")
    return 0
