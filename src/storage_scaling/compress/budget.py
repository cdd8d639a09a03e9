"""Which images, at which distance, fill a storage budget: pure functions over per-image size tables.

Everything here works on numpy arrays and knows nothing about codecs or training, so it can be
tested on synthetic size tables and reused by anyone with their own. The inputs are

* ``sizes``: an ``(N, D)`` table of every image's compressed size in bytes at each distance of
  ``grid`` (``D`` increasing distances; the compressed store computes it, see
  ``store.size_table``), and
* ``budget``: the storage budget ``s`` in bytes.

The paper's procedures (Mentzer & Montanari 2024, code ``utils/drr_estimation_tools.py`` and
``utils/randomized_curve_utils.py``) are:

* **storage-optimal** (:func:`distance_for_budget`): for a chosen subset of ``n`` images, the
  single distance ``d`` at which the whole subset fits in ``s``, found by binary search on ``d``
  to ``1e-3`` on interpolated per-image sizes. The experiment then encodes once at ``d`` and
  checks the real bytes (:func:`fit_real_bytes`), correcting ``d`` until the set is within the
  budget and within 0.5 % of it;
* **original format** and **naive** (:func:`largest_prefix`): the longest prefix of a nested order
  whose bytes (stored originals, or every image at one fixed distance) fit in ``s``;
* **randomized** (:func:`randomized_range_for_budget`): every image gets its own distance
  ``d_i = d_min + (1 - u_i / max u) (d_max - d_min)`` with ``u`` a random permutation rank; start
  from ``DEFAULT_RANGE`` (``codecs.STUDY_DISTANCES``, [0.5, 15]); if the set is still too big,
  raise ``d_min`` by binary search, else lower ``d_max``; distances below the zero-gain distance
  are set to 0 (keep the original file).

Bad inputs raise ``ValueError`` before any search starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import codecs

DEFAULT_RANGE = codecs.STUDY_DISTANCES
DISTANCE_TOL = 1e-3
FILL_TOL = 0.005  # the real bytes must reach at least (1 - FILL_TOL) of the budget


# ---------------------------------------------------------------------------------------------
# Validation and interpolation


def check_table(sizes, grid) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sizes, grid)`` as float arrays after checking shapes, order and positivity.

    ``sizes`` may also be a lazily filled table (``store.LazySizeTable``: anything with ``shape``
    and ``take(rows, cols)``), returned as it is: its entries are encoded sizes, checked positive
    when they are encoded, and reading them all here would encode the whole table."""
    grid = np.asarray(grid, dtype=np.float64)
    if hasattr(sizes, "take") and not isinstance(sizes, np.ndarray):
        _check_grid(grid, tuple(sizes.shape))
        return sizes, grid
    sizes = np.asarray(sizes, dtype=np.float64)
    _check_grid(grid, sizes.shape)
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError("every size in the table must be a positive, finite number of bytes")
    return sizes, grid


def _check_grid(grid: np.ndarray, shape: tuple) -> None:
    if len(shape) != 2:
        raise ValueError(f"sizes must be an (images, distances) table, got shape {shape}")
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError(f"grid must list at least two distances, got {grid!r}")
    if shape[1] != len(grid):
        raise ValueError(f"sizes has {shape[1]} columns but grid has {len(grid)} distances")
    if shape[0] == 0:
        raise ValueError("sizes has no images (an empty subset cannot fill a budget)")
    if np.any(np.diff(grid) <= 0):
        raise ValueError("grid distances must be strictly increasing")


def _check_budget(budget) -> float:
    budget = float(budget)
    if not np.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number of bytes, got {budget}")
    return budget


def interpolate_sizes(sizes, grid, d) -> np.ndarray:
    """Per-image sizes (bytes, float) at distance ``d``: a scalar, or one distance per image.

    The log of each size is interpolated linearly in ``d`` between grid points (sizes fall
    roughly exponentially in d locally), so the estimate is exact on the grid. Distances outside
    the grid are an error: extrapolating a codec's size curve is a guess. This is the package's
    one size interpolation (``store.size_table`` builds the tables it reads).
    """
    sizes, grid = check_table(sizes, grid)
    return _interpolate(sizes, grid, d)


