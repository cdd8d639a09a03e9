"""The storage scaling law, its storage-optimal allocation, and how to fit it honestly.

The law (Mentzer & Montanari 2024) models the test error of a model trained on ``n`` images
stored at ``L`` bytes per image as

    Err(n, L) = E + A n^-alpha + B L^-beta .

Under a storage budget ``s = n L`` the optimum is available in closed form:

    L*(s) = C s^(alpha/(alpha+beta)),  n*(s) = s / L*(s) = C^-1 s^(beta/(alpha+beta)),
    C = (beta B / (alpha A))^(1/(alpha+beta)),
    Err*(s) = E + C_E s^-nu,  nu = alpha beta / (alpha+beta),
    C_E = A (alpha+beta)/beta (beta B / (alpha A))^(alpha/(alpha+beta)),

whereas keeping every image at a fixed size ``L`` (original format, or one fixed codec
distance) gives ``E + A (s/L)^-alpha + B L^-beta``, which saturates at ``E + B L^-beta``.

Two fitters:

* :func:`fit_paper` is the authors' procedure: ``scipy.optimize.curve_fit`` on the error in
  linear space, every parameter bounded to ``[0, inf)``, with or without the floor ``E``.
* :func:`fit_robust` follows Hoffmann et al. (2022, approach 3): a Huber loss (delta 1e-3) on
  ``log Err`` against ``LSE(a - alpha log n, b - beta log L[, e])``, L-BFGS-B from a grid of
  starting points, best kept; convergence is asserted (optimizer status and projected gradient)
  and parameters that end on a bound (``E = 0``) are reported, not hidden.

Uncertainty comes from :func:`bootstrap` (resampling runs, percentile intervals for every
parameter and for ``n*``, ``L*``, ``nu`` and the optimal error at given budgets, with the pool cap
``n_max`` applied in every resample) and validity from :func:`extrapolation_check` (fit on the
smaller ``n`` or ``L``, predict the held-out largest). :func:`choose_form` fits the law with and
without the floor and keeps the lower BIC; :func:`identification_notes` names parameters the data
cannot pin down. :func:`select_sizes` takes one dataset and one scheme of a compression table for
the size curve of the storage calculator.

The published constants of the paper are at the bottom of this module (``PAPER_*``): they are
inputs copied from the authors' code (see ``../shared/reference/paper-facts.md``), not results
of this package. Only numpy, scipy and pandas are imported, so a reader can fit a CSV anywhere.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

PARAMETERS = ("E", "A", "alpha", "B", "beta")
HUBER_DELTA = 1e-3


class ConvergenceError(RuntimeError):
    """A fit whose optimizer did not converge: no numbers are returned."""


# --------------------------------------------------------------------------------------------
# The law and its closed forms
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LawParams:
    """Parameters of ``Err = E + A n^-alpha + B L^-beta`` (``L`` in the unit of the data, bytes)."""

    A: float
    alpha: float
    B: float
    beta: float
    E: float = 0.0

    def __post_init__(self):
        for name in PARAMETERS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
                raise ValueError(f"law parameter {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"law parameter {name} must be >= 0, got {value!r}")

    # -- the law -------------------------------------------------------------------------------
    def error(self, n, L):
        """Predicted error at ``n`` images of ``L`` bytes each (arrays broadcast)."""
        n = np.asarray(n, dtype=float)
        L = np.asarray(L, dtype=float)
        return self.E + self.A * n ** (-self.alpha) + self.B * L ** (-self.beta)

    def _require_interior(self):
        bad = [k for k in ("A", "alpha", "B", "beta") if getattr(self, k) <= 0]
        if bad:
            raise ValueError(f"the optimal allocation needs A, alpha, B, beta > 0; {bad} are 0 "
                             "(a parameter on its bound: the law has no interior optimum)")

    def _log_C(self) -> tuple[float, float]:
        """(log C, log C_E), computed in log space so that no power can overflow."""
        self._require_interior()
        a, b = float(self.alpha), float(self.beta)
        log_C = (math.log(b) + math.log(self.B) - math.log(a) - math.log(self.A)) / (a + b)
        log_CE = math.log(self.A) + math.log(a + b) - math.log(b) + a * log_C
        return log_C, log_CE

    def closed_form_problem(self) -> str:
        """Why the storage-optimal closed forms (C, C_E, n*, L*, Err*) are not numbers for these
        parameters ("" when they are): an exponent or amplitude at (or within rounding of) 0 makes
        ``C = (beta B / (alpha A))^(1/(alpha+beta))`` overflow, as for a fit to a flat metric."""
        try:
            log_C, log_CE = self._log_C()
        except ValueError as exc:
            return str(exc)
        if abs(log_C) <= _LOG_LIMIT and abs(log_CE) <= _LOG_LIMIT:
            return ""
        return (f"the optimal allocation is not defined: C = (beta B / (alpha A))^(1/(alpha+beta)) = "
                f"e^{log_C:.3g} (C_E = e^{log_CE:.3g}) is beyond floating point for A = {self.A:.3g}, "
                f"alpha = {self.alpha:.3g}, B = {self.B:.3g}, beta = {self.beta:.3g}: an exponent or "
                "amplitude near 0 (n or L barely changes the error) leaves the law without an interior "
                "optimum")

    def _require_closed_forms(self) -> tuple[float, float]:
        problem = self.closed_form_problem()
        if problem:
            raise ValueError(problem)
        return self._log_C()

    # -- closed forms --------------------------------------------------------------------------
    @property
    def nu(self) -> float:
        """Exponent of the optimal error decay, alpha beta / (alpha + beta)."""
        self._require_interior()
        return self.alpha * self.beta / (self.alpha + self.beta)

    @property
    def L_exponent(self) -> float:
        """L*(s) grows as s to this power, alpha / (alpha + beta)."""
        self._require_exponents()
        return self.alpha / (self.alpha + self.beta)

    @property
    def n_exponent(self) -> float:
        """n*(s) grows as s to this power, beta / (alpha + beta)."""
        self._require_exponents()
        return self.beta / (self.alpha + self.beta)

    def _require_exponents(self):
        if not self.alpha + self.beta > 0:
            raise ValueError("the optimal allocation needs alpha + beta > 0; both exponents are 0 (n and L "
                             "do not change the error: the law has no optimum)")

    @property
    def C(self) -> float:
        """L*(s) = C s^(alpha/(alpha+beta)); C = (beta B / (alpha A))^(1/(alpha+beta)).

        Raises ValueError (never OverflowError) when it is not a number (:meth:`closed_form_problem`)."""
        return math.exp(self._require_closed_forms()[0])

    @property
    def C_E(self) -> float:
        """Err*(s) = E + C_E s^-nu."""
        return math.exp(self._require_closed_forms()[1])

    def L_star(self, s):
        """Storage-optimal bytes per image at budget ``s`` bytes."""
        s = _positive_budget(s)
        return self._finite("L*", self.C * s ** self.L_exponent, s)

    def n_star(self, s):
        """Storage-optimal number of images at budget ``s`` bytes (not rounded)."""
        s = _positive_budget(s)
        return self._finite("n*", s ** self.n_exponent / self.C, s)

    def optimal_error(self, s):
        """E + C_E s^-nu: the error of the storage-optimal allocation."""
        s = _positive_budget(s)
        return self._finite("the optimal error", self.E + self.C_E * s ** (-self.nu), s)

    def _finite(self, what: str, value, s):
        """``value`` when every entry is a finite positive number, else a ValueError saying why."""
        if np.all(np.isfinite(value)) and np.all(np.asarray(value) > 0):
            return value
        raise ValueError(f"{what} at budget {s!r} bytes is not a finite positive number for A = {self.A:.3g}, "
                         f"alpha = {self.alpha:.3g}, B = {self.B:.3g}, beta = {self.beta:.3g}: the law "
                         "has no usable optimum there (an exponent or amplitude near 0)")

    def fixed_size_error(self, s, L, n_max: float | None = None):
        """Error when every image is kept at ``L`` bytes: n = s / L images (capped at ``n_max``,
        the pool size, after which more storage buys nothing)."""
        s = _positive_budget(s)
        if not np.all(np.asarray(L, dtype=float) > 0):
            raise ValueError(f"fixed size L must be > 0 bytes, got {L!r}")
        n = s / np.asarray(L, dtype=float)
        if n_max is not None:
            n = np.minimum(n, float(n_max))
        return self.error(n, L)

    def allocation(self, budgets, n_max: float | None = None) -> pd.DataFrame:
        """Closed-form optimal allocation for each budget (bytes); with ``n_max`` the number of
        images is capped at the pool size and the remaining storage goes into quality."""
        s = np.atleast_1d(_positive_budget(budgets))
        n = self.n_star(s)
        capped = np.zeros(len(s), dtype=bool)
        if n_max is not None:
            capped = n > n_max
            n = np.where(capped, float(n_max), n)
        L = s / n
        return pd.DataFrame({"budget_bytes": s, "n_star": n, "L_star": L,
                             "error_star": self.error(n, L), "pool_capped": capped})

    def as_dict(self) -> dict:
        return {k: float(getattr(self, k)) for k in PARAMETERS}


_LOG_LIMIT = 700.0  # e^700 ~ 1e304: a closed-form constant beyond it is not a float


def _positive_budget(s):
    arr = np.asarray(s, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"storage budget s must be positive finite bytes, got {s!r}")
    return arr if arr.ndim else float(arr)


def numerical_optimum(law: LawParams, s: float) -> tuple[float, float, float]:
    """Direct minimisation of Err(n, s/n) over n (bounded scalar search in log n): the
    cross-check of the closed forms. Returns (n, L, error)."""
    s = float(_positive_budget(s))

    def f(log_n):
        n = math.exp(log_n)
        return float(law.error(n, s / n))

    res = optimize.minimize_scalar(f, bounds=(0.0, math.log(s)), method="bounded",
                                   options={"xatol": 1e-12, "maxiter": 2000})
    n = math.exp(res.x)
    return n, s / n, float(res.fun)


# --------------------------------------------------------------------------------------------
# Data: validation before any fitting
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LawData:
    """Validated observations: one entry per run (cell repeats allowed)."""

    n: np.ndarray
    L: np.ndarray
    err: np.ndarray
    metric: str = "error"

    @property
    def cells(self) -> pd.DataFrame:
        """Mean error per (n, L) cell with the number of runs."""
        frame = pd.DataFrame({"n": self.n, "L": self.L, "err": self.err})
        out = frame.groupby(["n", "L"], as_index=False).agg(err=("err", "mean"), runs=("err", "size"))
        return out

    def subset(self, mask) -> "LawData":
        mask = np.asarray(mask)
        return LawData(self.n[mask], self.L[mask], self.err[mask], self.metric)

    def __len__(self):
        return len(self.err)


def n_parameters(with_floor: bool) -> int:
    return 5 if with_floor else 4


def validate_arrays(n, L, err, *, n_params: int = 4, metric: str = "error", source: str = "") -> LawData:
    """Check observations before fitting; every problem raises a ValueError saying how to fix it
    (``source``, e.g. the CSV file, is named where the problem is in the data themselves)."""
    n = np.asarray(n, dtype=float).ravel()
    L = np.asarray(L, dtype=float).ravel()
    err = np.asarray(err, dtype=float).ravel()
    if not (len(n) == len(L) == len(err)):
        raise ValueError(f"n, L and {metric} must have the same length, got {len(n)}, {len(L)}, {len(err)}")
    if len(err) == 0:
        raise ValueError("no observations: pass at least one row of (n, L, error)")
    for name, arr in (("n", n), ("L", L), (metric, err)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"column {name!r} has {bad.size} missing/non-finite value(s) (first at row "
                             f"{bad[0]}); drop or fill those rows before fitting")
    for name, arr in (("n", n), ("L", L)):
        bad = np.flatnonzero(arr <= 0)
        if bad.size:
            raise ValueError(f"column {name!r} must be > 0 (images per run, bytes per image); row "
                             f"{bad[0]} has {float(arr[bad[0]]):g}")
    bad = np.flatnonzero((err <= 0) | (err > 1))
    if bad.size:
        raise ValueError(f"error metric {metric!r} must lie in (0, 1]; row {bad[0]} has {float(err[bad[0]]):g}. "
                         "Pass an error such as 1 - accuracy (use one_minus / --one-minus for an "
                         "accuracy or F1 column); an error of exactly 0 has no logarithm")
    if len(err) > 1 and float(np.ptp(err)) <= 1e-12 * float(np.max(err)):
        of = f" of {source}" if source else ""
        raise ValueError(f"{metric} is the same ({float(err[0]):g}) in all {len(err)} rows{of}: the law "
                         "cannot be fitted to a flat metric (a model at chance?); check the runs")
    if np.unique(n).size < 2:
        raise ValueError(f"degenerate grid: a single n ({n[0]:g}); the law needs at least two "
                         "training-set sizes to separate A n^-alpha from B L^-beta")
    if np.unique(L).size < 2:
        raise ValueError(f"degenerate grid: a single L ({L[0]:g} bytes); the law needs at least two "
                         "bytes-per-image levels to separate B L^-beta from A n^-alpha")
    cells = len(set(zip(n.tolist(), L.tolist())))
    if cells < n_params:
        raise ValueError(f"{cells} distinct (n, L) cells for {n_params} parameters: a fit needs at "
                         "least as many cells as parameters (add grid points, or drop the floor E)")
    return LawData(n, L, err, metric)


def law_data(data, *, metric: str = "error", n_col: str = "n", L_col: str | None = None,
             one_minus: bool = False, with_floor: bool = False, source: str = "") -> LawData:
    """A validated :class:`LawData` from a frame with columns n, L (or ``mean_bytes``) and the
    metric column (an error in (0, 1]; ``one_minus=True`` turns an accuracy/F1 into one).
    ``source`` (the file the frame came from) is named in the messages about the data's values."""
    if isinstance(data, LawData):
        validate_arrays(data.n, data.L, data.err, n_params=n_parameters(with_floor), metric=data.metric,
                        source=source)
        return data
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame or LawData, got {type(data).__name__}")
    if L_col is None:
        L_col = "L" if "L" in data.columns else "mean_bytes"
    missing = [c for c in (n_col, L_col, metric) if c not in data.columns]
    if missing:
        raise ValueError(f"data lacks column(s) {missing}; it has {list(data.columns)}. Expected n, L "
                         f"(or mean_bytes) and the metric column (choose it with metric=)")
    values = {}
    for col in (n_col, L_col, metric):
        values[col] = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float)
    err = values[metric]
    name = metric
    if one_minus:
        err = 1.0 - err
        name = f"1 - {metric}"
    return validate_arrays(values[n_col], values[L_col], err, n_params=n_parameters(with_floor),
                           metric=name, source=source)


