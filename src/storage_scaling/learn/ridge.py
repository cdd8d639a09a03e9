"""The ridge head: a linear classifier on fixed features, its penalty chosen on a validation split.

Every model here that puts a linear classifier on features it does not train uses this head (the
k-means probe of :mod:`.probe`, the frozen network features of :mod:`.pretrained`):

* features are standardised with the training rows' mean and scale;
* the classifier is least squares one-vs-rest on one-hot targets with an L2 penalty,
  W(lam) = (X^T X + lam I)^-1 X^T Y on standardised X and centred Y, the bias folding the
  standardisation and the target means back in;
* the penalty is ``factor * trace(X^T X) / d`` (the mean eigenvalue of the Gram matrix, i.e. n for
  standardised features) for factors of a log-spaced grid (:func:`penalty_grid`), and the factor
  with the lowest error on the validation split wins (:func:`fit_ridge`). There is no test
  argument: the test set cannot leak.

Two ways to the same answers (``method``). ``"cholesky"`` (the default): one pass over the training
rows gathers their sufficient statistics (:class:`GramStats`: a float64 symmetric rank-k update per
chunk, half the work of a matrix product; kept for nested subsets by :data:`SUBSETS`), and each
penalty tried costs one Cholesky factorisation (a penalty too small to lift eigenvalues that
rounding left below zero falls back to one eigendecomposition, clamped as the reference is); every
penalty by default, or on request a coarse, then fine scan (:func:`scan_grid`: every 4th factor,
then every factor around the best; 19 of 49, see :func:`fit_ridge` for what it can miss).
``"eigh"``: standardise, one eigendecomposition, every factor from it (:class:`RidgeSpectrum`), the
reference the fast path is tested and benchmarked against (``benchmarks/bench_ridge_head.py``).

Arithmetic is float64 inside the fit, float32 where only the argmax of validation scores is read;
features are read in float32 chunks (float16 caches are fine); BLAS and torch run in
:func:`storage_scaling.threads.library_cap` (at most 2 threads).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import blas

from .. import threads
from .metrics import classification_metrics


def penalty_grid(log10_min: float, log10_max: float, per_decade: int) -> np.ndarray:
    """Relative penalties ``10**k`` for k from ``log10_min`` to ``log10_max`` in steps of 1 / ``per_decade``."""
    steps = int(round((log10_max - log10_min) * per_decade)) + 1
    return np.logspace(log10_min, log10_max, max(steps, 0))


def check_features(x, labels, num_classes: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A non-empty float (N, F) array and N integer labels in [0, num_classes), or a ValueError."""
    x = np.asarray(x)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(x) == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what} features must be a non-empty float (N, F) array, got {x.dtype} {x.shape}")
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} labels must be {len(x)} integers, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{what} labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    return x, labels.astype(np.int64)


def _rows(x: np.ndarray, chunk: int = 4096):
    for start in range(0, len(x), chunk):
        yield start, torch.from_numpy(np.ascontiguousarray(x[start:start + chunk], dtype=np.float32))


