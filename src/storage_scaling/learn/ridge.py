"""The ridge head: a linear classifier on fixed features, its penalty chosen on a validation split.

Every model here that puts a linear classifier on features it does not train uses this head (the
k-means probe of :mod:`.probe` today, frozen network features next):

* features are standardised with the training rows' mean and scale (:class:`Standardiser`);
* the classifier is least squares one-vs-rest on one-hot targets with an L2 penalty,
  W(lam) = (X^T X + lam I)^-1 X^T Y on standardised X and centred Y, the bias folding the
  standardisation and the target means back in;
* the penalty is ``factor * trace(X^T X) / d`` (the mean eigenvalue of the Gram matrix, i.e. n for
  standardised features) for every factor of a log-spaced grid (:func:`penalty_grid`), all from one
  eigendecomposition (:class:`RidgeSpectrum`), and the factor with the lowest error on the
  validation split wins (:func:`fit_ridge`). There is no test argument: the test set cannot leak.

Arithmetic is float64 inside the fit; features are read in float32 chunks (float16 caches are fine)
and torch runs in :func:`storage_scaling.threads.library_cap` (at most 2 threads).
"""

from __future__ import annotations

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
    factors: np.ndarray  # the relative grid tried
    val_errors: np.ndarray  # validation error at each grid point
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
        return float(self.val_errors[int(np.argmin(np.abs(np.log(self.factors / factor))))])

    def summary(self) -> dict:
        """Flat facts about the penalty search for a result row."""
        best = int(np.argmin(self.val_errors))
        return {
            "penalty": float(self.penalty),
            "penalty_factor": float(self.penalty_factor),
            "penalty_at_edge": self.at_edge,
            "val_error": float(self.val_errors[best]),
            "val_error_low_end": float(self.val_errors[0]),
            "val_error_high_end": float(self.val_errors[-1]),
            "penalties_tried": int(len(self.factors)),
            "ridge_form": self.form,
        }


def fit_ridge(x_train, y_train, x_val, y_val, num_classes: int, factors) -> RidgeHead:
    """Ridge on one-hot targets; the penalty with the lowest validation error wins.

    Ties (a flat curve on easy data) go to the middle of the tied run; ``at_edge`` says when the
    best penalties include an end of the grid ("low", "high" or "both"): the optimum may lie beyond.

    Only training rows set the standardisation, the eigendecomposition and the weights; the
    validation rows only score the grid. There is no test argument: the test set cannot leak.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2")
    x_train, y_train = check_features(x_train, y_train, num_classes, "training")
    x_val, y_val = check_features(x_val, y_val, num_classes, "validation")
    if x_val.shape[1] != x_train.shape[1]:
        raise ValueError(f"validation features have {x_val.shape[1]} columns, training features {x_train.shape[1]}")
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 1 or len(factors) == 0 or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
        raise ValueError("the penalty grid must be a non-empty list of positive numbers")
    factors = np.sort(factors)
    onehot = np.eye(num_classes)[y_train]
    y_mean = onehot.mean(0)
    with threads.library_cap(), torch.no_grad():
        standardiser = Standardiser.fit(x_train)
        spectrum = RidgeSpectrum(x_train, onehot - y_mean, standardiser)
        projected = spectrum.project(x_val)
        penalties = factors * spectrum.mean_eigenvalue
        truth = torch.from_numpy(y_val)
        errors = np.empty(len(penalties))
        for i, lam in enumerate(penalties):
            pred = (projected @ (spectrum.coef / (spectrum.values + lam)[:, None])).argmax(1)
            errors[i] = float((pred != truth).double().mean())
        minimisers = np.flatnonzero(errors == errors.min())
        best = int(minimisers[len(minimisers) // 2])  # ties (flat curves on easy data): the middle one
        w_std = spectrum.weights(float(penalties[best]))
    weights = w_std / standardiser.scale[:, None].astype(np.float64)
    bias = y_mean - standardiser.mean.astype(np.float64) @ weights
    low, high = len(errors) > 1 and minimisers[0] == 0, len(errors) > 1 and minimisers[-1] == len(errors) - 1
    at_edge = "both" if low and high else "low" if low else "high" if high else ""
    return RidgeHead(weights.astype(np.float32), bias.astype(np.float32), float(penalties[best]),
                     float(factors[best]), factors, errors, at_edge, "gram" if spectrum.primal else "kernel")