# --------------------------------------------------------------------------------------------
# Fits
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LawFit:
    """A converged fit. ``at_bound`` names parameters that ended on a bound (e.g. ``E`` = 0)."""

    params: LawParams
    method: str  # "paper" or "robust"
    with_floor: bool
    loss: float
    n_points: int
    r2: float
    grad_norm: float
    at_bound: tuple[str, ...] = ()
    stderr: dict | None = None
    n_starts: int = 1
    message: str = ""

    def predict(self, n, L):
        return self.params.error(n, L)

    def fitted_names(self) -> tuple[str, ...]:
        return PARAMETERS if self.with_floor else PARAMETERS[1:]

    def summary(self) -> pd.DataFrame:
        rows = []
        for name in self.fitted_names():
            rows.append({"parameter": name, "value": getattr(self.params, name),
                         "stderr": (self.stderr or {}).get(name, np.nan),
                         "at_bound": name in self.at_bound})
        return pd.DataFrame(rows)


def _r2(y, pred) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


def _vp_starts(n, L, y, w, with_floor: bool, k: int,
               alphas=(0.1, 0.25, 0.5, 1.0, 2.0), betas=(0.1, 0.25, 0.5, 1.0, 2.0),
               floor_fractions=(0.0, 0.3, 0.6, 0.9)):
    """Grid of (alpha, beta[, E]) with the amplitudes solved by non-negative least squares
    (variable projection); returns the ``k`` best as natural parameters (A, alpha, B, beta, E),
    best first, scored by the weighted squared error in log space."""
    fractions = floor_fractions if with_floor else (0.0,)
    y_min = float(y.min())
    sw = np.sqrt(w)
    logy = np.log(y)
    scored = []
    for alpha in alphas:
        na = n ** (-alpha)
        for beta in betas:
            lb = L ** (-beta)
            X = np.column_stack([na, lb]) * sw[:, None]
            for frac in fractions:
                E = frac * y_min
                (A, B), _ = optimize.nnls(X, (y - E) * sw)
                A, B = max(A, 1e-8), max(B, 1e-8)
                pred = E + A * na + B * lb
                score = float(np.sum(w * (np.log(pred) - logy) ** 2))
                scored.append((score, (A, alpha, B, beta, E)))
    scored.sort(key=lambda t: t[0])
    return [p for _, p in scored[:k]]


# ---- robust log-space fit ---------------------------------------------------------------------

_E_MIN = 1e-8
_ROBUST_BOUNDS = [(-50.0, 80.0), (0.0, 10.0), (-50.0, 80.0), (0.0, 10.0), (math.log(_E_MIN), 0.0)]
_ROBUST_NAMES = ("A", "alpha", "B", "beta", "E")  # theta = log A, alpha, log B, beta, log E


def _robust_objective(theta, logn, logL, logy, w, delta, with_floor):
    """Huber loss of log Err against LSE(...), scaled by 1/(delta * sum w), and its gradient."""
    t1 = theta[0] - theta[1] * logn
    t2 = theta[2] - theta[3] * logL
    if with_floor:
        m = np.maximum(np.maximum(t1, t2), theta[4])
        e1, e2, e3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(theta[4] - m)
        tot = e1 + e2 + e3
    else:
        m = np.maximum(t1, t2)
        e1, e2 = np.exp(t1 - m), np.exp(t2 - m)
        tot = e1 + e2
    r = m + np.log(tot) - logy
    absr = np.abs(r)
    h = np.where(absr <= delta, 0.5 * r * r, delta * (absr - 0.5 * delta))
    scale = 1.0 / (delta * w.sum())
    loss = scale * float(np.dot(w, h))
    pw = scale * w * np.clip(r, -delta, delta) / tot
    g1 = pw * e1
    g2 = pw * e2
    grad = [g1.sum(), -np.dot(g1, logn), g2.sum(), -np.dot(g2, logL)]
    if with_floor:
        grad.append(np.dot(pw, e3))
    return loss, np.asarray(grad)