@dataclass(frozen=True)
class Standardiser:
    """Per-feature mean and scale of the training rows (constant features keep scale 1)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardiser":
        total = np.zeros(x.shape[1])
        squares = np.zeros(x.shape[1])
        for _, rows in _rows(x):
            r = rows.double()
            total += r.sum(0).numpy()
            squares += r.square().sum(0).numpy()
        mean = total / len(x)
        var = np.maximum(squares / len(x) - mean ** 2, 0)
        scale = np.sqrt(var)
        scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0)))] = 1.0
        return cls(mean.astype(np.float32), scale.astype(np.float32))

    def apply(self, rows: torch.Tensor) -> torch.Tensor:
        return (rows - torch.from_numpy(self.mean)) / torch.from_numpy(self.scale)


class RidgeSpectrum:
    """Ridge solutions for every penalty from one eigendecomposition (float64).

    With standardised features X (n x d) and centred targets Y, W(lam) = (X^T X + lam I)^-1 X^T Y.
    For n >= d it diagonalises the Gram X^T X = V S V^T, W = V (V^T X^T Y) / (S + lam); for n < d
    the kernel X X^T = U S U^T, W = X^T U (U^T Y) / (S + lam) (the same matrix, a smaller eigh).
    ``mean_eigenvalue`` = trace / d scales the relative penalty grid.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, standardiser: Standardiser):
        n, d = x.shape
        self.standardiser = standardiser
        self.primal = n >= d
        if self.primal:
            gram = torch.zeros(d, d, dtype=torch.float64)
            xty = torch.zeros(d, y.shape[1], dtype=torch.float64)
            for start, rows in _rows(x):
                s = standardiser.apply(rows)
                gram += (s.T @ s).double()
                xty += s.double().T @ torch.from_numpy(y[start:start + len(s)])
            self.values, self.vectors = torch.linalg.eigh(gram)
            self.coef = self.vectors.T @ xty  # (d, C)
            self.x_std = None
        else:
            self.x_std = torch.cat([standardiser.apply(rows) for _, rows in _rows(x)]).double()
            self.values, self.vectors = torch.linalg.eigh(self.x_std @ self.x_std.T)
            self.coef = self.vectors.T @ torch.from_numpy(y)  # (n, C)
        self.values = self.values.clamp_min(0)
        self.mean_eigenvalue = float(self.values.sum()) / d

    def project(self, x: np.ndarray) -> torch.Tensor:
        """Rows of new features in the eigenbasis: predictions are project(x) @ (coef / (S + lam))."""
        parts = []
        for _, rows in _rows(x):
            s = self.standardiser.apply(rows).double()
            parts.append(s @ self.vectors if self.primal else (s @ self.x_std.T) @ self.vectors)
        return torch.cat(parts)

    def weights(self, penalty: float) -> np.ndarray:
        """W(lam) (d, C) on standardised features."""
        scaled = self.coef / (self.values + penalty)[:, None]
        w = self.vectors @ scaled if self.primal else self.x_std.T @ (self.vectors @ scaled)
        return w.numpy()


@dataclass
class RidgeHead:
    """A fitted one-vs-rest ridge classifier with the validation curve that chose its penalty.

    The field names are the keys under which fitted models are saved (``ridge.weights``, ...).
    """

    weights: np.ndarray  # (F, C) on raw features (standardisation folded in)
    bias: np.ndarray  # (C,)
    penalty: float
    penalty_factor: float  # penalty / mean Gram eigenvalue
    factors: np.ndarray  # the relative grid
    val_errors: np.ndarray  # validation error at each grid point (NaN: not tried, see scan_grid)
    at_edge: str  # "low", "high", "both" or "": the best penalties include the grid's smallest / largest
    form: str  # "gram" (n >= d) or "kernel" (n < d)

    def scores(self, x) -> np.ndarray:
        out = np.empty((len(x), len(self.bias)), dtype=np.float32)
        w = torch.from_numpy(self.weights.astype(np.float32))
        with threads.library_cap(), torch.no_grad():
            for start, rows in _rows(np.asarray(x)):
                out[start:start + len(rows)] = (rows @ w).numpy() + self.bias
        return out

    def predict(self, x) -> np.ndarray:
        return self.scores(x).argmax(1)

    def evaluate(self, x, labels) -> dict:
        return classification_metrics(self.predict(x), labels, len(self.bias))

    def val_error_at(self, factor: float) -> float:
        """The validation error at the tried factor nearest ``factor``."""
        tried = np.flatnonzero(np.isfinite(self.val_errors))
        return float(self.val_errors[tried[np.argmin(np.abs(np.log(self.factors[tried] / factor)))]])

    def summary(self) -> dict:
        """Flat facts about the penalty search for a result row."""
        best = int(np.nanargmin(self.val_errors))
        return {
            "penalty": float(self.penalty),
            "penalty_factor": float(self.penalty_factor),
            "penalty_at_edge": self.at_edge,
            "val_error": float(self.val_errors[best]),
            "val_error_low_end": float(self.val_errors[0]),
            "val_error_high_end": float(self.val_errors[-1]),
            "penalties_tried": int(np.isfinite(self.val_errors).sum()),
            "ridge_form": self.form,
        }


METHODS = ("cholesky", "eigh")
COARSE_EVERY = 4  # a long grid is scanned at every 4th factor first, then at every factor near the best
COARSE_FROM = 4 * COARSE_EVERY  # grids shorter than this are scanned exhaustively (little to save)