def _interpolate(sizes: np.ndarray, grid: np.ndarray, d) -> np.ndarray:
    """:func:`interpolate_sizes` on a table already checked (the searches call it many times)."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim > 1 or (d.ndim == 1 and d.shape != (sizes.shape[0],)):
        raise ValueError(f"d must be a scalar or one distance per image, shape ({sizes.shape[0]},); "
                         f"got shape {d.shape}")
    outside = ~np.isfinite(d) | (d < grid[0] - 1e-9) | (d > grid[-1] + 1e-9)
    if np.any(outside):
        raise ValueError(f"distance {np.atleast_1d(d)[np.atleast_1d(outside)][0]!r} is outside the size "
                         f"table's grid [{grid[0]:g}, {grid[-1]:g}]; build the table on a wider grid")
    d = np.clip(d, grid[0], grid[-1])
    j = np.clip(np.searchsorted(grid, d, side="right") - 1, 0, len(grid) - 2)
    w = (d - grid[j]) / (grid[j + 1] - grid[j])
    rows = np.arange(sizes.shape[0])
    return np.exp(np.log(_entries(sizes, rows, j)) * (1 - w) + np.log(_entries(sizes, rows, j + 1)) * w)


def _entries(sizes, rows: np.ndarray, cols) -> np.ndarray:
    """``sizes[rows, cols]``: of an array, or of a lazily filled table (which encodes what it lacks)."""
    return sizes[rows, cols] if isinstance(sizes, np.ndarray) else sizes.take(rows, cols)


def total_at(sizes, grid, d) -> float:
    """Estimated total bytes of the set at one distance (or per-image distances)."""
    return float(interpolate_sizes(sizes, grid, d).sum())


def _total(sizes: np.ndarray, grid: np.ndarray, d) -> float:
    return float(_interpolate(sizes, grid, d).sum())


def _bisect(fits: Callable[[float], bool], lo: float, hi: float, tol: float) -> float:
    """Smallest x in [lo, hi] with fits(x), to ``tol``; requires fits(hi) and not fits(lo).

    The answer is always a point where ``fits`` was checked true, so the result never overflows
    even when the size curve is not perfectly monotone.
    """
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------------------------------------
# (a) storage-optimal: one distance for a chosen subset


def distance_for_budget(sizes, grid, budget, d_range=None, tol: float = DISTANCE_TOL) -> float:
    """The smallest distance (best quality) at which the whole subset fits in ``budget``.

    Binary search on ``d`` to ``tol`` over interpolated per-image sizes. When even the best
    quality of the range fits, the range's lower end is returned (the budget does not bind).
    """
    sizes, grid = check_table(sizes, grid)
    budget = _check_budget(budget)
    lo, hi = (float(grid[0]), float(grid[-1])) if d_range is None else map(float, d_range)
    if not grid[0] <= lo < hi <= grid[-1]:
        raise ValueError(f"d_range {d_range} must lie inside the size table's grid "
                         f"[{grid[0]}, {grid[-1]}] with d_min < d_max")
    need = _total(sizes, grid, hi)
    if need > budget:
        raise ValueError(
            f"budget {budget:,.0f} B is too small for these {len(sizes)} images even at the largest "
            f"distance d={hi:g} (they need about {need:,.0f} B, {need / len(sizes):,.0f} B per image); "
            "choose fewer images or a larger budget")
    if _total(sizes, grid, lo) <= budget:
        return lo
    return _bisect(lambda d: _total(sizes, grid, d) <= budget, lo, hi, tol)


@dataclass(frozen=True)
class RealFit:
    """The outcome of fitting real encodes to a budget."""

    candidate: object  # what the search returned (a distance, or a randomized range)
    total_bytes: int  # real bytes of the encoded set
    budget: float
    encodes: int  # how many real encodes it took
    within_tolerance: bool  # budget * (1 - tol) <= total_bytes <= budget

    @property
    def fill(self) -> float:
        return self.total_bytes / self.budget


def fit_real_bytes(search: Callable[[float], object], measure: Callable[[object], int], budget,
                   tol: float = FILL_TOL, max_encodes: int = 8) -> RealFit:
    """Turn an interpolated search into a verified one with as few real encodes as possible.

    ``search(target)`` returns a candidate (a distance, a range...) whose *estimated* bytes fit in
    ``target``; ``measure(candidate)`` encodes it and returns the *real* bytes. The first target is
    the budget itself; each later target rescales the last one by ``budget / real`` (so a size
    table that is off by a few percent is corrected in one step), kept inside the bracket of
    targets known to fit / overflow, bisecting when the correction would leave it. The result is
    the best candidate whose real bytes fit; ``within_tolerance`` says whether it is within
    ``tol`` of the budget. A ``RuntimeError`` is raised if no candidate fits at all.
    """
    budget = _check_budget(budget)
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    target, good_t, bad_t = budget, None, None
    best: tuple[object, int] | None = None
    seen: dict = {}
    encodes = 0
    for _ in range(max_encodes):
        candidate = search(target)
        key = _candidate_key(candidate)
        if key in seen:  # the search cannot move any more (e.g. the budget does not bind)
            break
        real = seen[key] = int(measure(candidate))
        encodes += 1
        if real <= budget:
            if best is None or real > best[1]:
                best = (candidate, real)
            if real >= (1 - tol) * budget:
                break
            good_t = target if good_t is None else max(good_t, target)
        else:
            bad_t = target if bad_t is None else min(bad_t, target)
        # rescale the target by the observed error of the estimate, aiming inside the window
        proposal = target * budget * (1 - tol / 2) / real
        if good_t is not None and bad_t is not None:
            if bad_t - good_t <= 1e-6 * budget:
                break  # the bracket cannot be resolved any finer
            if not good_t < proposal < bad_t:
                proposal = 0.5 * (good_t + bad_t)
        target = proposal
    if best is None:
        raise RuntimeError(f"no candidate fitted the budget {budget:,.0f} B after {encodes} encodes; "
                           "the size table does not describe these encodes (different codec settings?)")
    fill_ok = (1 - tol) * budget <= best[1] <= budget
    return RealFit(best[0], best[1], budget, encodes, bool(fill_ok))


def _candidate_key(candidate):
    if isinstance(candidate, RandomizedFit):
        return ("range", round(candidate.d_min, 9), round(candidate.d_max, 9))
    if isinstance(candidate, (float, int, np.floating, np.integer)):
        return round(float(candidate), 9)
    return repr(candidate)


# ---------------------------------------------------------------------------------------------
# (b), (c): original format and naive filling: the longest prefix that fits


@dataclass(frozen=True)
class Prefix:
    n: int  # number of images (a prefix of the nested order)
    total_bytes: int
    pool_exhausted: bool  # every image fitted: the budget is larger than the pool


def largest_prefix(sizes_in_order, budget, what: str = "images") -> Prefix:
    """The largest k such that the first k sizes (in the given order) fit in ``budget``.

    Used for the original format (stored file sizes) and for naive filling (sizes at one fixed
    distance): both take images in the nested order until the budget or the pool runs out.
    """
    sizes = np.asarray(sizes_in_order, dtype=np.int64)
    budget = _check_budget(budget)
    if sizes.ndim != 1 or len(sizes) == 0:
        raise ValueError(f"sizes must be a non-empty list of byte counts, got shape {sizes.shape}")
    if np.any(sizes <= 0):
        raise ValueError("every size must be a positive number of bytes")
    if sizes[0] > budget:
        raise ValueError(f"budget {budget:,.0f} B is too small for even one of the {what} "
                         f"(the first needs {int(sizes[0]):,} B); use a larger budget")
    csum = np.cumsum(sizes)
    k = int(np.searchsorted(csum, budget, side="right"))
    return Prefix(k, int(csum[k - 1]), k == len(sizes))


# ---------------------------------------------------------------------------------------------
# (d) randomized compression


def permutation_ranks(n: int, seed) -> np.ndarray:
    """A random permutation of the ranks 1..n (the paper's ``rankdata(np.random.rand(n))``).

    ``seed``: an int, or a ``numpy.random.SeedSequence`` (see :func:`validation_ranks`)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    ranks = np.empty(n, dtype=np.int64)
    ranks[np.argsort(rng.random(n), kind="stable")] = np.arange(1, n + 1)
    return ranks


def validation_ranks(n: int, rank_seed: int) -> np.ndarray:
    """The ranks of a randomized run's held-out images: :func:`permutation_ranks` seeded with the
    first child of the training ranks' seed, ``numpy.random.SeedSequence(rank_seed).spawn(1)[0]``.

    numpy makes a spawned child an independent stream of its parent, so the held-out ranks are
    reproducible from ``rank_seed`` alone yet never a copy of the training ranks (which they would
    be with the same seed whenever both sets have the same size).
    """
    return permutation_ranks(n, np.random.SeedSequence(int(rank_seed)).spawn(1)[0])


def randomized_distances(ranks, d_min: float, d_max: float, zero_below: float | None = None) -> np.ndarray:
    """``d_i = d_min + (1 - u_i / max u) (d_max - d_min)``; below ``zero_below`` -> 0 (original)."""
    u = np.asarray(ranks, dtype=np.float64)
    if d_min > d_max:
        raise ValueError(f"d_min={d_min} must not exceed d_max={d_max}")
    d = d_min + (1.0 - u / u.max()) * (d_max - d_min)
    if zero_below is not None:
        d = np.where(d < zero_below, 0.0, d)
    return d


def randomized_sizes(sizes, grid, distances, original_sizes=None) -> np.ndarray:
    """Estimated per-image bytes: interpolated at ``d_i``, the stored original where ``d_i == 0``."""
    distances = np.asarray(distances, dtype=np.float64)
    keep = distances == 0
    out = np.empty(len(distances))
    if np.any(keep):
        if original_sizes is None:
            raise ValueError("some distances are 0 (keep the original) but no original_sizes were given")
        out[keep] = np.asarray(original_sizes, dtype=np.float64)[keep]
    if np.any(~keep):
        sizes, grid = check_table(sizes, grid)
        d = np.where(keep, grid[0], distances)  # placeholder where kept; overwritten below
        est = _interpolate(sizes, grid, d)
        out[~keep] = est[~keep]
    return out


def zero_gain_distance(sizes, grid, original_sizes) -> float:
    """The distance below which compressing saves nothing on average (mean size = mean original).

    The paper estimated it from a linear fit of the size ratio (Food-101: d0 = 0.49) and kept the
    original file for every image whose randomized distance fell below it. Returns the grid's lower
    end when compression saves bytes everywhere on the grid, its upper end when it never does.
    """
    sizes, grid = check_table(sizes, grid)
    target = float(np.mean(original_sizes))
    mean_at = lambda d: float(_interpolate(sizes, grid, d).mean())  # noqa: E731
    if mean_at(grid[0]) <= target:
        return float(grid[0])
    if mean_at(grid[-1]) > target:
        return float(grid[-1])
    return _bisect(lambda d: mean_at(d) <= target, float(grid[0]), float(grid[-1]), DISTANCE_TOL)


@dataclass(frozen=True)
class RandomizedFit:
    d_min: float
    d_max: float
    distances: np.ndarray  # per image, 0 = keep the original
    estimated_bytes: float
    moved: str  # "d_min" (raised), "d_max" (lowered) or "none" (budget not binding)


def randomized_range_for_budget(sizes, grid, budget, ranks, d_range=DEFAULT_RANGE,
                                zero_below: float | None = None, original_sizes=None,
                                tol: float = DISTANCE_TOL) -> RandomizedFit:
    """The paper's randomized scheme: per-image distances spread over ``[d_min, d_max]``.

    Start from ``d_range``; if the set is still larger than the budget there, raise ``d_min`` by
    binary search (``d_max`` fixed); otherwise lower ``d_max`` (``d_min`` fixed), each to ``tol``.
    """
    sizes, grid = check_table(sizes, grid)
    budget = _check_budget(budget)
    ranks = np.asarray(ranks)
    if ranks.shape != (sizes.shape[0],):
        raise ValueError(f"ranks must give one rank per image ({sizes.shape[0]}), got shape {ranks.shape}")
    lo, hi = map(float, d_range)
    if not grid[0] <= lo < hi <= grid[-1]:
        raise ValueError(f"d_range {tuple(d_range)} must lie inside the size table's grid "
                         f"[{grid[0]}, {grid[-1]}] with d_min < d_max")
    if zero_below is not None and zero_below > lo and original_sizes is None:
        raise ValueError("zero_below needs original_sizes (the bytes of the images kept as stored)")

    def total(a: float, b: float) -> tuple[float, np.ndarray]:
        d = randomized_distances(ranks, a, b, zero_below)
        return float(randomized_sizes(sizes, grid, d, original_sizes).sum()), d

    start, _ = total(lo, hi)
    if start > budget:
        need, _ = total(hi, hi)
        if need > budget:
            raise ValueError(
                f"the distance range [{lo:g}, {hi:g}] cannot fit budget {budget:,.0f} B: even with every "
                f"one of the {len(sizes)} images at d={hi:g} they need about {need:,.0f} B; "
                "choose fewer images or a larger budget")
        d_min = _bisect(lambda a: total(a, hi)[0] <= budget, lo, hi, tol)
        est, d = total(d_min, hi)
        return RandomizedFit(d_min, hi, d, est, "d_min")
    if total(lo, lo)[0] <= budget:
        est, d = total(lo, lo)
        return RandomizedFit(lo, lo, d, est, "none")
    d_max = _bisect(lambda b: total(lo, b)[0] <= budget, lo, hi, tol)
    est, d = total(lo, d_max)
    return RandomizedFit(lo, d_max, d, est, "d_max")