def _projected_grad(theta, grad, bounds, tol=1e-10):
    pg = np.array(grad, dtype=float)
    for i, (lo, hi) in enumerate(bounds):
        if theta[i] <= lo + tol and pg[i] > 0:
            pg[i] = 0.0
        if theta[i] >= hi - tol and pg[i] < 0:
            pg[i] = 0.0
    return pg


def _theta_from_params(p, with_floor):
    A, alpha, B, beta, E = p
    theta = [math.log(max(A, 1e-20)), alpha, math.log(max(B, 1e-20)), beta]
    if with_floor:
        theta.append(math.log(max(E, _E_MIN)))
    bounds = _ROBUST_BOUNDS[: len(theta)]
    return np.clip(theta, [b[0] for b in bounds], [b[1] for b in bounds])


def _lbfgs(theta0, args, with_floor, gtol_accept):
    bounds = _ROBUST_BOUNDS[: 5 if with_floor else 4]
    res = optimize.minimize(_robust_objective, theta0, args=args, jac=True, method="L-BFGS-B",
                            bounds=bounds, options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-11,
                                                    "maxcor": 20})
    # a second pass from the end point clears most line-search stalls near the optimum
    if not res.success or np.max(np.abs(_projected_grad(res.x, res.jac, bounds))) > gtol_accept:
        res2 = optimize.minimize(_robust_objective, res.x, args=args, jac=True, method="L-BFGS-B",
                                 bounds=bounds, options={"maxiter": 5000, "ftol": 1e-15,
                                                         "gtol": 1e-11, "maxcor": 20})
        if res2.fun <= res.fun:
            res = res2
    pg = float(np.max(np.abs(_projected_grad(res.x, res.jac, bounds))))
    ok = bool(res.success) and pg <= gtol_accept
    # L-BFGS-B reports ABNORMAL line-search exits when it cannot decrease the loss any further;
    # accept them only if the projected gradient says the point is stationary
    if not ok and res.status == 2 and pg <= gtol_accept:
        ok = True
    return res, pg, ok


def _robust_at_bound(theta, with_floor, y_min):
    flags = []
    for i, name in enumerate(_ROBUST_NAMES[: len(theta)]):
        lo, hi = _ROBUST_BOUNDS[i]
        if theta[i] <= lo + 1e-6 or theta[i] >= hi - 1e-6:
            flags.append(name)
    if with_floor and "E" not in flags and math.exp(theta[4]) < 1e-4 * y_min:
        flags.append("E")  # drifting to E = 0 (log E -> -inf): the floor is not identified
    return tuple(flags)


def _robust_params(theta, with_floor, at_bound):
    E = 0.0
    if with_floor:
        E = 0.0 if "E" in at_bound else math.exp(theta[4])
    return LawParams(A=math.exp(theta[0]), alpha=float(theta[1]), B=math.exp(theta[2]),
                     beta=float(theta[3]), E=E)


def fit_robust(data, *, with_floor: bool = True, metric: str = "error", delta: float = HUBER_DELTA,
               n_starts: int = 12, starts: Sequence[LawParams] | None = None,
               gtol_accept: float = 1e-6, weights=None, **columns) -> LawFit:
    """Huber fit of log error (Hoffmann et al. 2022, approach 3) from a grid of starts, best kept.

    Every run is one point (repeats are not averaged). Raises :class:`ConvergenceError` when no
    start converges (optimizer status and projected-gradient norm below ``gtol_accept``).
    """
    d = law_data(data, metric=metric, with_floor=with_floor, **columns)
    if not (delta > 0):
        raise ValueError(f"Huber delta must be > 0, got {delta!r}")
    w = np.ones(len(d)) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != (len(d),) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be {len(d)} finite non-negative numbers with a positive sum")
    return _fit_robust_arrays(d, w, with_floor, delta, n_starts, starts, gtol_accept)


def _fit_robust_arrays(d: LawData, w, with_floor, delta, n_starts, starts, gtol_accept,
                       theta_starts=None) -> LawFit:
    logn, logL, logy = np.log(d.n), np.log(d.L), np.log(d.err)
    args = (logn, logL, logy, w, delta, with_floor)
    if theta_starts is None:
        natural = [(p.A, p.alpha, p.B, p.beta, p.E) for p in (starts or [])]
        natural += _vp_starts(d.n, d.L, d.err, w, with_floor, n_starts)
        theta_starts = [_theta_from_params(p, with_floor) for p in natural]
    best = None
    n_ok = 0
    for theta0 in theta_starts:
        res, pg, ok = _lbfgs(np.asarray(theta0, dtype=float), args, with_floor, gtol_accept)
        n_ok += ok
        if best is None or (ok, -res.fun) > (best[2], -best[0].fun):
            best = (res, pg, ok)
    res, pg, ok = best
    if not ok:
        raise ConvergenceError(
            f"robust fit did not converge from {len(theta_starts)} start(s): best loss {res.fun:.4g}, "
            f"projected gradient {pg:.2e} > {gtol_accept:g}, optimizer says {res.message!r}. "
            "Check the data (outliers, too few cells) or relax gtol_accept.")
    at_bound = _robust_at_bound(res.x, with_floor, float(d.err.min()))
    params = _robust_params(res.x, with_floor, at_bound)
    return LawFit(params=params, method="robust", with_floor=with_floor, loss=float(res.fun),
                  n_points=len(d), r2=_r2(d.err, params.error(d.n, d.L)), grad_norm=pg,
                  at_bound=at_bound, n_starts=len(theta_starts), message=str(res.message))


# ---- the paper's linear-space curve_fit ---------------------------------------------------------

def _paper_model(X, a, b, alpha, beta, c=0.0):
    n, L = X
    return a * n ** (-alpha) + b * L ** (-beta) + c


def _paper_model_floor(X, a, b, alpha, beta, c):
    return _paper_model(X, a, b, alpha, beta, c)


def _paper_model_nofloor(X, a, b, alpha, beta):
    return _paper_model(X, a, b, alpha, beta)


def _paper_jac_floor(X, a, b, alpha, beta, c):
    return _paper_jac((a, b, alpha, beta), X[0], X[1], True)


def _paper_jac_nofloor(X, a, b, alpha, beta):
    return _paper_jac((a, b, alpha, beta), X[0], X[1], False)


def _paper_jac(p, n, L, with_floor):
    a, b, alpha, beta = p[:4]
    na, lb = n ** (-alpha), L ** (-beta)
    cols = [na, lb, -a * na * np.log(n), -b * lb * np.log(L)]
    if with_floor:
        cols.append(np.ones_like(n))
    return np.column_stack(cols)


def fit_paper(data, *, with_floor: bool = False, metric: str = "error", average_repeats: bool = True,
              p0: Sequence[float] | None = None, rtol_grad: float = 1e-5, **columns) -> LawFit:
    """The authors' fit: ``curve_fit`` of ``a n^-alpha + b L^-beta (+ c)`` on the error in linear
    space with bounds [0, inf) on every parameter (TRF).

    Starts: curve_fit's default (all ones, as in the authors' code), the no-floor solution for the
    floor form (their form iii), and the best variable-projection grid point; lowest squared error
    among the converged ones is kept. Repeats of a cell are averaged first, as the authors did.
    Raises :class:`ConvergenceError` when no start converges.
    """
    d = law_data(data, metric=metric, with_floor=with_floor, **columns)
    if average_repeats:
        cells = d.cells
        n, L, y = (cells[c].to_numpy(dtype=float) for c in ("n", "L", "err"))
    else:
        n, L, y = d.n, d.L, d.err
    return _fit_paper_arrays(n, L, y, with_floor, p0, rtol_grad)