@dataclass
class GramStats:
    """What the ridge needs of its training rows, gathered in one pass: the count, a shift ``c``
    (the first chunk's mean, so the sums do not cancel), the sums of x - c, the upper triangle of
    the sum of (x - c)(x - c)^T (``gram``; None when not gathered) and per class the count and the
    sum of x - c. Float64 throughout: a Gram matrix rounded in float32 is not positive definite
    to the smallest penalties of the grid (1e-7 of its mean eigenvalue)."""

    n: int
    shift: np.ndarray  # (d,)
    sums: np.ndarray  # (d,)
    gram: np.ndarray | None  # (d, d), upper triangle
    class_sums: np.ndarray  # (C, d)
    class_counts: np.ndarray  # (C,)

    @classmethod
    def of(cls, x: np.ndarray, labels: np.ndarray, num_classes: int, with_gram: bool = True,
           shift: np.ndarray | None = None) -> "GramStats":
        d = x.shape[1]
        if shift is None:
            shift = np.asarray(x[: min(len(x), 4096)], dtype=np.float64).mean(0)
        sums, class_sums = np.zeros(d), np.zeros((num_classes, d))
        gram = np.zeros((d, d)) if with_gram else None
        for start, rows in _rows(x):
            a = rows.numpy().astype(np.float64) - shift
            sums += a.sum(0)
            class_sums += np.eye(num_classes)[labels[start:start + len(a)]].T @ a
            if with_gram:
                gram += blas.dsyrk(1.0, a, trans=1)  # upper triangle of a^T a: half a matrix product
        return cls(len(x), shift, sums, gram, class_sums,
                   np.bincount(labels, minlength=num_classes).astype(np.float64))

    def plus(self, other: "GramStats") -> "GramStats":
        """The statistics of both sets of rows (gathered with the same shift)."""
        if not np.array_equal(self.shift, other.shift) or (self.gram is None) != (other.gram is None):
            raise ValueError("statistics add up only when gathered with the same shift, both with a Gram or neither")
        return GramStats(self.n + other.n, self.shift, self.sums + other.sums,
                         None if self.gram is None else self.gram + other.gram, self.class_sums + other.class_sums,
                         self.class_counts + other.class_counts)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.shift, self.sums, self.class_sums, self.class_counts)) + \
            (0 if self.gram is None else self.gram.nbytes)

    def mean(self) -> np.ndarray:
        return self.shift + self.sums / self.n

    def centred_gram(self) -> np.ndarray:
        """The full sum of (x - mean)(x - mean)^T."""
        upper = np.triu(self.gram)
        return upper + np.triu(upper, 1).T - np.outer(self.sums, self.sums) / self.n

    def scale(self, centred: np.ndarray | None = None, variance: np.ndarray | None = None) -> np.ndarray:
        """Population standard deviations; constant features keep scale 1 (as :class:`Standardiser`)."""
        var = np.diag(centred) / self.n if variance is None else variance
        scale = np.sqrt(np.maximum(var, 0))
        scale[scale <= 1e-12 * max(1.0, float(np.abs(self.mean()).max(initial=0)))] = 1.0
        return scale

    def y_mean(self) -> np.ndarray:
        return self.class_counts / self.n

    def centred_xty(self) -> np.ndarray:
        """sum of (x - mean)(y - y_mean)^T for one-hot y: (d, C)."""
        return self.class_sums.T - np.outer(self.sums, self.y_mean())


class SubsetStats:
    """The statistics of a few row subsets of feature files, kept in memory (least recently used
    first out, within ``budget_bytes``): a fit on rows that hold a kept subset of the same file
    gathers only the rows it adds. The grid's subsets are nested, so its runs on one stored
    format and seed read each row once instead of once per subset size."""

    def __init__(self, budget_bytes: float = 1e9):  # 12 Gram matrices of the probe's 3,200 features
        self.budget_bytes = budget_bytes
        self._kept: "OrderedDict[tuple[str, str], tuple[np.ndarray, GramStats]]" = OrderedDict()

    def stats(self, source: str, rows: np.ndarray, x: np.ndarray, labels: np.ndarray,
              num_classes: int) -> GramStats:
        """The statistics (with a Gram) of the training rows ``x`` (``x[i]`` is row ``rows[i]`` of the
        file ``source``) with their ``labels``; a kept subset of another file never counts."""
        rows = np.asarray(rows, dtype=np.int64)
        key = (source, hashlib.sha1(np.sort(rows).tobytes()).hexdigest())
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key][1]
        base = None
        for (kept_source, _), (kept_rows, kept) in self._kept.items():
            if kept_source == source and len(kept_rows) < len(rows) and len(kept.class_counts) == num_classes \
                    and (base is None or len(kept_rows) > len(base[0])) and np.isin(kept_rows, rows).all():
                base = (kept_rows, kept)
        new = np.ones(len(rows), bool) if base is None else ~np.isin(rows, base[0])
        added = GramStats.of(x[new] if base is not None else x, np.asarray(labels)[new], num_classes,
                             shift=None if base is None else base[1].shift)
        stats = added if base is None else base[1].plus(added)
        self._kept[key] = (np.sort(rows), stats)
        while sum(s.nbytes() for _, s in self._kept.values()) > self.budget_bytes and len(self._kept) > 1:
            self._kept.popitem(last=False)
        return stats


