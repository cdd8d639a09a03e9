"""``storage-scaling plan IMAGES --budget 10GB``: how hard to compress *your* images for a budget.

1. A seeded sample of the images is encoded with the book's codec settings (JPEG XL, effort 7,
   one thread per image): the mean bytes per image L(d), with a bootstrap interval over the
   sampled images. The sampling is adaptive (:func:`measure_adaptive`): a first batch of images
   at three distances of the grid (its ends and its middle); then the grid distances on either
   side of the answer, until the answer lies between two neighbouring distances of the grid that
   were measured (so the chosen distance is the one every image at every distance would give, on
   the same images); then more images, until the mean bytes at the answer are known to
   ``--precision`` (95 % interval), at most ``--sample`` images. By default the sampling stops
   growing once it has cost half of what compressing every image once would (an explicit
   ``--precision`` lifts that cap); ``--exhaustive`` encodes the whole sample at every distance
   (:func:`measure`). A time estimate, measured on a few of the images, is printed first.
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
from .units import format_count, format_duration, format_size, parse_count, parse_size

DEFAULT_GRID = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0)  # inside codecs.STUDY_DISTANCES
DEFAULT_SAMPLE = 300
DEFAULT_PRECISION = 0.05  # --precision: the 95 % interval of the mean bytes at the answer, +-5 %
FIRST_BATCH = 32  # images of the adaptive sample's first batch
MIN_BATCH = 8  # images added at least when the sample grows
COST_SHARE = 0.5  # by default the sample costs at most this share of compressing every image once
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
    max_side: int | None = None  # --max-side: measured as compress will store them


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
        pixels, resized = images_mod.limit_side(pixels, task.max_side)
        notes = notes + ((images_mod.RESIZED,) if resized else ())
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
    sampling: dict = field(default_factory=dict)  # how the sample was taken (adaptive: rounds, encodes...)

    @property
    def usable_fraction(self) -> float:
        return len(self.ids) / self.sampled if self.sampled else 0.0

    @property
    def seconds_per_encode(self) -> float | None:
        """Mean seconds of one encode of one image (one worker)."""
        if self.seconds is None or not len(self.seconds):
            return None
        return float(np.mean(self.seconds)) / len(self.grid)

    def relative_precision(self, d: float, n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> float:
        """Half the width of the bootstrap interval of the mean bytes at ``d``, relative to the mean."""
        d = float(np.clip(d, self.grid[0], self.grid[-1]))
        at = budget_mod.interpolate_sizes(self.sizes.astype(float), self.grid, d)
        if len(at) < 2:
            return math.inf
        idx = np.random.default_rng(seed).integers(0, len(at), size=(n_boot, len(at)))
        means = at[idx].mean(axis=1)
        lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
        return float((hi - lo) / 2 / at.mean())

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


def _tasks(images, indices, grid, effort, limits, max_side=None):
    for k in range(0, len(indices), CHUNK):
        part = [images.items[i] for i in indices[k:k + CHUNK]]
        yield SizeTask([it.id for it in part], images.read_many(part), list(map(float, grid)), effort, limits,
                       max_side)


def precheck(images, indices, d_max: float, effort: int, limits: images_mod.Limits | None = None,
             max_side: int | None = None) -> tuple[list[int], list[float]]:
    """Bytes and seconds of a handful of usable images encoded at ``d_max`` (here, one thread)."""
    sizes, seconds = [], []
    for it in (images.items[i] for i in indices):
        if len(sizes) >= PRECHECK_IMAGES:
            break
        try:
            pixels, _ = images_mod.to_rgb8(images.read(it), limits)
        except images_mod.Unusable:
            continue
        pixels, _ = images_mod.limit_side(pixels, max_side)
        start = time.perf_counter()
        sizes.append(len(codecs.encode(pixels, "jxl", d_max, effort=effort)))
        seconds.append(time.perf_counter() - start)
    return sizes, seconds


def check_budget_fits(budget: float, sizes: list[int], d_max: float) -> None:
    """Refuse a budget smaller than one of the prechecked images at the largest distance."""
    if sizes and budget < min(sizes):
        raise ValueError(f"--budget {format_size(budget)} is smaller than one of these images at the largest "
                         f"distance d={d_max:g} (the smallest of {len(sizes)} tried takes {format_size(min(sizes))}); "
                         "choose a larger budget")


def precheck_budget(images, indices, budget: float, d_max: float, effort: int,
                    limits: images_mod.Limits | None = None, max_side: int | None = None) -> None:
    """Refuse, from a handful of images encoded at the largest distance, a budget smaller than
    one image (before the sample is encoded)."""
    sizes, _ = precheck(images, indices, d_max, effort, limits, max_side)
    check_budget_fits(budget, sizes, d_max)


def _sample_of(images, rows: list[dict], grid) -> SizeSample:
    ok = [r for r in rows if r["ok"]]
    skipped = [(r["id"], r["reason"]) for r in rows if not r["ok"]]
    if not ok:
        raise ValueError(f"none of the {len(rows)} sampled files of {images.describe()} is a usable image "
                         f"(first: {skipped[0][0]}: {skipped[0][1]}); point at a folder of images")
    notes = Counter(n for r in ok for n in r["notes"])
    return SizeSample([r["id"] for r in ok], np.asarray([r["sizes"] for r in ok], dtype=np.int64),
                      np.asarray(grid, dtype=np.float64),
                      np.asarray([r["source_bytes"] for r in ok], dtype=np.int64),
                      np.asarray([r["pixels"] for r in ok], dtype=np.int64), len(images), len(rows),
                      skipped, notes, np.asarray([r["seconds"] for r in ok], dtype=float))


def measure(images, pool, *, sample: int = DEFAULT_SAMPLE, grid=DEFAULT_GRID, effort: int = codecs.DEFAULT_EFFORT,
            seed: int = 0, progress: bool = True, budget: float | None = None,
            limits: images_mod.Limits | None = None, max_side: int | None = None) -> SizeSample:
    """Encode a seeded sample of ``images`` at every distance of ``grid`` on ``pool`` (images over
    ``limits`` are skipped, as ``compress`` would skip them): the exhaustive sample."""
    from tqdm import tqdm

    grid = check_grid(grid)
    limits = limits or images_mod.Limits()
    indices = sample_indices(len(images), sample, seed)
    if budget is not None:
        precheck_budget(images, indices, budget, float(grid[-1]), effort, limits, max_side)
    rows: dict[int, list] = {}
    bar = tqdm(total=len(indices), desc=f"sizes at {len(grid)} distances", unit="img", disable=not progress)
    try:
        for k, part in pool.imap_unordered(measure_chunk, _tasks(images, indices, grid, effort, limits, max_side)):
            rows[k] = part
            bar.update(len(part))
    finally:
        bar.close()
    result = _sample_of(images, [r for k in sorted(rows) for r in rows[k]], grid)
    result.sampling = {"mode": "exhaustive", "images": len(result.ids), "distances": grid.tolist(),
                       "encodes": int(len(result.ids) * len(grid))}
    return result


def coarse_grid(grid) -> list[float]:
    """The first distances measured: the grid's ends and its middle."""
    grid = list(map(float, grid))
    return sorted({grid[0], grid[len(grid) // 2], grid[-1]})


def bracket(grid, d: float) -> set[float]:
    """The distances of ``grid`` that interpolation at ``d`` reads: its two neighbours (three
    when ``d`` is a grid point; the end when ``d`` lies at or beyond one)."""
    grid = np.asarray(grid, dtype=float)
    if d <= grid[0]:
        return {float(grid[0])}
    if d >= grid[-1]:
        return {float(grid[-1])}
    j = int(np.searchsorted(grid, d, side="right") - 1)
    out = {float(grid[j]), float(grid[j + 1])}
    if abs(d - grid[j]) < 1e-9 and j > 0:
        out.add(float(grid[j - 1]))
    return out


def cost_cap(work: float, coarse: int) -> float:
    """The encodes the default sample may cost: :data:`COST_SHARE` of compressing ``work`` images
    once, and at least a first batch of :data:`FIRST_BATCH` images at the coarse distances and two
    more (a small folder is sampled whole: it costs seconds)."""
    return max(COST_SHARE * work, FIRST_BATCH * (coarse + 2))


def measure_adaptive(images, pool, needed, *, sample: int = DEFAULT_SAMPLE, grid=DEFAULT_GRID,
                     effort: int = codecs.DEFAULT_EFFORT, seed: int = 0, progress: bool = True,
                     limits: images_mod.Limits | None = None, max_side: int | None = None,
                     precision: float | None = None, work: float | None = None) -> SizeSample:
    """The adaptive sample (see the module docstring). ``needed(sample)`` gives the distances the
    answer depends on, the first of which is the answer, where the precision is judged;
    ``work`` is how many images a compression would encode (the default cost cap: without an
    explicit ``precision``, the sample stops growing at :data:`COST_SHARE` of that many encodes).
    The sample's ``sampling`` dict says what was measured and why it stopped."""
    from tqdm import tqdm

    grid = check_grid(grid)
    limits = limits or images_mod.Limits()
    capped = precision is None
    precision = DEFAULT_PRECISION if precision is None else float(precision)
    work = float(work or len(images))
    order = sample_indices(len(images), sample, seed)
    order = order[np.random.default_rng(seed + 7).permutation(len(order))]  # nested batches: prefixes
    measured = coarse_grid(grid)
    m = min(len(order), FIRST_BATCH)
    cap = cost_cap(work, len(measured))
    rows: dict[int, dict] = {}  # image index -> row (sizes by distance)
    encodes = 0
    bar = tqdm(total=m * len(measured), desc="sizes (adaptive)", unit="encode", disable=not progress)

    def encode(indices, distances):
        nonlocal encodes
        if not len(indices) or not distances:
            return
        if bar.n + len(indices) * len(distances) > bar.total:  # a new round: the bar grows
            bar.total = bar.n + len(indices) * len(distances)
            bar.refresh()
        for k, part in pool.imap_unordered(measure_chunk, _tasks(images, indices, distances, effort, limits,
                                                                  max_side)):
            for i, r in zip(indices[k * CHUNK:(k + 1) * CHUNK], part):
                old = rows.setdefault(int(i), {**r, "by_d": {}, "seconds": 0.0})
                if r["ok"]:
                    old["by_d"].update(zip(distances, r["sizes"]))
                    old["seconds"] += r["seconds"]
                    encodes += len(distances)
            bar.update(len(part) * len(distances))

    def current() -> SizeSample:
        listed = [rows[int(i)] for i in sorted(order[:m])]  # in listing order, as measure() has them
        out = []
        for r in listed:
            if r["ok"]:
                out.append({**r, "sizes": [r["by_d"][d] for d in measured]})
            else:
                out.append(r)
        return _sample_of(images, out, measured)

    stop, rounds = "", []
    try:
        encode(order[:m], measured)
        for _ in range(64):
            sample_now = current()
            missing = sorted(set().union(*(bracket(grid, d) for d in needed(sample_now))) - set(measured))
            if missing:
                rounds.append({"images": m, "added_distances": missing})
                encode([i for i in order[:m] if rows[int(i)]["ok"]], missing)
                measured = sorted(set(measured) | set(missing))
                continue
            answer = needed(sample_now)[0]
            rel = sample_now.relative_precision(answer, seed=seed)
            if rel <= precision:
                stop = f"the mean bytes at the answer are known to +-{rel:.1%} (--precision {precision:g})"
                break
            if m >= len(order):
                stop = (f"every sampled image is measured (--sample {sample:,}); the mean bytes at the answer are "
                        f"known to +-{rel:.1%}")
                break
            want = int(math.ceil(1.2 * m * (rel / precision) ** 2))
            grow = min(len(order), max(m + MIN_BATCH, want))
            if capped and encodes + (grow - m) * len(measured) > cap:
                grow = min(grow, m + int((cap - encodes) // len(measured)))
                if grow <= m:
                    stop = (f"the sample has cost what it may by default ({cap:,.0f} encodes, about "
                            f"{COST_SHARE:.0%} of compressing the {work:,.0f} images once); the mean bytes at the "
                            f"answer are known to +-{rel:.1%} (give --precision to insist)")
                    break
            rounds.append({"images": grow, "precision_before": rel})
            encode(order[m:grow], measured)
            m = grow
    finally:
        bar.close()
    result = current()
    result.sampling = {"mode": "adaptive", "images": len(result.ids), "sampled": result.sampled,
                       "distances": [float(d) for d in measured], "grid": grid.tolist(), "encodes": int(encodes),
                       "exhaustive_encodes": int(len(order) * len(grid)), "rounds": rounds, "stopped": stop,
                       "precision": precision, "relative_precision": result.relative_precision(needed(result)[0],
                                                                                              seed=seed)}
    return result


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
            "sampling": self.sample.sampling,
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


def sampling_lines(sample: SizeSample) -> list[str]:
    """How the size sample was taken, in a line or two (empty for a sample made by hand)."""
    info = sample.sampling
    if not info:
        return []
    if info["mode"] == "exhaustive":
        return [f"  sample: every one of {info['images']:,} images at all {len(info['distances'])} distances "
                f"(--exhaustive: {info['encodes']:,} encodes)"]
    return [f"  sample (adaptive): {info['images']:,} images at {len(info['distances'])} of the {len(info['grid'])} "
            f"distances ({', '.join(f'{d:g}' for d in info['distances'])}): {info['encodes']:,} encodes, against "
            f"{info['exhaustive_encodes']:,} for --exhaustive (every image of --sample at every distance)",
            f"  stopped because {info['stopped']}" if info["stopped"] else
            f"  the mean bytes at the answer are known to +-{info['relative_precision']:.1%}"]


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
    lines += sampling_lines(s)
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
    max_side: int | None = None  # --max-side: the images are measured as compress will store them
    precision: float | None = None  # None: DEFAULT_PRECISION, with the sample's cost capped
    exhaustive: bool = False  # every sampled image at every distance (no adaptive sampling)


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--law", default=None, metavar="LAW",
                        help=f"a law file (storage-scaling fit --save-law, or pilot), book:DATASET/MODEL (a committed "
                             f"fit of the book), or paper:food101 (the paper's constants, borrowed; the default)")
    parser.add_argument("--extrapolate", action="store_true",
                        help="plan even where the budget or your images lie outside the law's fitted range")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                        help=f"most images to sample (default {DEFAULT_SAMPLE})")
    parser.add_argument("--precision", type=float, default=None, metavar="P",
                        help=f"sample until the mean bytes at the answer are known to +-P (95%% interval; default "
                             f"{DEFAULT_PRECISION:g}, and then the sample costs at most half of compressing every image "
                             "once: an explicit --precision lifts that cap)")
    parser.add_argument("--exhaustive", action="store_true",
                        help="encode every sampled image at every distance (slower; the adaptive sample gives the "
                             "same distance on the same images)")
    parser.add_argument("--distances", type=float, nargs="+", default=list(DEFAULT_GRID), metavar="D",
                        help="distances of the size curve (default: %(default)s)")
    parser.add_argument("--max-side", type=int, default=None, metavar="N",
                        help="shrink every image whose longer side exceeds N pixels first (Lanczos), as dataset "
                             "tools do; the sizes are measured on the shrunk images")
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
    parser.add_argument("images", help="a folder of images (recursive), a .parquet pack, or a text file of paths; "
                                       "each may be a URL fsspec opens (s3://, gs://, https://)")
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
    precision = getattr(args, "precision", None)
    if precision is not None and not (0 <= precision < 1 and math.isfinite(precision)):
        raise ValueError(f"--precision is a relative half-width in [0, 1), e.g. 0.05 for +-5%, got {precision:g}")
    max_side = getattr(args, "max_side", None)
    if max_side is not None and max_side < 8:
        raise ValueError(f"--max-side must be a whole number of pixels >= 8, got {max_side}")
    codecs.check_effort(args.effort)
    check_grid(args.distances)
    check_limits(args)


def estimate_lines(images, args, pool, seconds: list[float], work: float) -> list[str]:
    """What the sample will cost and what compressing every image once would, before the sample
    starts (from ``seconds``: a few images encoded here at the largest distance)."""
    if not seconds:
        return []
    per = float(np.mean(seconds)) * 1.15  # smaller distances encode a little slower than the largest
    workers = max(pool.workers, 1)
    sample = min(args.sample, len(images))
    grid = len(args.distances)
    compress = per * work / workers
    if getattr(args, "exhaustive", False):
        low = high = per * sample * grid / workers
        how = f"{sample:,} images at all {grid} distances"
    else:
        coarse = len(coarse_grid(sorted(args.distances)))
        precision = getattr(args, "precision", None)
        low = per * min(FIRST_BATCH, sample) * min(grid, coarse + 2) / workers
        most = cost_cap(work, coarse) if precision is None else sample * min(grid, coarse + 3)
        high = max(low, per * min(most, sample * grid) / workers)
        how = (f"adaptive: {min(FIRST_BATCH, sample):,} images at {coarse} distances first, then the distances near "
               f"the answer, then more images until the mean bytes are known to "
               f"+-{(precision if precision is not None else DEFAULT_PRECISION):.0%}")
    when = f"about {format_duration(low)}" if high <= 1.3 * low else f"{format_duration(low)} to {format_duration(high)}"
    return [f"estimated time: {when} to measure sizes ({how}) on {pool.description}; compressing all "
            f"{work:,.0f} images once takes about {format_duration(compress)} there (measured on {len(seconds)} of your "
            "images)"]


def plan_images(images, budget: float, args, pool, *, progress: bool = True, log=print) -> Plan:
    """Everything after the checks: the law, the early range check, the time estimate, the
    sample (adaptive unless ``args.exhaustive``), the plan."""
    saved = laws.load(args.law)
    pool_guess = args.pool_size or len(images)
    alloc = saved.params.allocation([budget], n_max=pool_guess).iloc[0]
    early = range_problems(saved, budget, float(alloc["n_star"]), float(alloc["L_star"]))
    if early and not args.extrapolate:
        refuse(early, saved)  # before any image is encoded
    grid = check_grid(args.distances)
    limits = limits_for(args, pool)
    max_side = getattr(args, "max_side", None)
    indices = sample_indices(len(images), args.sample, args.seed)
    sizes, seconds = precheck(images, indices, float(grid[-1]), args.effort, limits, max_side)
    check_budget_fits(budget, sizes, float(grid[-1]))
    work = float(pool_guess)
    for line in estimate_lines(images, args, pool, seconds, work):
        log(line)
    if getattr(args, "exhaustive", False):
        sample = measure(images, pool, sample=args.sample, grid=grid, effort=args.effort, seed=args.seed,
                         progress=progress, limits=limits, max_side=max_side)
    else:
        def needed(current: SizeSample) -> list[float]:
            """The plan's distance, and the one compress --budget aims the upper curve at."""
            trial = make_plan(current, saved, budget, pool_size=args.pool_size, extrapolate=True, n_boot=0,
                              seed=args.seed)
            n = max(1, min(trial.n_optimum, max(1, round(current.listed * current.usable_fraction))))
            upper = np.asarray([trial.curve["hi"]], dtype=float)
            if budget / n >= upper[0, 0]:
                d_hi = float(current.grid[0])
            elif budget / n >= upper[0, -1]:
                d_hi = float(budget_mod.distance_for_budget(upper, current.grid, budget / n))
            else:
                d_hi = float(current.grid[-1])
            return [trial.distance, d_hi]

        sample = measure_adaptive(images, pool, needed, sample=args.sample, grid=grid, effort=args.effort,
                                  seed=args.seed, progress=progress, limits=limits, max_side=max_side,
                                  precision=getattr(args, "precision", None), work=work)
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