def _fit_paper_arrays(n, L, y, with_floor, p0=None, rtol_grad=1e-5, quick=False) -> LawFit:
    k = 5 if with_floor else 4
    model = _paper_model_floor if with_floor else _paper_model_nofloor
    jac = _paper_jac_floor if with_floor else _paper_jac_nofloor
    starts: list[tuple[str, np.ndarray, dict]] = []
    if p0 is not None:
        if len(p0) != k:
            raise ValueError(f"p0 must have {k} values [a, b, alpha, beta{', c' if with_floor else ''}]")
        starts.append(("p0", np.asarray(p0, dtype=float), {"x_scale": "jac", "jac": jac}))
    if not quick:
        starts.append(("ones (curve_fit default)", np.ones(k), {}))
        if with_floor:
            try:
                nf = _fit_paper_arrays(n, L, y, False, rtol_grad=rtol_grad)
                q = nf.params
                starts.append(("no-floor solution", np.array([q.A, q.B, q.alpha, q.beta, 0.0]),
                               {"x_scale": "jac", "jac": jac}))
            except ConvergenceError:
                pass
        A, alpha, B, beta, E = _vp_starts(n, L, y, np.ones_like(y), with_floor, 1)[0]
        vp = [A, B, alpha, beta] + ([E] if with_floor else [])
        starts.append(("variable projection grid", np.asarray(vp), {"x_scale": "jac", "jac": jac}))
    best = None
    problems = []
    for label, start, extra in starts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, pcov, info, mesg, ier = optimize.curve_fit(
                    model, (n, L), y, p0=start, bounds=(0.0, np.inf), full_output=True,
                    ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=20000, **extra)
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            problems.append(f"{label}: {exc}")
            continue
        resid = y - model((n, L), *popt)
        sse = float(resid @ resid)
        J = _paper_jac(popt, n, L, with_floor)
        grad = -2.0 * J.T @ resid
        grad[(popt <= 0) & (grad > 0)] = 0.0  # at the lower bound, pushing outward is fine
        # first-order optimality, scale-free: a 1 % relative change of any parameter changes the
        # squared error by a negligible fraction of itself
        scaled = float(np.max(np.abs(grad * np.maximum(np.abs(popt), 1e-12))))
        tol = rtol_grad * sse + 1e-14 * float(y @ y)
        if not (ier in (1, 2, 3, 4) and np.all(np.isfinite(popt)) and scaled <= tol):
            problems.append(f"{label}: status {ier} ({mesg}), scaled gradient {scaled:.2e} > {tol:.2e}")
            continue
        if best is None or sse < best[0]:
            best = (sse, popt, pcov, scaled, mesg)
    if best is None:
        raise ConvergenceError("paper (curve_fit) fit did not converge from any start: "
                               + "; ".join(problems))
    sse, popt, pcov, scaled, mesg = best
    names = ("A", "B", "alpha", "beta", "E")[:k]
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(pcov)) if pcov is not None else np.full(k, np.nan)
    params = LawParams(A=float(popt[0]), B=float(popt[1]), alpha=float(popt[2]), beta=float(popt[3]),
                       E=float(popt[4]) if with_floor else 0.0)
    at_bound = tuple(nm for nm, v in zip(names, popt) if v <= 1e-10 * max(1.0, float(np.max(popt))))
    return LawFit(params=params, method="paper", with_floor=with_floor, loss=sse, n_points=len(y),
                  r2=_r2(y, params.error(n, L)), grad_norm=scaled, at_bound=at_bound,
                  stderr={nm: float(s) for nm, s in zip(names, se)}, n_starts=len(starts),
                  message=str(mesg))


def fit_law(data, *, method: str = "robust", with_floor: bool = True, **kwargs) -> LawFit:
    """Dispatch to :func:`fit_robust` (``method="robust"``) or :func:`fit_paper` (``"paper"``)."""
    if method == "robust":
        return fit_robust(data, with_floor=with_floor, **kwargs)
    if method == "paper":
        return fit_paper(data, with_floor=with_floor, **kwargs)
    raise ValueError(f"unknown fit method {method!r}; choose 'robust' or 'paper'")


# ---- with or without the floor E: a choice made by the data ----------------------------------

FORM_CRITERION = "BIC"


def _form_name(with_floor: bool) -> str:
    return "with floor E" if with_floor else "without floor E"


def _fit_space(fit: LawFit, d: LawData):
    """(n, L, y, residuals, log_space) on the points the fit minimised: every run in log error for
    the robust fit, the cell means in linear error for the paper's fit."""
    if fit.method == "paper" and fit.n_points != len(d):
        cells = d.cells
        n, L, y = (cells[c].to_numpy(dtype=float) for c in ("n", "L", "err"))
    else:
        n, L, y = d.n, d.L, d.err
    pred = fit.params.error(n, L)
    if fit.method == "robust":
        return n, L, y, np.log(y) - np.log(pred), True
    return n, L, y, y - pred, False


def information_criterion(fit: LawFit, data, *, kind: str = "bic", metric: str = "error",
                          **columns) -> float:
    """Gaussian information criterion of a fit from its residuals, in the space the fit minimised
    (log error per run for the robust fit, error per cell mean for the paper's):
    ``N ln(RSS/N) + k ln N`` (``kind="bic"``) or ``N ln(RSS/N) + 2 k`` (``"aic"``), with ``k`` the
    number of parameters of the form (5 with the floor, 4 without). Lower is better."""
    if kind not in ("bic", "aic"):
        raise ValueError(f"criterion kind must be 'bic' or 'aic', got {kind!r}")
    d = law_data(data, metric=metric, **columns)
    _, _, _, r, _ = _fit_space(fit, d)
    N = len(r)
    k = len(fit.fitted_names())
    rss = max(float(r @ r), N * 1e-24)  # exact synthetic data: an RMS residual floor of 1e-12
    return N * math.log(rss / N) + k * (math.log(N) if kind == "bic" else 2.0)


@dataclass(frozen=True)
class FormChoice:
    """Both forms of the law fitted, one chosen. ``values`` and ``fits`` are keyed by ``with_floor``
    (a form that could not be fitted has NaN / None and its reason in ``problems``)."""

    fit: LawFit
    forced: bool
    criterion: str
    values: dict
    fits: dict
    problems: dict
    reason: str

    @property
    def with_floor(self) -> bool:
        return self.fit.with_floor


def choose_form(data, *, method: str = "robust", with_floor: bool | None = None,
                metric: str = "error", **columns) -> FormChoice:
    """Fit the law with and without the floor ``E`` and keep the form with the lower BIC.

    Why BIC: the two forms are nested (no floor is the floor form at ``E = 0``, on the boundary of
    its parameter space), so on data without a floor the floor form always fits a little better.
    BIC charges the extra parameter ``ln N`` (4.3 for 72 runs) against AIC's 2; with the boundary
    the likelihood-ratio statistic is half chi-square(1), so AIC picks a spurious floor on about 8 %
    of floor-free data sets and BIC on about 2 %, and BIC picks the true form with probability
    tending to one as runs are added. Held-out rows were the alternative; on grids of 30 to 36
    cells they are noisier and cost a refit per fold. The residuals are those the method fits
    (:func:`information_criterion`); the Gaussian likelihood is an approximation for the robust
    fit, whose Huber loss only guards against outliers.

    ``with_floor=True``/``False`` forces a form; the other is still fitted when possible so that
    both criterion values can be reported. The floor form is compared only when the data have at
    least 6 distinct (n, L) cells (one more than its 5 parameters). Raises
    :class:`ConvergenceError` when the form to be returned does not converge.
    """
    if with_floor not in (None, True, False):
        raise ValueError(f"with_floor must be True, False or None (choose by {FORM_CRITERION}), "
                         f"got {with_floor!r}")
    d = law_data(data, metric=metric, with_floor=bool(with_floor), **columns)
    n_cells = len(d.cells)
    fits: dict = {}
    problems: dict = {}
    values: dict = {}
    for wf in (False, True):
        if wf and n_cells < 6:
            problems[wf] = (f"only {n_cells} distinct (n, L) cells: the form with floor E has 5 "
                            "parameters and needs at least 6 cells to be compared")
            if with_floor is True:  # forced with exactly 5 cells: fit it all the same
                fits[wf] = fit_law(d, method=method, with_floor=True)
            continue
        try:
            fits[wf] = fit_law(d, method=method, with_floor=wf)
        except ConvergenceError as exc:
            if with_floor is wf:
                raise
            problems[wf] = f"did not converge ({exc})"
    for wf in (False, True):
        fit = fits.get(wf)
        values[wf] = (information_criterion(fit, d) if fit is not None and wf not in problems
                      else float("nan"))
    if with_floor is not None:
        chosen = fits[with_floor]
        other = not with_floor
        if np.isfinite(values[with_floor]) and np.isfinite(values[other]):
            prefer = min((False, True), key=lambda wf: values[wf])
            verdict = "agrees" if prefer == with_floor else f"would choose the form {_form_name(prefer)}"
            reason = (f"forced; {FORM_CRITERION} {verdict} ({_form_name(True)} {values[True]:.1f}, "
                      f"{_form_name(False)} {values[False]:.1f}; lower is better)")
        else:
            reason = "forced; the other form was not compared (" + problems.get(other, "not fitted") + ")"
        return FormChoice(fit=chosen, forced=True, criterion=FORM_CRITERION, values=values, fits=fits,
                          problems=problems, reason=reason)
    usable = [wf for wf in (False, True) if np.isfinite(values[wf])]
    if not usable:
        raise ConvergenceError("neither form of the law converged: "
                               + "; ".join(f"{_form_name(wf)}: {problems[wf]}" for wf in problems))
    if len(usable) == 1:
        wf = usable[0]
        reason = (f"the only form that could be compared; {_form_name(not wf)}: {problems[not wf]}")
        return FormChoice(fit=fits[wf], forced=False, criterion=FORM_CRITERION, values=values,
                          fits=fits, problems=problems, reason=reason)
    wf = min((False, True), key=lambda w: values[w])
    N = fits[wf].n_points
    points = "log error of each run" if method == "robust" else "error of each (n, L) cell mean"
    reason = (f"{FORM_CRITERION} (lower is better): {_form_name(True)} {values[True]:.1f}, "
              f"{_form_name(False)} {values[False]:.1f}. {FORM_CRITERION} = N ln(RSS/N) + k ln N on the "
              f"residuals of the N = {N} points fitted ({points}), so the floor's extra parameter "
              f"costs ln N = {math.log(N):.1f}")
    return FormChoice(fit=fits[wf], forced=False, criterion=FORM_CRITERION, values=values, fits=fits,
                      problems=problems, reason=reason)