SUBSETS = SubsetStats()  # the process's kept statistics (learners pass them to fit_ridge)


def scan_grid(size: int, error_of, exhaustive: bool = False) -> dict[int, float]:
    """Validation errors at indices of a sorted grid of ``size`` factors: every index when
    ``exhaustive`` or the grid is short (< :data:`COARSE_FROM`); else every
    :data:`COARSE_EVERY`-th index and both ends, then every index within that step of the best
    of those (its ties: the middle one). On a U-shaped curve this finds the exhaustive choice; a
    test checks it against the exhaustive scan on realistic curves."""
    errors: dict[int, float] = {}

    def at(indices):
        for i in indices:
            if i not in errors:
                errors[i] = float(error_of(i))

    if exhaustive or size < COARSE_FROM:
        at(range(size))
        return errors
    at(sorted(set(range(0, size, COARSE_EVERY)) | {size - 1}))
    best = choose(errors)
    at(range(max(0, best - COARSE_EVERY + 1), min(size, best + COARSE_EVERY)))
    return errors


def choose(errors: dict[int, float]) -> int:
    """The index with the lowest error; ties (a flat curve on easy data) go to the middle one."""
    low = min(errors.values())
    minimisers = sorted(i for i, e in errors.items() if e == low)
    return minimisers[len(minimisers) // 2]


def _eigh_scan(x_train, onehot, x_val, y_val, factors, exhaustive):
    """The reference: standardise, one eigendecomposition, every penalty from it."""
    y_mean = onehot.mean(0)
    standardiser = Standardiser.fit(x_train)
    spectrum = RidgeSpectrum(x_train, onehot - y_mean, standardiser)
    projected = spectrum.project(x_val)
    penalties = factors * spectrum.mean_eigenvalue
    truth = torch.from_numpy(y_val)

    def error_of(i):
        pred = (projected @ (spectrum.coef / (spectrum.values + penalties[i])[:, None])).argmax(1)
        return (pred != truth).double().mean()

    errors = scan_grid(len(factors), error_of, exhaustive)
    best = choose(errors)
    w_std = spectrum.weights(float(penalties[best]))
    return (errors, best, penalties, w_std, standardiser.mean.astype(np.float64),
            standardiser.scale.astype(np.float64), y_mean, "gram" if spectrum.primal else "kernel")


def _cholesky_scan(x_train, y_train, x_val, y_val, num_classes, factors, exhaustive, stats):
    """One pass of sufficient statistics (none when ``stats`` are given), one Cholesky factorisation
    per penalty tried; the Gram form (d x d) when n >= d, else the kernel form (n x n)."""
    n, d = x_train.shape
    primal = n >= d
    if stats is None or not primal:
        stats = GramStats.of(x_train, y_train, num_classes, with_gram=primal)
    mean, y_mean = stats.mean(), stats.y_mean()
    if primal:
        centred = stats.centred_gram()
        scale = stats.scale(centred)
        system = torch.from_numpy(centred / np.outer(scale, scale))
        rhs = torch.from_numpy(stats.centred_xty() / scale[:, None])
        val = torch.from_numpy(((np.asarray(x_val, dtype=np.float64) - mean) / scale).astype(np.float32))
    else:
        x_std = (np.asarray(x_train, dtype=np.float64) - mean)
        scale = stats.scale(variance=np.mean(x_std ** 2, axis=0))
        x_std = torch.from_numpy(x_std / scale)
        system = x_std @ x_std.T  # the kernel
        rhs = torch.from_numpy(np.eye(num_classes)[y_train] - y_mean)
        val_std = ((np.asarray(x_val, dtype=np.float64) - mean) / scale).astype(np.float32)
        val = torch.from_numpy(val_std) @ x_std.T.float()  # (n_val, n): scores only need their argmax
    penalties = factors * float(system.diagonal().sum()) / d
    truth = torch.from_numpy(y_val)
    solutions: dict[int, torch.Tensor] = {}
    spectrum = []  # the system's eigendecomposition, made only if a penalty is below its rounding error

    def solve(lam):
        shifted = system.clone()
        shifted.diagonal().add_(lam)
        factor, info = torch.linalg.cholesky_ex(shifted)
        if int(info) == 0:
            return torch.cholesky_solve(rhs, factor)
        # not positive definite: rounding left eigenvalues a little below zero, and this penalty
        # does not lift them; clamp them to zero as the eigendecomposition path does
        if not spectrum:
            values, vectors = torch.linalg.eigh(system)
            spectrum.extend((values.clamp_min(0), vectors, vectors.T @ rhs))
        values, vectors, coef = spectrum
        return vectors @ (coef / (values + lam)[:, None])

    def error_of(i):
        solutions[i] = solve(float(penalties[i]))
        pred = (val @ solutions[i].to(val.dtype)).argmax(1)
        return (pred != truth).double().mean()

    errors = scan_grid(len(factors), error_of, exhaustive)
    best = choose(errors)
    w_std = (solutions[best] if primal else x_std.T @ solutions[best]).numpy()
    return errors, best, penalties, w_std, mean, scale, y_mean, "gram" if primal else "kernel"


def fit_ridge(x_train, y_train, x_val, y_val, num_classes: int, factors, method: str = "cholesky",
              exhaustive: bool = True, stats: GramStats | None = None) -> RidgeHead:
    """Ridge on one-hot targets; the penalty with the lowest validation error wins.

    Ties (a flat curve on easy data) go to the middle of the tied run; ``at_edge`` says when the
    best penalties include an end of the grid ("low", "high" or "both"): the optimum may lie beyond.
    ``method`` (:data:`METHODS`) changes the work, not the answer. ``exhaustive=False`` scores a
    long grid coarse, then fine (:func:`scan_grid`): 19 of 49 penalties, and on a nearly flat curve
    it can miss a narrow dip between coarse points (CIFAR-10's probe, n = 32,000: a penalty three
    decades from the exhaustive choice, 6 of 10,000 validation images apart), so every penalty is
    scored unless asked.
    ``stats``: the training rows' :class:`GramStats`, already gathered (:data:`SUBSETS`); checked
    against the rows' count, width and labels, and used by the Cholesky path's Gram form.

    Only training rows set the standardisation, the system and the weights; the validation rows
    only score the grid. There is no test argument: the test set cannot leak.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2")
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    x_train, y_train = check_features(x_train, y_train, num_classes, "training")
    x_val, y_val = check_features(x_val, y_val, num_classes, "validation")
    if x_val.shape[1] != x_train.shape[1]:
        raise ValueError(f"validation features have {x_val.shape[1]} columns, training features {x_train.shape[1]}")
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 1 or len(factors) == 0 or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise ValueError("the penalty grid must be a non-empty list of positive numbers")
    factors = np.sort(factors)
    if stats is not None and (stats.n != len(x_train) or stats.sums.shape != (x_train.shape[1],) or stats.gram is None
                              or not np.array_equal(stats.class_counts, np.bincount(y_train, minlength=num_classes))):
        raise ValueError(f"stats of {stats.n} rows x {stats.sums.shape[0]} features are not the statistics of these "
                         f"{len(x_train)} x {x_train.shape[1]} training features and labels")
    with threads.library_cap(), torch.no_grad():
        with threads.limit(blas=torch.get_num_threads()):  # the rank-k updates: as many threads as torch
            if method == "eigh":
                fitted = _eigh_scan(x_train, np.eye(num_classes)[y_train], x_val, y_val, factors, exhaustive)
            else:
                fitted = _cholesky_scan(x_train, y_train, x_val, y_val, num_classes, factors, exhaustive, stats)
    errors, best, penalties, w_std, mean, scale, y_mean, form = fitted
    weights = w_std / scale[:, None]
    bias = y_mean - mean @ weights
    curve = np.full(len(factors), np.nan)
    curve[list(errors)] = list(errors.values())
    minimisers = [i for i, e in errors.items() if e == errors[best]]
    low, high = len(factors) > 1 and 0 in minimisers, len(factors) > 1 and len(factors) - 1 in minimisers
    at_edge = "both" if low and high else "low" if low else "high" if high else ""
    return RidgeHead(np.ascontiguousarray(weights, dtype=np.float32), bias.astype(np.float32), float(penalties[best]),
                     float(factors[best]), factors, curve, at_edge, form)
