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

Every penalty comes from one eigendecomposition of the standardised system (:class:`RidgeSpectrum`):
W(lam) = V (V^T X^T Y) / (S + lam), and the validation rows, projected on V once, are scored for
16 penalties at a time in one matrix product. Two ways to the same answers (``method``):
``"fast"`` (the default) builds the Gram form from the training rows' sufficient statistics
(:class:`GramStats`: one pass of float64 products; kept for nested subsets by :data:`SUBSETS`, so a
grid's runs on one stored format read each row once) and scores in float32; ``"reference"`` is the
head as it was before the speed issue (standardise the rows, float64 scores), which the fast path
is tested and benchmarked against (``benchmarks/bench_ridge_head.py``). Every penalty is scored by
default; on request a coarse, then fine scan (:func:`scan_grid`: every 4th factor, then every factor around the best; 19
of 49, see :func:`fit_ridge` for what it can miss).

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
    Eigenvalues that rounding left below zero are clamped to zero; ``mean_eigenvalue`` = trace / d
    scales the relative penalty grid. Two ways in: :meth:`of_rows` (standardise the rows; float32
    products accumulated in float64) and :meth:`of_stats` (from :class:`GramStats`, Gram form).
    ``mean``, ``scale`` and ``y_mean`` are the standardisation and target means it was built with.
    """

    def __init__(self, system: torch.Tensor, rhs: torch.Tensor, x_std: torch.Tensor | None, standardise,
                 mean: np.ndarray, scale: np.ndarray, y_mean: np.ndarray):
        self.primal = x_std is None
        self.x_std = x_std  # the standardised training rows (kernel form only)
        self.standardise = standardise  # float32 rows (torch) -> standardised rows
        self.mean, self.scale, self.y_mean = mean, scale, y_mean
        values, self.vectors = torch.linalg.eigh(system)
        self.values = values.clamp_min(0)
        self.coef = self.vectors.T @ rhs  # (d or n, C)
        self.mean_eigenvalue = float(self.values.sum()) / len(mean)

    @classmethod
    def of_rows(cls, x: np.ndarray, onehot: np.ndarray) -> "RidgeSpectrum":
        """From the training rows and their one-hot targets, standardised by :class:`Standardiser`."""
        n, d = x.shape
        standardiser = Standardiser.fit(x)
        y_mean = onehot.mean(0)
        y = onehot - y_mean
        facts = (standardiser.apply, standardiser.mean.astype(np.float64), standardiser.scale.astype(np.float64), y_mean)
        if n < d:
            x_std = torch.cat([standardiser.apply(rows) for _, rows in _rows(x)]).double()
            return cls(x_std @ x_std.T, torch.from_numpy(y), x_std, *facts)
        gram = torch.zeros(d, d, dtype=torch.float64)
        xty = torch.zeros(d, y.shape[1], dtype=torch.float64)
        for start, rows in _rows(x):
            s = standardiser.apply(rows)
            gram += (s.T @ s).double()
            xty += s.double().T @ torch.from_numpy(y[start:start + len(s)])
        return cls(gram, xty, None, *facts)

    @classmethod
    def of_stats(cls, stats: "GramStats") -> "RidgeSpectrum":
        """From the training rows' statistics (with their Gram): standardised in float64 with their
        mean and :meth:`GramStats.scale`, no row read again."""
        mean, centred = stats.mean(), stats.centred_gram()
        scale = stats.scale(centred)
        shift, divide = torch.from_numpy(mean), torch.from_numpy(scale)
        return cls(torch.from_numpy(centred / np.outer(scale, scale)),
                   torch.from_numpy(stats.centred_xty() / scale[:, None]), None,
                   lambda rows: ((rows.double() - shift) / divide), mean, scale, stats.y_mean())

    def project(self, x: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Rows of new features in the eigenbasis, in ``dtype``: predictions are
        project(x) @ (coef / (S + lam)) plus the target means."""
        vectors = self.vectors.to(dtype)
        kernel = None if self.primal else self.x_std.T.to(dtype)
        parts = []
        for _, rows in _rows(x):
            s = self.standardise(rows).to(dtype)
            parts.append(s @ vectors if self.primal else (s @ kernel) @ vectors)
        return torch.cat(parts)

    def val_errors(self, projected: torch.Tensor, penalties: np.ndarray, truth: torch.Tensor,
                   chunk: int = 16) -> list[float]:
        """Validation error at each penalty: the share of rows whose highest score is not their
        class. Penalties go ``chunk`` at a time through one matrix product (the scoring's arithmetic
        is ``projected``'s dtype: float32 where only the argmax is read)."""
        out = []
        for start in range(0, len(penalties), chunk):
            lams = torch.as_tensor(penalties[start:start + chunk], dtype=torch.float64)
            scaled = self.coef[:, None, :] / (self.values[:, None] + lams)[:, :, None]  # (k, m, C)
            scores = projected @ scaled.reshape(len(self.values), -1).to(projected.dtype)
            pred = scores.view(len(projected), len(lams), -1).argmax(2)
            out.extend((pred != truth[:, None]).double().mean(0).tolist())
        return out

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


METHODS = ("fast", "reference")  # see _spectrum
COARSE_EVERY = 4  # a long grid is scanned at every 4th factor first, then at every factor near the best
COARSE_FROM = 4 * COARSE_EVERY  # grids shorter than this are scanned exhaustively (little to save)


@dataclass
class GramStats:
    """What the ridge needs of its training rows, gathered in one pass: the count, a shift ``c``
    (the first chunk's mean, so the sums do not cancel), the sums of x - c, the sum of
    (x - c)(x - c)^T (``gram``) and per class the count and the sum of x - c. Float64
    throughout: a Gram matrix rounded in float32 moves the curve at the smallest penalties of the
    grid (1e-7 of its mean eigenvalue; a test pins it)."""

    n: int
    shift: np.ndarray  # (d,)
    sums: np.ndarray  # (d,)
    gram: np.ndarray  # (d, d)
    class_sums: np.ndarray  # (C, d)
    class_counts: np.ndarray  # (C,)

    @classmethod
    def of(cls, x: np.ndarray, labels: np.ndarray, num_classes: int, shift: np.ndarray | None = None) -> "GramStats":
        d = x.shape[1]
        if shift is None:
            shift = np.asarray(x[: min(len(x), 4096)], dtype=np.float64).mean(0)
        sums, class_sums = np.zeros(d), np.zeros((num_classes, d))
        gram = np.zeros((d, d))
        for start, rows in _rows(x):
            a = rows.numpy().astype(np.float64) - shift
            sums += a.sum(0)
            class_sums += np.eye(num_classes)[labels[start:start + len(a)]].T @ a
            gram += a.T @ a  # numpy makes this a symmetric rank-k update (half a matrix product)
        return cls(len(x), shift, sums, gram, class_sums,
                   np.bincount(labels, minlength=num_classes).astype(np.float64))

    def plus(self, other: "GramStats") -> "GramStats":
        """The statistics of both sets of rows (gathered with the same shift)."""
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("statistics add up only when gathered with the same shift")
        return GramStats(self.n + other.n, self.shift, self.sums + other.sums,
                         self.gram + other.gram, self.class_sums + other.class_sums,
                         self.class_counts + other.class_counts)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.shift, self.sums, self.gram, self.class_sums, self.class_counts))

    def mean(self) -> np.ndarray:
        return self.shift + self.sums / self.n

    def centred_gram(self) -> np.ndarray:
        """The full sum of (x - mean)(x - mean)^T."""
        return self.gram - np.outer(self.sums, self.sums) / self.n

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