def identification_notes(fit: LawFit, data, *, boot: "BootstrapResult | None" = None,
                         metric: str = "error", cond_limit: float = 1e8, **columns) -> list[str]:
    """Sentences naming the fitted parameters these data cannot identify (a flat likelihood), beyond
    the parameters on a bound (``fit.at_bound``, reported separately):

    * the Gauss-Newton 95 % range ``value +- 1.96 se`` reaches 0 (``se`` from the Jacobian of the
      residuals the fit minimised, amplitudes on a log scale, scaled back by the delta method);
    * the bootstrap interval (when ``boot`` is given) is wider than +-100 % of the value;
    * the column-scaled Jacobian is near-singular (condition number above ``cond_limit``): a
      combination of parameters can change without changing the fit.
    """
    d = law_data(data, metric=metric, **columns)
    names = [k for k in fit.fitted_names() if k not in fit.at_bound]
    notes: list[str] = []
    reasons: dict[str, list[str]] = {k: [] for k in names}
    n, L, y, r, log_space = _fit_space(fit, d)
    p = fit.params
    na, lb = p.A * n ** (-p.alpha), p.B * L ** (-p.beta)
    cols = {"A": na, "alpha": -na * np.log(n), "B": lb, "beta": -lb * np.log(L), "E": np.full_like(n, p.E)}
    pred = p.error(n, L)
    J = np.column_stack([cols[k] / pred if log_space else cols[k] for k in names]) if names else None
    if J is not None:
        norms = np.linalg.norm(J, axis=0)
        Js = J / np.where(norms > 0, norms, 1.0)
        sv = np.linalg.svd(Js, compute_uv=False)
        cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
        dof = len(r) - len(names)
        if cond > cond_limit or not np.all(norms > 0):
            # which parameters move together along the flat direction
            _, _, vt = np.linalg.svd(Js)
            flat = np.abs(vt[-1])
            worst = [names[i] for i in np.argsort(flat)[::-1][:2]]
            notes.append(f"near-singular Jacobian (condition number {cond:.2g}): these data cannot "
                         f"separate {' and '.join(worst)}; the likelihood is flat along a combination "
                         "of them")
        elif dof > 0:
            sigma2 = float(r @ r) / dof
            cov = sigma2 * np.linalg.inv(J.T @ J)
            for i, k in enumerate(names):
                value = getattr(p, k)
                se = math.sqrt(max(float(cov[i, i]), 0.0)) * (value if k in ("A", "B", "E") else 1.0)
                if 1.96 * se > abs(value):
                    reasons[k].append(f"its Gauss-Newton 95% range {value:.4g} +- {1.96 * se:.3g} reaches 0")
    if boot is not None:
        tab = boot.intervals().set_index("quantity")
        for k in names:
            if k not in tab.index:
                continue
            lo, hi = float(tab.loc[k, "lo"]), float(tab.loc[k, "hi"])
            value = getattr(p, k)
            if np.isfinite(lo) and np.isfinite(hi) and (hi - lo) / 2 > abs(value):
                reasons[k].append(f"its {boot.level:.0%} bootstrap interval [{lo:.4g}, {hi:.4g}] is "
                                  "wider than +-100% of its value")
    for k in names:
        if reasons[k]:
            notes.append(f"{k} is not identified by these data (flat likelihood): " + "; ".join(reasons[k]))
    return notes


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------

def _budget_label(s: float) -> str:
    return f"{s / 1e6:.6g} MB"


@dataclass
class BootstrapResult:
    """Bootstrap over runs: one row of ``samples`` per converged resample."""

    point: LawFit
    samples: pd.DataFrame
    budgets: tuple[float, ...]
    n_resamples: int
    n_failed: int
    level: float = 0.95
    notes: list[str] = field(default_factory=list)
    n_max: float | None = None  # pool cap applied to n* in every resample (None: uncapped)

    def point_values(self) -> dict:
        return derived_quantities(self.point.params, self.budgets, n_max=self.n_max)

    def intervals(self, level: float | None = None) -> pd.DataFrame:
        """Percentile intervals for every fitted parameter and the derived quantities."""
        level = self.level if level is None else level
        if not 0 < level < 1:
            raise ValueError(f"interval level must be in (0, 1), got {level!r}")
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        point = self.point_values()
        rows = []
        for col in self.samples.columns:
            if col.startswith("bound_"):
                continue
            vals = self.samples[col].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            lo, hi = (np.quantile(vals, [lo_q, hi_q]) if vals.size else (np.nan, np.nan))
            rows.append({"quantity": col, "point": point.get(col, np.nan), "lo": float(lo),
                         "hi": float(hi), "level": level})
        return pd.DataFrame(rows)

    def interval(self, quantity: str, level: float | None = None) -> tuple[float, float]:
        tab = self.intervals(level).set_index("quantity")
        if quantity not in tab.index:
            raise ValueError(f"no bootstrap quantity {quantity!r}; have {list(tab.index)}")
        return float(tab.loc[quantity, "lo"]), float(tab.loc[quantity, "hi"])

    def correlations(self) -> pd.DataFrame:
        """Pearson correlations between the fitted parameters across resamples."""
        names = list(self.point.fitted_names())
        return self.samples[names].corr()

    def bound_fraction(self) -> dict:
        """Share of resamples in which each parameter ended on a bound."""
        return {c[len("bound_"):]: float(self.samples[c].mean())
                for c in self.samples.columns if c.startswith("bound_")}

    def summary_frame(self, level: float | None = None) -> pd.DataFrame:
        """Everything a report needs in one small long-format table (kind, quantity, point, lo,
        hi, value): intervals, parameter correlations, bound fractions and resample counts."""
        rows = [{"kind": "interval", **r} for r in self.intervals(level).to_dict("records")]
        corr = self.correlations()
        names = list(corr.columns)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                rows.append({"kind": "correlation", "quantity": f"{a}~{b}", "value": corr.loc[a, b]})
        for name, frac in self.bound_fraction().items():
            rows.append({"kind": "bound_fraction", "quantity": name, "value": frac})
        rows.append({"kind": "meta", "quantity": "n_resamples", "value": self.n_resamples})
        rows.append({"kind": "meta", "quantity": "n_failed", "value": self.n_failed})
        return pd.DataFrame(rows, columns=["kind", "quantity", "point", "lo", "hi", "level", "value"])


def _interval_table(boot, level: float) -> pd.DataFrame:
    """Intervals indexed by quantity from a BootstrapResult or a frame with quantity/lo/hi columns
    (for example the ``kind == "interval"`` rows of :meth:`BootstrapResult.summary_frame`)."""
    if isinstance(boot, BootstrapResult):
        return boot.intervals(level).set_index("quantity")
    if isinstance(boot, pd.DataFrame):
        frame = boot
        if "kind" in frame.columns:
            frame = frame[frame["kind"] == "interval"]
        missing = {"quantity", "lo", "hi"} - set(frame.columns)
        if missing:
            raise ValueError(f"interval table lacks columns {sorted(missing)}")
        return frame.set_index("quantity")
    raise ValueError(f"boot must be a BootstrapResult or an interval DataFrame, got {type(boot).__name__}")


def derived_quantities(params: LawParams, budgets, n_max: float | None = None) -> dict:
    """Parameters, nu, and n*, L*, optimal error at each budget, keyed as in bootstrap samples.

    With ``n_max`` (the pool size) the allocation is the capped one of :meth:`LawParams.allocation`
    (n = min(n*, n_max), L = s / n, error = Err(n, L)), so that intervals and point estimates
    describe the same recommendation."""
    out = params.as_dict()
    try:
        out["nu"] = params.nu
    except ValueError:
        out["nu"] = np.nan
    for s in budgets:
        lab = _budget_label(s)
        try:
            n, L, err = params.n_star(s), params.L_star(s), params.optimal_error(s)
            if n_max is not None and n > n_max:
                n = float(n_max)
                L = s / n
                err = float(params.error(n, L))
            out[f"n_star@{lab}"], out[f"L_star@{lab}"] = float(n), float(L)
            out[f"error_star@{lab}"] = float(err)
        except ValueError:
            out[f"n_star@{lab}"] = out[f"L_star@{lab}"] = out[f"error_star@{lab}"] = np.nan
    return out


def _check_n_max(n_max):
    if n_max is None:
        return None
    try:
        value = float(n_max)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"n_max (the pool size, images) must be a finite number >= 1, got {n_max!r}")
    return value


def bootstrap(data, *, method: str = "robust", with_floor: bool = True, n_boot: int = 1000,
              budgets: Iterable[float] = (), seed: int = 0, level: float = 0.95,
              within_cells: bool = False, metric: str = "error", point: LawFit | None = None,
              progress: bool = False, n_max: float | None = None, **columns) -> BootstrapResult:
    """Resample the runs with replacement ``n_boot`` times and refit, warm-started from the point
    estimate (a full multi-start refit only when the warm start fails).

    ``n_max`` (the pool size) caps n* at every budget in every resample, as the storage calculator
    does for the point estimate; give the calculator the same ``n_max``.

    ``within_cells=True`` resamples the repeats inside each (n, L) cell (keeps the design; needs
    repeats). Resamples that are degenerate or do not converge are counted in ``n_failed`` and
    left out; the point estimate itself must converge. ``progress=True`` shows a tqdm bar over the
    resamples on stderr (command lines turn it on; library callers get none by default).
    """
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if method not in ("robust", "paper"):
        raise ValueError(f"unknown fit method {method!r}; choose 'robust' or 'paper'")
    d = law_data(data, metric=metric, with_floor=with_floor, **columns)
    budgets = tuple(float(s) for s in budgets)
    for s in budgets:
        _positive_budget(s)
    n_max = _check_n_max(n_max)
    if point is None:
        point = fit_law(d, method=method, with_floor=with_floor)
    rng = np.random.default_rng(seed)
    N = len(d)
    if within_cells:
        keys = pd.DataFrame({"n": d.n, "L": d.L}).groupby(["n", "L"]).indices
        groups = [np.asarray(ix) for ix in keys.values()]
        if all(len(g) == 1 for g in groups):
            raise ValueError("within_cells=True needs repeated runs per (n, L) cell; every cell has one run")
    k = n_parameters(with_floor)
    p = point.params
    theta_point = _theta_from_params((p.A, p.alpha, p.B, p.beta, p.E), with_floor)
    paper_p0 = [p.A, p.B, p.alpha, p.beta] + ([p.E] if with_floor else [])
    rows, failed = [], 0
    iterator = range(int(n_boot))
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=f"bootstrap ({method} fit)", unit="resample", file=sys.stderr)
    for _ in iterator:
        if within_cells:
            idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        else:
            idx = rng.integers(0, N, size=N)
        counts = np.bincount(idx, minlength=N)
        used = counts > 0
        if (np.unique(d.n[used]).size < 2 or np.unique(d.L[used]).size < 2
                or len(set(zip(d.n[used].tolist(), d.L[used].tolist()))) < k):
            failed += 1
            continue
        try:
            if method == "robust":
                sub = d.subset(used)
                w = counts[used].astype(float)
                try:
                    fit = _fit_robust_arrays(sub, w, with_floor, HUBER_DELTA, 0, None, 1e-6,
                                             theta_starts=[theta_point])
                except ConvergenceError:
                    fit = _fit_robust_arrays(sub, w, with_floor, HUBER_DELTA, 12, None, 1e-6)
            else:
                # least squares on the resampled runs themselves: with equal repeats per cell this
                # is the same estimator as the paper's fit on cell means, but averaging resampled
                # duplicates first would shrink the per-cell spread and make intervals too narrow
                rs = d.subset(idx)
                n_, L_, y_ = rs.n, rs.L, rs.err
                try:
                    fit = _fit_paper_arrays(n_, L_, y_, with_floor, p0=paper_p0, quick=True)
                except ConvergenceError:
                    fit = _fit_paper_arrays(n_, L_, y_, with_floor)
        except ConvergenceError:
            failed += 1
            continue
        row = derived_quantities(fit.params, budgets, n_max=n_max)
        for name in fit.fitted_names():
            row[f"bound_{name}"] = name in fit.at_bound
        rows.append(row)
    if not rows:
        raise ConvergenceError(f"no bootstrap resample converged ({failed} of {n_boot} failed)")
    notes = []
    if failed:
        notes.append(f"{failed} of {n_boot} resamples were degenerate or did not converge and are left out")
    return BootstrapResult(point=point, samples=pd.DataFrame(rows), budgets=budgets,
                           n_resamples=int(n_boot), n_failed=failed, level=level, notes=notes,
                           n_max=n_max)


# --------------------------------------------------------------------------------------------
# Validation by extrapolation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Extrapolation:
    axis: str
    held_out_value: float
    fit: LawFit
    frame: pd.DataFrame  # per held-out cell: n, L, observed, predicted, rel_error

    @property
    def mean_abs_rel_error(self) -> float:
        return float(self.frame["rel_error"].abs().mean())

    @property
    def max_abs_rel_error(self) -> float:
        return float(self.frame["rel_error"].abs().max())