def scan_grid(size: int, errors_of, exhaustive: bool = False) -> dict[int, float]:
    """Validation errors at indices of a sorted grid of ``size`` factors (``errors_of(indices)``
    gives them for a list of indices at once): every index when ``exhaustive`` or the grid is short
    (< :data:`COARSE_FROM`); else every :data:`COARSE_EVERY`-th index and both ends, then every
    index within that step of the best of those (its ties: the middle one). On a U-shaped curve
    this finds the exhaustive choice; a test checks it against the exhaustive scan on realistic
    curves."""
    errors: dict[int, float] = {}

    def at(indices):
        todo = [i for i in indices if i not in errors]
        if todo:
            errors.update(zip(todo, map(float, errors_of(todo))))

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


def _spectrum(method, x_train, y_train, num_classes, stats) -> tuple[RidgeSpectrum, torch.dtype]:
    """``"reference"``: the head as it was before the speed issue (standardise the rows, float64
    scores). ``"fast"``: the Gram form from the rows' statistics (``stats``, or one pass gathering
    them), float32 scores; the kernel form (n < d, a small system) is built from the rows."""
    n, d = x_train.shape
    if method == "fast" and n >= d:
        return RidgeSpectrum.of_stats(stats if stats is not None else GramStats.of(x_train, y_train, num_classes)), \
            torch.float32
    spectrum = RidgeSpectrum.of_rows(x_train, np.eye(num_classes)[y_train])
    return spectrum, torch.float64 if method == "reference" else torch.float32


def fit_ridge(x_train, y_train, x_val, y_val, num_classes: int, factors, method: str = "fast",
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
    against the rows' count, width and labels, and used by the fast path's Gram form.

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
    if stats is not None and (stats.n != len(x_train) or stats.sums.shape != (x_train.shape[1],)
                              or not np.array_equal(stats.class_counts, np.bincount(y_train, minlength=num_classes))):
        raise ValueError(f"stats of {stats.n} rows x {stats.sums.shape[0]} features are not the statistics of these "
                         f"{len(x_train)} x {x_train.shape[1]} training features and labels")
    with threads.library_cap(), torch.no_grad():
        with threads.limit(blas=torch.get_num_threads()):  # numpy's products in the statistics: as many threads as torch
            spectrum, dtype = _spectrum(method, x_train, y_train, num_classes, stats)
        projected = spectrum.project(x_val, dtype)
        penalties = factors * spectrum.mean_eigenvalue
        truth = torch.from_numpy(y_val)
        errors = scan_grid(len(factors), lambda indices: spectrum.val_errors(projected, penalties[indices], truth),
                           exhaustive)
        best = choose(errors)
        w_std = spectrum.weights(float(penalties[best]))
    mean, scale, y_mean = spectrum.mean, spectrum.scale, spectrum.y_mean
    form = "gram" if spectrum.primal else "kernel"
    weights = w_std / scale[:, None]
    bias = y_mean - mean @ weights
    curve = np.full(len(factors), np.nan)
    curve[list(errors)] = list(errors.values())
    minimisers = [i for i, e in errors.items() if e == errors[best]]
    low, high = len(factors) > 1 and 0 in minimisers, len(factors) > 1 and len(factors) - 1 in minimisers
    at_edge = "both" if low and high else "low" if low else "high" if high else ""
    return RidgeHead(np.ascontiguousarray(weights, dtype=np.float32), bias.astype(np.float32), float(penalties[best]),
                     float(factors[best]), factors, curve, at_edge, form)