def extrapolation_check(data, *, axis: str = "n", method: str = "robust", with_floor: bool = True,
                        metric: str = "error", fit_up_to: float | None = None, **columns) -> Extrapolation:
    """Fit on every cell except those at the largest ``axis`` value (``"n"`` or ``"L"``) and
    report the relative error (predicted - observed) / observed on the held-out cells
    (observed = mean over repeats), as Hestness et al. and Rosenfeld et al. validate laws.

    ``fit_up_to``: fit only the cells with ``axis`` value <= it and hold out every larger one
    (for example n <= 60 % of the pool, predicting the 80 % and 100 % cells)."""
    if axis not in ("n", "L"):
        raise ValueError(f"axis must be 'n' or 'L', got {axis!r}")
    d = law_data(data, metric=metric, with_floor=with_floor, **columns)
    values = d.n if axis == "n" else d.L
    top = float(values.max())
    if np.unique(values).size < 3:
        raise ValueError(f"extrapolation along {axis} needs at least 3 distinct {axis} values "
                         f"(two to fit, one to hold out); have {np.unique(values).size}")
    cut = np.nextafter(top, -np.inf) if fit_up_to is None else float(fit_up_to)
    kept = np.unique(values[values <= cut]).size
    if kept < 2 or cut >= top:
        raise ValueError(f"fit_up_to={fit_up_to} must keep at least 2 distinct {axis} values to fit and hold "
                         f"out at least one (the {axis} values run from {values.min():g} to {top:g})")
    train = d.subset(values <= cut)
    fit = fit_law(train, method=method, with_floor=with_floor)
    held = d.subset(values > cut).cells
    pred = fit.predict(held["n"].to_numpy(float), held["L"].to_numpy(float))
    frame = pd.DataFrame({"n": held["n"], "L": held["L"], "observed": held["err"], "predicted": pred})
    frame["rel_error"] = (frame["predicted"] - frame["observed"]) / frame["observed"]
    return Extrapolation(axis=axis, held_out_value=float(held[axis].min()), fit=fit,
                         frame=frame.reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# Bytes per image as a function of codec distance, and the storage calculator
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SizeCurve:
    """L(d) = 1 / (a d + b): mean bytes per image at codec distance d (the authors' form)."""

    a: float
    b: float
    d_min: float
    d_max: float
    source: str = ""

    def size(self, d):
        return 1.0 / (self.a * np.asarray(d, dtype=float) + self.b)

    def distance(self, L):
        """Inverse: the distance whose mean size is ``L`` bytes."""
        L = np.asarray(L, dtype=float)
        return (1.0 / L - self.b) / self.a


def fit_size_curve(distance, mean_bytes, source: str = "") -> SizeCurve:
    """Least-squares fit of L(d) = 1/(a d + b) in linear L (curve_fit, as the authors did),
    started from the linear regression of 1/L on d."""
    d = np.asarray(distance, dtype=float)
    L = np.asarray(mean_bytes, dtype=float)
    if d.shape != L.shape or d.size < 2:
        raise ValueError("fit_size_curve needs matching distance and mean_bytes arrays of >= 2 points")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(L)) and np.all(L > 0)):
        raise ValueError("distance must be finite and mean_bytes finite and > 0")
    if np.unique(d).size < 2:
        raise ValueError("fit_size_curve needs at least two distinct distances")
    a0, b0 = np.polyfit(d, 1.0 / L, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (a, b), _ = optimize.curve_fit(lambda x, a, b: 1.0 / (a * x + b), d, L, p0=(a0, b0),
                                       maxfev=20000)
    if not (a > 0):
        raise ValueError(f"fitted size curve is not decreasing in distance (a = {a:.3g}); check the table")
    return SizeCurve(a=float(a), b=float(b), d_min=float(d.min()), d_max=float(d.max()), source=source)


SIZE_TABLE_COLUMNS = ("dataset", "scheme", "distance", "mean_bytes")


def select_sizes(sizes: pd.DataFrame, *, dataset: str, scheme: str = "jxl",
                 split: str | None = None) -> pd.DataFrame:
    """Mean bytes per image against codec distance for ONE dataset and ONE scheme of a compression
    table (``results/compression_sizes.csv``: columns dataset, scheme, distance, mean_bytes[, split]).

    Names are matched exactly and rows are never averaged across datasets, schemes or splits: a
    size curve must describe the images the law was fitted on. Returns a frame with columns
    ``distance`` and ``mean_bytes`` sorted by distance (rows without a positive distance, such as
    lossless transcodes, are left out). Raises ValueError naming what is missing and what exists.
    """
    if not isinstance(sizes, pd.DataFrame):
        raise ValueError(f"sizes must be a pandas DataFrame (a compression table), got {type(sizes).__name__}")
    missing = [c for c in SIZE_TABLE_COLUMNS if c not in sizes.columns]
    if missing:
        raise ValueError(f"compression table lacks column(s) {missing}; it has {list(sizes.columns)}. "
                         f"Expected {list(SIZE_TABLE_COLUMNS)} as in results/compression_sizes.csv")
    names = sorted(sizes["dataset"].astype(str).unique())
    rows = sizes[sizes["dataset"].astype(str) == str(dataset)]
    if rows.empty:
        raise ValueError(f"compression table has no rows for dataset {dataset!r}; it has {names}. "
                         "Pass the exact name of the dataset the law was fitted on")
    schemes = sorted(rows["scheme"].astype(str).unique())
    rows = rows[rows["scheme"].astype(str) == str(scheme)]
    if rows.empty:
        raise ValueError(f"compression table has no {scheme!r} rows for dataset {dataset!r}; its schemes "
                         f"are {schemes}. Pass scheme= one of them (JPEG XL distances: 'jxl')")
    if split is not None:
        if "split" not in rows.columns:
            raise ValueError(f"split={split!r} given but the compression table has no 'split' column")
        splits = sorted(rows["split"].astype(str).unique())
        rows = rows[rows["split"].astype(str) == str(split)]
        if rows.empty:
            raise ValueError(f"compression table has no {scheme!r} rows for {dataset!r} in split "
                             f"{split!r}; its splits are {splits}")
    distance = pd.to_numeric(rows["distance"], errors="coerce")
    mean_bytes = pd.to_numeric(rows["mean_bytes"], errors="coerce")
    keep = (distance > 0) & np.isfinite(distance) & (mean_bytes > 0) & np.isfinite(mean_bytes)
    out = pd.DataFrame({"distance": distance[keep].astype(float),
                        "mean_bytes": mean_bytes[keep].astype(float)})
    repeated = sorted(out.loc[out["distance"].duplicated(), "distance"].unique().tolist())
    if repeated:
        fix = ("pass split= one of " + str(sorted(rows["split"].astype(str).unique()))
               if "split" in rows.columns and rows["split"].nunique() > 1 else "keep one row per distance")
        raise ValueError(f"compression table has several {scheme!r} rows for {dataset!r} at distance(s) "
                         f"{repeated}; they are not averaged: {fix}")
    if len(out) < 2:
        raise ValueError(f"compression table has {len(out)} {scheme!r} row(s) with a positive distance for "
                         f"{dataset!r}; a size curve needs at least two distances")
    return out.sort_values("distance").reset_index(drop=True)


def storage_calculator(law: LawParams, budgets, *, size_curve: SizeCurve | None = None,
                       boot: "BootstrapResult | pd.DataFrame | None" = None,
                       n_max: float | None = None, original_bytes: float | None = None,
                       level: float = 0.95) -> pd.DataFrame:
    """Recommended n, L, codec distance and predicted error for each budget (bytes).

    With ``boot`` (a bootstrap of the same law and budgets, or its interval table) each quantity
    gets a percentile interval; the distance interval is the size-curve image of the L interval. ``n_max`` caps n at
    the pool size (then L = s / n_max). A distance is never printed below the smallest distance the
    size curve was measured at (the curve's inverse goes negative where L* exceeds what any
    distance gives): it is clamped there and the note says so. Where L* is at least
    ``original_bytes`` (the original files' mean bytes), the answer is to keep the originals:
    no distance is given. A distance above the measured range is noted as extrapolated.
    """
    s = np.atleast_1d(_positive_budget(budgets))
    n_max = _check_n_max(n_max)
    if isinstance(boot, BootstrapResult) and boot.n_max != n_max:
        raise ValueError(f"the bootstrap was run with n_max={boot.n_max!r} but the calculator got "
                         f"n_max={n_max!r}: intervals and point estimates would describe different "
                         "allocations; pass the same pool cap to bootstrap(..., n_max=) and "
                         "storage_calculator(..., n_max=)")
    alloc = law.allocation(s, n_max=n_max)
    rows = []
    tab = _interval_table(boot, level) if boot is not None else None
    for _, r in alloc.iterrows():
        row = {"budget_MB": r["budget_bytes"] / 1e6, "n": r["n_star"], "L_bytes": r["L_star"],
               "error": r["error_star"]}
        notes = []
        if r["pool_capped"]:
            notes.append(f"n capped at the pool ({n_max:,.0f})")
        if tab is not None:
            lab = _budget_label(r["budget_bytes"])
            for q, col in (("n_star", "n"), ("L_star", "L_bytes"), ("error_star", "error")):
                key = f"{q}@{lab}"
                if key not in tab.index:
                    raise ValueError(f"bootstrap has no budget {lab}; bootstrap with budgets={list(s)}")
                row[f"{col}_lo"], row[f"{col}_hi"] = tab.loc[key, "lo"], tab.loc[key, "hi"]
            if n_max is not None and row["n_hi"] > n_max * (1 + 1e-9):
                raise ValueError(f"the bootstrap interval of n at {lab} reaches {row['n_hi']:,.0f} images, "
                                 f"above the pool cap n_max = {n_max:,.0f}: it was computed without the "
                                 "cap; bootstrap with n_max= as well")
        keep = original_bytes is not None and row["L_bytes"] >= original_bytes
        if keep:
            notes.append(f"keep the originals: L* is at or above the original files' {original_bytes:,.0f} B "
                         "per image, so compressing would cost bytes, not save them")
        if size_curve is not None:
            lowest = size_curve.d_min

            def clamped(L):
                return max(float(size_curve.distance(L)), lowest)

            raw = float(size_curve.distance(row["L_bytes"]))
            row["distance"] = np.nan if keep else clamped(row["L_bytes"])
            if tab is not None:
                row["distance_lo"], row["distance_hi"] = clamped(row["L_bytes_hi"]), clamped(row["L_bytes_lo"])
            if not keep and raw < lowest:
                notes.append(f"L* needs more bytes than the size curve measured at its smallest distance "
                             f"(d = {lowest:g}): distance clamped to {lowest:g} (the law is extrapolated there)")
            elif not keep and raw > size_curve.d_max:
                notes.append(f"distance outside the measured range [{lowest:g}, "
                             f"{size_curve.d_max:g}]: extrapolated")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Synthetic data (for tests and the notebook's demonstration)
# --------------------------------------------------------------------------------------------

def synthetic_grid(law: LawParams, n_values, L_values, *, noise: float = 0.0, seeds: int = 1,
                   rng_seed: int = 0) -> pd.DataFrame:
    """Runs on the grid n_values x L_values from ``law`` with multiplicative Gaussian noise of
    relative size ``noise`` (one row per seed), clipped into (0, 1]."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed in range(seeds):
        for n in n_values:
            for L in L_values:
                e = float(law.error(n, L))
                if noise:
                    e *= 1.0 + noise * rng.standard_normal()
                rows.append({"n": float(n), "L": float(L), "error": min(max(e, 1e-9), 1.0), "seed": seed})
    return pd.DataFrame(rows)


def bootstrap_coverage(law: LawParams, n_values, L_values, *, noise: float, seeds: int = 1,
                       n_datasets: int = 40, n_boot: int = 100, method: str = "robust",
                       with_floor: bool = False, budgets: Iterable[float] = (), level: float = 0.95,
                       quantities: Sequence[str] | None = None, rng_seed: int = 0,
                       progress: bool = False) -> pd.DataFrame:
    """Do the bootstrap intervals cover the truth? Draw ``n_datasets`` independent synthetic grids
    from ``law``, bootstrap each, and record per quantity whether the interval holds the true
    value. Returns one row per (dataset, quantity): truth, point, lo, hi, covered."""
    if int(n_datasets) < 1:
        raise ValueError(f"n_datasets must be >= 1, got {n_datasets!r}")
    budgets = tuple(float(b) for b in budgets)
    truth = derived_quantities(law, budgets)
    if quantities is None:
        quantities = [q for q in truth if q not in ("E",) or with_floor]
    rows = []
    iterator = range(int(n_datasets))
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="coverage")
    for i in iterator:
        data = synthetic_grid(law, n_values, L_values, noise=noise, seeds=seeds, rng_seed=rng_seed + 7919 * (i + 1))
        boot = bootstrap(data, method=method, with_floor=with_floor, n_boot=n_boot, budgets=budgets,
                         seed=rng_seed + i, level=level)
        tab = boot.intervals(level).set_index("quantity")
        for q in quantities:
            lo, hi = float(tab.loc[q, "lo"]), float(tab.loc[q, "hi"])
            rows.append({"dataset": i, "quantity": q, "truth": truth[q], "point": float(tab.loc[q, "point"]),
                         "lo": lo, "hi": hi, "covered": bool(lo <= truth[q] <= hi)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Reference constants of the paper: INPUTS copied from the authors' code, not our results.
# Provenance: granica-ai/LossyCompressionScalingKDD2024 (plotting / optimisation scripts), as
# recorded in ../shared/reference/paper-facts.md §1.2, §1.3, §1.6, §1.8, §1.9. Tags: [C] read from
# the authors' code, [F] digitised from their figures (±0.005 error, ±2 % sizes), [D] derived.
# --------------------------------------------------------------------------------------------

PAPER_SOURCE = ("Mentzer & Montanari (2024), official code github.com/granica-ai/"
                "LossyCompressionScalingKDD2024, via ../shared/reference/paper-facts.md")

PAPER_FITS: dict[str, dict] = {
    "food101": {
        "task": "Food-101 / ResNet-50", "metric": "1 - top-1 accuracy",
        "A": 6.706939196262124, "alpha": 0.33330403247197804,
        "B": 1355.2887767756654, "beta": 1.0613126086527451, "E": 0.0,
        "form": "A n^-alpha + B L^-beta (no floor)", "provenance": "[C] full precision, §1.6"},
    "cityscapes": {
        "task": "Cityscapes / SegFormer-B5", "metric": "1 - mIoU",
        "A": 4.286691211158588, "alpha": 0.58938638522845,
        "B": 428277.4784308216, "beta": 1.6064150537051824, "E": 0.13548027044911312,
        "form": "E + A n^-alpha + B L^-beta", "provenance": "[C] full precision, §1.6"},
    "isaid": {
        "task": "iSAID / Mask R-CNN", "metric": "1 - bbox mAP_s",
        "A": 1.0022450366694422, "alpha": 0.09093488964456031,
        "B": 269996.37601695274, "beta": 1.6962044400861096, "E": 0.3331982003692264,
        "form": "E + A n^-alpha + B L^-beta", "provenance": "[C] full precision, §1.6"},
    # alternative metrics of the appendix (published to the digits shown only)
    "food101_f1": {
        "task": "Food-101 / ResNet-50", "metric": "1 - weighted F1",
        "A": 6.9556, "alpha": 0.3368, "B": 1684.66, "beta": 1.0817, "E": 0.0,
        "form": "A n^-alpha + B L^-beta (no floor)", "provenance": "[C] 4-6 significant digits, §1.6"},
    "cityscapes_macc": {
        "task": "Cityscapes / SegFormer-B5", "metric": "1 - mAcc",
        "A": 13.0855, "alpha": 0.7953, "B": 23863.0, "beta": 1.3516, "E": 0.0824,
        "form": "E + A n^-alpha + B L^-beta", "provenance": "[C] 4-6 significant digits, §1.6"},
    "isaid_segm": {
        "task": "iSAID / Mask R-CNN", "metric": "1 - segm mAP",
        "A": 26.498, "alpha": 0.6276, "B": 3.279e11, "beta": 3.2093, "E": 0.6100,
        "form": "E + A n^-alpha + B L^-beta", "provenance": "[C] 4-5 significant digits, §1.6"},
}

# storage budgets of the scaling-curve-optimal experiments, bytes [C] §1.8
PAPER_BUDGETS: dict[str, tuple[float, ...]] = {
    "food101": tuple(60_600 * b for b in (800, 1600, 4800, 8000, 12000)),
    "cityscapes": (36.360e6, 57.267e6, 78.174e6, 99.081e6, 119.988e6),
    "isaid": tuple(28_029 * b for b in (3000, 6000, 9000, 12000, 15000)),
}

# size of the training pool (images) [C] §1.4
PAPER_POOL_SIZE = {"food101": 60_600, "cityscapes": 2_975, "isaid": 28_029}

# mean bytes per image in the original format (lossless JPEG->JXL / lossless JXL) [F] §1.3
PAPER_ORIGINAL_BYTES = {"food101": 43_000.0, "cityscapes": 1.76e6, "isaid": 341_000.0}

# mean JPEG XL bytes per image at each Butteraugli distance of the grid [C] §1.3
PAPER_SIZE_TABLES = {
    "food101": {1: 39_966, 2: 33_150, 4: 17_902, 7: 10_437, 10: 7_937, 15: 5_621},
    "cityscapes": {1: 187_002, 2: 118_567, 4: 65_348, 7: 44_222, 10: 33_843, 15: 28_441},
    "isaid": {1: 83_365, 2: 55_332, 4: 29_887, 7: 19_217, 10: 14_128, 15: 10_564},
}

# grids of training-set sizes used for the fits [C] §1.5
PAPER_N_GRIDS = {
    "food101": (3_030, 12_120, 24_240, 36_360, 48_480, 60_600),
    "cityscapes": (595, 1_190, 1_785, 2_380, 2_975),
    "isaid": (5_605, 11_211, 16_817, 22_423, 28_029),
}

# measured test error of the storage-optimal, original-format and randomized schemes at the five
# Food-101 budgets (PAPER_BUDGETS; 3 seeds; errors read off the paper's figures) [F] §1.8 / §1.10
PAPER_SCHEME_ERRORS = {"food101": {"storage-optimal": (0.489, 0.386, 0.293, 0.257, 0.238),
                                   "original format": (0.639, 0.520, 0.355, 0.303, 0.270),
                                   "randomized": (0.459, 0.366, 0.278, 0.242, 0.214)}}

# naive (fixed-distance) scheme, Food-101 only: distance -> bytes per image [C] §1.2 / §1.9
PAPER_NAIVE_BYTES = {"food101": {3: 20_888.0, 8: 9_043.0, 13: 6_310.0}}

# measured test error of the naive scheme at the five Food-101 budgets [F] §1.9
PAPER_NAIVE_ERRORS = {"food101": {3: (0.527, 0.417, 0.30, 0.27, 0.23),
                                  8: (0.46, 0.37, 0.30, 0.249, 0.253),
                                  13: (0.471, 0.401, 0.322, 0.267, 0.277)}}

# §1.8 table: closed-form n*, L*, predicted error [D] (iSAID 168.174 MB n* = 11,417 confirmed by a
# config file in the authors' repo [C]); measured optimal / original-format errors [F] (3 seeds);
# original-format n [D from F]. Columns: dataset, budget (bytes), n_star, L_star, err_pred,
# err_opt_measured, n_original, err_original_measured.
PAPER_ALLOCATION_TABLE: tuple[tuple, ...] = (
    ("food101", 48.48e6, 6_838, 7_090, 0.464, 0.489, 1_130, 0.639),
    ("food101", 96.96e6, 11_589, 8_367, 0.390, 0.386, 2_250, 0.520),
    ("food101", 290.88e6, 26_737, 10_879, 0.295, 0.293, 6_770, 0.355),
    ("food101", 484.80e6, 39_441, 12_292, 0.259, 0.257, 11_270, 0.303),
    ("food101", 727.20e6, 53_698, 13_542, 0.234, 0.238, 16_900, 0.270),
    ("cityscapes", 36.360e6, 1_138, 31_959, 0.228, 0.220, 21, 0.527),
    ("cityscapes", 57.267e6, 1_586, 36_103, 0.212, 0.212, 33, 0.485),
    ("cityscapes", 78.174e6, 1_992, 39_249, 0.202, 0.204, 44, 0.460),
    ("cityscapes", 99.081e6, 2_369, 41_826, 0.196, 0.201, 56, 0.442),
    ("cityscapes", 119.988e6, 2_725, 44_032, 0.191, 0.197, 68, 0.402),
    ("isaid", 84.087e6, 5_914, 14_219, 0.813, 0.819, 247, 0.976),
    ("isaid", 168.174e6, 11_417, 14_730, 0.785, 0.786, 494, 0.932),
    ("isaid", 252.261e6, 16_776, 15_037, 0.769, 0.773, 740, 0.911),
    ("isaid", 336.348e6, 22_043, 15_258, 0.759, 0.763, 987, 0.895),
    ("isaid", 420.435e6, 27_243, 15_433, 0.750, 0.756, 1_234, 0.887),
)

PAPER_ALLOCATION_COLUMNS = ("dataset", "budget_bytes", "n_star", "L_star", "err_pred",
                            "err_opt_measured", "n_original", "err_original_measured")


def paper_law(key: str) -> LawParams:
    """The published law for ``key`` in :data:`PAPER_FITS` (e.g. ``"food101"``)."""
    if key not in PAPER_FITS:
        raise ValueError(f"no published fit {key!r}; choose one of {sorted(PAPER_FITS)}")
    f = PAPER_FITS[key]
    return LawParams(A=f["A"], alpha=f["alpha"], B=f["B"], beta=f["beta"], E=f["E"])


def paper_allocation_table() -> pd.DataFrame:
    """The paper's §1.8 table as a frame (reference values, see :data:`PAPER_ALLOCATION_TABLE`)."""
    return pd.DataFrame(list(PAPER_ALLOCATION_TABLE), columns=list(PAPER_ALLOCATION_COLUMNS))


def compare_with_paper() -> pd.DataFrame:
    """Our closed-form n*, L*, predicted error beside the paper's §1.8 values, per budget."""
    ref = paper_allocation_table()
    rows = []
    for _, r in ref.iterrows():
        law = paper_law(r["dataset"])
        s = r["budget_bytes"]
        rows.append({"dataset": r["dataset"], "budget_MB": s / 1e6,
                     "n_star": float(law.n_star(s)), "n_star_paper": r["n_star"],
                     "L_star": float(law.L_star(s)), "L_star_paper": r["L_star"],
                     "err_pred": float(law.optimal_error(s)), "err_pred_paper": r["err_pred"],
                     "err_opt_measured": r["err_opt_measured"],
                     "err_original_pred": float(law.fixed_size_error(
                         s, PAPER_ORIGINAL_BYTES[r["dataset"]], n_max=PAPER_POOL_SIZE[r["dataset"]])),
                     "err_original_measured": r["err_original_measured"]})
    return pd.DataFrame(rows)
