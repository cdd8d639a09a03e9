"""The stylized multiresolution model of image compression: simulation, formula and derivation.

The model (as the authors' theory code defines it, ``../shared/reference/paper-facts.md`` §1.11):

* an "image" is a vector ``x`` of coefficients in resolution levels ``l = 0, 1, 2, ...``; level
  ``l`` holds ``q**l`` independent coefficients of variance ``p**-l`` (uniform on
  ``[-sqrt(3 p**-l), +sqrt(3 p**-l)]`` as in the authors' code, or Gaussian);
* the target is ``y = <theta, x> + noise`` with ``||theta_l||**2 = r**l`` spread evenly over the
  level (every entry ``sqrt((r/q)**l)``) and noise variance ``tau**2``;
* compression keeps the ``m`` coarsest levels, i.e. ``L = (q**m - 1)/(q - 1)`` coefficients;
  ridge regression is fitted on the kept coefficients only (training and test inputs truncated).

Three views of the same excess test error ``Err - tau**2``:

1. :func:`simulate`: Monte-Carlo ridge regression, penalty tuned on a validation set over the
   paper's grid ``lambda = c n**((kappa+1)/(2 kappa+1))``, ``c`` in ``10**[-2, 2]`` (20 values);
2. :func:`deterministic_equivalent` / :func:`de_optimal`: the deterministic-equivalent formula
   (fixed point for the effective regularisation, bias, variance, discarded energy);
3. the ``sym_*`` functions: sympy derivations of the truncation term and of the exponents
   ``beta = log(p/r)/log q`` and ``alpha = s/(1+s)`` with ``s = min(beta, 2 kappa)``.

Only numpy, scipy and sympy are imported at module level (pandas and tqdm lazily, if used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp
from scipy.optimize import curve_fit

from . import threads as thread_limits

# The figure of the paper (paper-facts §1.11): p = 2.01, q = 2, r = 0.99, tau = 1, m = 2..9 and
# ten log-spaced n in [1e2, 1e5]; lambda grid c n^((kappa+1)/(2kappa+1)), c = logspace(-2, 2, 20).
PAPER_M = tuple(range(2, 10))
PAPER_N = tuple(int(round(v)) for v in np.logspace(2, 5, 10))
PAPER_C_GRID = tuple(np.logspace(-2, 2, 20))

MAX_SIM_COEFFICIENTS = 4095  # simulation keeps at most this many coefficients (memory, time)
_FLOAT_DECADES = 290  # q**m and p**m must stay inside float64 for the closed forms


# --------------------------------------------------------------------------------------------
# Model parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelParams:
    """Parameters of the multiresolution model (the code's parametrisation, not the theorem's).

    p      variance ratio between consecutive levels: E x_{l,j}**2 = p**-l;
    q      coefficients per level grow as q**l (2: one-dimensional dyadic, 4: two-dimensional);
    r      signal energy ratio: ||theta_l||**2 = r**l;
    tau    noise standard deviation;
    total_levels  number of levels of the true model (None: infinitely many, the formula's case).

    Conditions checked on construction (each violation raises ``ValueError`` naming it):
    ``q`` integer >= 2; ``q/p < 1`` (finite total variance sum (q/p)**l, i.e. kappa > 1);
    ``0 < r < p`` (finite signal energy sum (r/p)**l, i.e. beta > 0); ``tau >= 0``.
    """

    p: float = 2.01
    q: int = 2
    r: float = 0.99
    tau: float = 1.0
    total_levels: int | None = None

    def __post_init__(self):
        for name in ("p", "r", "tau"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise ValueError(f"model parameter {name}={value!r} must be a finite number")
        q = self.q
        if isinstance(q, (float, np.floating)) and float(q).is_integer():
            object.__setattr__(self, "q", int(q))
        if not isinstance(self.q, (int, np.integer)) or isinstance(self.q, bool) or self.q < 2:
            raise ValueError(f"condition violated: q={q!r} must be an integer >= 2 "
                             f"(level l holds q**l coefficients)")
        object.__setattr__(self, "q", int(self.q))
        if not self.p > self.q:
            raise ValueError(
                f"condition violated: q/p < 1 (finite total variance sum_l (q/p)**l, kappa = "
                f"log p / log q > 1); got p={self.p}, q={self.q}. Raise p above q.")
        if not self.r > 0:
            raise ValueError(f"condition violated: r > 0 (||theta_l||**2 = r**l); got r={self.r}")
        if not self.r < self.p:
            raise ValueError(
                f"condition violated: r < p (finite signal energy sum_l (r/p)**l, beta > 0); "
                f"got r={self.r}, p={self.p}. Lower r below p.")
        if not self.tau >= 0:
            raise ValueError(f"condition violated: tau >= 0 (noise standard deviation); "
                             f"got tau={self.tau}")
        if self.total_levels is not None:
            if not isinstance(self.total_levels, (int, np.integer)) or self.total_levels < 1:
                raise ValueError(f"total_levels={self.total_levels!r} must be None (infinitely "
                                 f"many levels) or an integer >= 1")
            object.__setattr__(self, "total_levels", int(self.total_levels))

    # -- derived constants ------------------------------------------------------------------
    @property
    def kappa(self) -> float:
        """Spectral decay: the k-th covariance eigenvalue is ~ k**-kappa, kappa = log p/log q."""
        return math.log(self.p) / math.log(self.q)

    @property
    def beta(self) -> float:
        """Truncation exponent: discarded energy ~ L**-beta, beta = log(p/r)/log q."""
        return math.log(self.p / self.r) / math.log(self.q)

    @property
    def smoothness(self) -> float:
        """s = min(beta, 2 kappa): the bias exponent ridge regression can exploit (saturation)."""
        return min(self.beta, 2 * self.kappa)

    @property
    def alpha(self) -> float:
        """Estimation exponent alpha = s/(1+s); beta/(1+beta) when r p > 1."""
        s = self.smoothness
        return s / (1 + s)

    @property
    def phase(self) -> str:
        """'non-saturated' (r p > 1), 'saturated' (r p < 1) or 'boundary' (r p = 1, log factors)."""
        rp = self.r * self.p
        if math.isclose(rp, 1.0, rel_tol=1e-12):
            return "boundary"
        return "non-saturated" if rp > 1 else "saturated"

    @property
    def lambda_exponent_paper(self) -> float:
        """Exponent of the paper's penalty grid lambda = c n**((kappa+1)/(2 kappa+1))."""
        k = self.kappa
        return (k + 1) / (2 * k + 1)

    @property
    def lambda_exponent_optimal(self) -> float:
        """Derived optimal growth of the (unnormalised) penalty: lambda ~ n**(1 - kappa/(1+s))."""
        return 1 - self.kappa / (1 + self.smoothness)

    @property
    def nu(self) -> float:
        """Storage exponent nu = alpha beta/(alpha + beta): Err - tau^2 ~ s**-nu at the optimum."""
        a, b = self.alpha, self.beta
        return a * b / (a + b)

    def as_dict(self) -> dict:
        return {"p": self.p, "q": self.q, "r": self.r, "tau": self.tau,
                "total_levels": self.total_levels}

    # -- level structure --------------------------------------------------------------------
    def kept_coefficients(self, m):
        """L = (q**m - 1)/(q - 1): number of stored coefficients when m levels are kept."""
        m = check_m(m, self)
        return (self.q ** m - 1) // (self.q - 1) if np.ndim(m) == 0 else \
            (np.power(float(self.q), m) - 1) / (self.q - 1)

    def truncation_energy(self, m):
        """k_bar_m = sum_{l >= m} (r/p)**l: energy of the discarded levels (acts as extra noise)."""
        m = np.asarray(m, dtype=float)
        if np.any(m < 0):
            raise ValueError(f"m={m} must be >= 0 levels")
        ratio = self.r / self.p
        full = ratio ** m * self.p / (self.p - self.r)  # = r/(p-r) (r/p)**(m-1)
        if self.total_levels is not None:
            full = full - ratio ** np.maximum(m, self.total_levels) * self.p / (self.p - self.r)
        return full if full.ndim else float(full)

    def level_arrays(self, m: int):
        """Per-coordinate arrays for the m kept levels: level index, variance, theta entry."""
        m = int(check_m(m, self))
        level = np.repeat(np.arange(m), [self.q ** l for l in range(m)])
        var = self.p ** (-level.astype(float))
        theta = np.sqrt((self.r / self.q) ** level.astype(float))
        return level, var, theta


def check_n(n, name: str = "n"):
    """Sample sizes must be >= 1 (integers for the simulation)."""
    arr = np.asarray(n, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 1):
        raise ValueError(f"condition violated: {name} >= 1 (number of training samples); got {n!r}")
    return n


def check_m(m, params: ModelParams | None = None):
    """Kept levels must be integers >= 1 (and inside the true model and float range)."""
    arr = np.asarray(m)
    if arr.size == 0 or not np.all(np.isfinite(arr.astype(float))) \
            or np.any(arr.astype(float) < 1) or np.any(np.asarray(arr, float) % 1 != 0):
        raise ValueError(f"condition violated: m >= 1 integer (number of kept levels); got {m!r}")
    if params is not None:
        top = float(np.max(arr))
        if params.total_levels is not None and top > params.total_levels:
            raise ValueError(f"condition violated: m <= total_levels={params.total_levels}; "
                             f"got m={m!r}")
        if top * math.log10(max(params.p, params.q)) > _FLOAT_DECADES:
            raise ValueError(f"m={m!r} too large for float64 closed forms: need "
                             f"m * log10(max(p, q)) <= {_FLOAT_DECADES}")
    return arr.astype(int) if arr.ndim else int(arr)


# --------------------------------------------------------------------------------------------
# Deterministic equivalent (paper-facts §1.11, "Lemma 3.2", Eqs. 15-18 per the authors' code)
# --------------------------------------------------------------------------------------------
def _level_grid(params: ModelParams, m_arr: np.ndarray):
    top = int(np.max(m_arr))
    lev = np.arange(top, dtype=float)
    mask = lev < m_arr[..., None]
    mult = np.where(mask, float(params.q) ** lev, 0.0)  # q**l coefficients (0 if discarded)
    pl = float(params.p) ** lev  # 1 / eigenvalue
    sig = np.where(mask, (params.r / params.p) ** lev, 0.0)  # level signal energy (r/p)**l
    return mult, pl, sig


def _df1(x, mult, pl):
    return np.sum(mult / (1.0 + x[..., None] * pl), axis=-1)


def lambda_star(n, m, lam, params: ModelParams):
    """Effective regularisation lambda_* > 0 solving sum_l q^l p^-l/(p^-l + lambda_*) + lambda/lambda_* = n.

    ``lam`` is the unnormalised ridge penalty (scikit-learn's ``alpha``). Vectorised bisection on
    log(lambda_*) inside the bracket [lam/n, (tr Sigma + lam)/n] plus two Newton polishes.
    """
    check_n(n)
    m_arr = np.asarray(check_m(m, params))
    n, m_arr, lam = np.broadcast_arrays(np.asarray(n, dtype=float), m_arr, np.asarray(lam, dtype=float))
    mult, pl, _ = _level_grid(params, m_arr)
    return solve_lambda_star(n, lam, mult, pl)


def solve_lambda_star(n, lam, mult, pl):
    """lambda_* > 0 solving ``sum_k mult_k / (1 + lambda_* pl_k) + lam / lambda_* = n`` for eigenvalues
    ``1 / pl`` of multiplicities ``mult`` (last axis) and the unnormalised penalty ``lam``:
    :func:`lambda_star` on any spectrum. Vectorised bisection on log(lambda_*) inside the bracket
    [lam/n, (tr Sigma + lam)/n] plus two Newton polishes."""
    lam = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"condition violated: lambda > 0 (ridge penalty); got {lam!r}")
    n = np.asarray(n, dtype=float)
    trace = np.sum(mult / pl, axis=-1)
    lo, hi = np.log(lam / n), np.log((trace + lam) / n)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        x = np.exp(mid)
        positive = _df1(x, mult, pl) + lam / x - n > 0
        lo = np.where(positive, mid, lo)
        hi = np.where(positive, hi, mid)
    x = np.exp(0.5 * (lo + hi))
    for _ in range(2):  # Newton polish (g is convex decreasing, so this is safe near the root)
        g = _df1(x, mult, pl) + lam / x - n
        dg = -np.sum(mult * pl / (1.0 + x[..., None] * pl) ** 2, axis=-1) - lam / x ** 2
        x = np.clip(x - g / dg, np.exp(lo), np.exp(hi))
    return x


def deterministic_equivalent(n, m, lam, params: ModelParams) -> dict[str, np.ndarray]:
    """Deterministic-equivalent test error of ridge on the m kept levels, at penalty ``lam``.

    Returns a dict of arrays (broadcast over n, m, lam): ``lambda_star``, ``df1`` (effective
    dimension), ``D``, ``variance`` V = D/(n-D), ``bias`` B = n/(n-D) lambda_*^2 sum_l
    r^l p^-l/(p^-l+lambda_*)^2, ``kbar`` (discarded energy) and
    ``excess = kbar + B + (tau^2 + kbar) V`` (test error minus tau^2) and ``test = tau^2 + excess``.
    """
    x = lambda_star(n, m, lam, params)
    n, m_arr, lam = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(m), np.asarray(lam, float))
    mult, pl, sig = _level_grid(params, np.asarray(m_arr))
    parts = ridge_terms(n, x, mult, pl, sig)
    kbar = np.asarray(params.truncation_energy(m_arr), dtype=float)
    noise = params.tau ** 2 + kbar
    excess = kbar + parts["bias"] + noise * parts["variance"]
    return {**parts, "kbar": kbar, "excess": excess, "test": params.tau ** 2 + excess}


def ridge_terms(n, x, mult, pl, sig) -> dict[str, np.ndarray]:
    """The deterministic equivalent's parts at lambda_* = ``x`` (:func:`solve_lambda_star`) on any
    spectrum: eigenvalues ``1 / pl`` of multiplicities ``mult`` carrying target energy ``sig`` (the
    sum of eigenvalue x coefficient^2 over each group; last axis). ``df1``, ``D`` (the second
    effective dimension), ``variance`` V = D/(n-D) and ``bias`` B = n/(n-D) x^2 sum sig/(1/pl + x)^2;
    the test error is noise (1 + V) + B."""
    n = np.asarray(n, dtype=float)
    z = x[..., None] * pl  # lambda_* / eigenvalue
    rho = 1.0 / (1.0 + z)  # eigenvalue / (eigenvalue + lambda_*)
    df1 = np.sum(mult * rho, axis=-1)
    D = np.sum(mult * rho ** 2, axis=-1)
    bias_sum = np.sum(sig * (z * rho) ** 2, axis=-1)
    return {"lambda_star": x, "df1": df1, "D": D, "variance": D / (n - D), "bias": n / (n - D) * bias_sum}


def paper_lambda_grid(n, params: ModelParams, c_grid=PAPER_C_GRID, exponent: float | None = None):
    """The paper's penalty grid: lambda = c n**e, e = (kappa+1)/(2 kappa+1); shape n.shape + (len(c),)."""
    e = params.lambda_exponent_paper if exponent is None else exponent
    c = np.asarray(c_grid, dtype=float)
    if c.size == 0 or np.any(c <= 0):
        raise ValueError(f"condition violated: every c in c_grid > 0; got {c_grid!r}")
    return np.asarray(n, dtype=float)[..., None] ** e * c


def de_optimal(n, m, params: ModelParams, *, grid: str = "continuous", c_grid=PAPER_C_GRID,
               lam_range: tuple[float, float] = (1e-12, 1e4)) -> dict[str, np.ndarray]:
    """Deterministic-equivalent excess error minimised over the penalty.

    ``grid="paper"``: minimum over the paper's 20-value grid (the authors' "exact" curve).
    ``grid="continuous"``: minimum over lambda/n in ``lam_range`` (log-grid scan, then a
    vectorised golden-section refinement). Returns ``excess``, ``lam`` (the minimiser) and the
    other parts of :func:`deterministic_equivalent` at the minimiser.
    """
    check_n(n)
    n_b, m_b = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(check_m(m, params)))
    if grid == "paper":
        lams = paper_lambda_grid(n_b, params, c_grid)
        out = deterministic_equivalent(n_b[..., None], m_b[..., None], lams, params)
        k = np.argmin(out["excess"], axis=-1)[..., None]
        res = {key: np.take_along_axis(np.broadcast_to(v, lams.shape), k, -1)[..., 0]
               for key, v in out.items()}
        res["lam"] = np.take_along_axis(lams, k, -1)[..., 0]
        return res
    if grid != "continuous":
        raise ValueError(f"grid={grid!r} must be 'paper' or 'continuous'")
    lo_f, hi_f = lam_range
    if not 0 < lo_f < hi_f:
        raise ValueError(f"lam_range={lam_range!r} must satisfy 0 < low < high")
    u = np.linspace(np.log(lo_f), np.log(hi_f), 61)  # u = log(lambda / n)

    def f(uu):
        extra = uu.ndim > n_b.ndim
        nn = n_b[..., None] if extra else n_b
        mm = m_b[..., None] if extra else m_b
        return deterministic_equivalent(nn, mm, np.exp(uu) * nn, params)["excess"]

    scan = f(np.broadcast_to(u, n_b.shape + u.shape))
    k = np.argmin(scan, axis=-1)
    a = u[np.clip(k - 1, 0, u.size - 1)]
    b = u[np.clip(k + 1, 0, u.size - 1)]
    g = (math.sqrt(5) - 1) / 2
    c1, c2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = f(c1), f(c2)
    for _ in range(50):  # vectorised golden section, one new evaluation per iteration
        left = f1 < f2
        a = np.where(left, a, c1)
        b = np.where(left, c2, b)
        keep_c, keep_f = np.where(left, c1, c2), np.where(left, f1, f2)
        new = np.where(left, b - g * (b - a), a + g * (b - a))
        fnew = f(new)
        c1, f1 = np.where(left, new, keep_c), np.where(left, fnew, keep_f)
        c2, f2 = np.where(left, keep_c, new), np.where(left, keep_f, fnew)
    best = 0.5 * (a + b)
    lam = np.exp(best + np.log(n_b))
    res = deterministic_equivalent(n_b, m_b, lam, params)
    res["lam"] = lam
    return res


def local_slope(f: Callable[[np.ndarray], np.ndarray], x0: float, x1: float) -> float:
    """d log f / d log x between x0 and x1 (two-point slope on log-log axes)."""
    return float((np.log(f(np.asarray(x1))) - np.log(f(np.asarray(x0)))) / (math.log(x1) - math.log(x0)))


# --------------------------------------------------------------------------------------------
# Monte-Carlo simulation
# --------------------------------------------------------------------------------------------
def _draw(rng, rows: int, sd: np.ndarray, theta: np.ndarray, tail_sd: float, dist: str):
    if dist == "uniform":
        X = rng.random((rows, sd.size))
        X *= 2.0
        X -= 1.0
        X *= math.sqrt(3.0) * sd
    else:
        X = rng.standard_normal((rows, sd.size)) * sd
    y = X @ theta + tail_sd * rng.standard_normal(rows)
    return X, y


def _gram(rng, rows: int, sd, theta, tail_sd, dist, chunk_rows):
    """Gram matrix X^T X, X^T y and y^T y of ``rows`` fresh samples, built in row chunks."""
    G = np.zeros((sd.size, sd.size))
    b = np.zeros(sd.size)
    yy = 0.0
    done = 0
    while done < rows:
        k = min(chunk_rows, rows - done)
        X, y = _draw(rng, k, sd, theta, tail_sd, dist)
        G += X.T @ X
        b += X.T @ y
        yy += float(y @ y)
        done += k
    return G, b, yy


def simulate(params: ModelParams, n, m, *, repeats: int = 50, n_val: int = 10_000,
             n_test: int = 10_000, c_grid=PAPER_C_GRID, lam_exponent: float | None = None,
             seed: int = 0, dist: str = "uniform", chunk_rows: int = 8192,
             progress: bool = False, threads: int | None = 1) -> dict[str, np.ndarray]:
    """Monte-Carlo excess test error of validation-tuned ridge on the m kept levels.

    For every repeat (its own random stream ``SeedSequence([seed, repeat])``):

    * one validation set (``n_val`` samples) and one test set (``n_test``) are drawn;
    * the training samples are *nested* across ``n``: the set for n=100 is the first 100 rows of
      the set for n=1000, and the kept levels are nested across ``m`` (the first ``L_m`` columns).
      Each (n, m) point is therefore an exact draw of the model; points of one repeat are
      correlated, repeats are independent;
    * coefficients of the levels ``< max(m)`` are sampled one by one (``dist``: 'uniform' as in
      the authors' code, or 'gaussian'); the levels ``>= max(m)`` (infinitely many, or up to
      ``total_levels``) enter y only through one aggregate Gaussian term of variance
      ``kbar_{max m}`` added to the noise. This is exact for everything reported: the aggregate
      is independent of the kept coordinates, mean zero and i.i.d. across samples, so the ridge
      risk at fixed lambda depends on it only through its variance (Gaussian or the true
      Irwin-Hall-like sum of uniforms give the same expected risk); only the validation noise
      and higher moments differ, and those by O(1/number of discarded coordinates);
    * ridge for all lambdas of the grid at once from one eigendecomposition of X^T X
      (theta_hat(lambda) = U diag(1/(s+lambda)) U^T X^T y); validation and test errors come from
      the Gram matrices of those sets (no loop over samples anywhere);
    * lambda = c n**e with c in ``c_grid`` and e = ``lam_exponent`` (default (kappa+1)/(2kappa+1))
      is chosen by validation mean squared error;
    * BLAS runs on ``threads`` threads (:func:`storage_scaling.threads.limit`; None leaves it
      alone). On a machine shared by several jobs, OpenBLAS's busy-waiting worker threads make the
      small matrix products of the simulation up to ten times slower with 2 threads than with 1
      (measured here: 17.7 s vs 1.5 s per repeat of the paper's grid).

    Returned columns (one row per repeat, n, m): ``repeat, n, m, L, lam, c, c_index, at_edge,
    excess`` (population excess error of the tuned model: the exact expectation over a fresh
    test point, tau^2 removed), ``excess_sampled`` (the same measured on the ``n_test`` fresh test
    samples, NaN if n_test=0), ``oracle_excess`` (best population excess on the grid), ``kbar``.
    """
    n_list = sorted({int(v) for v in np.atleast_1d(check_n(n))})
    if any(abs(float(v) - round(float(v))) > 1e-9 for v in np.atleast_1d(n)):
        raise ValueError(f"n={n!r} must be integers (sample sizes) for the simulation")
    m_list = sorted({int(v) for v in np.atleast_1d(check_m(m, params))})
    for name, value, low in (("repeats", repeats, 1), ("n_val", n_val, 1), ("n_test", n_test, 0),
                             ("chunk_rows", chunk_rows, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"condition violated: {name} >= {low} integer; got {value!r}")
    if dist not in ("uniform", "gaussian"):
        raise ValueError(f"dist={dist!r} must be 'uniform' or 'gaussian'")
    c_arr = np.asarray(c_grid, dtype=float).ravel()
    if c_arr.size == 0 or np.any(~np.isfinite(c_arr)) or np.any(c_arr <= 0):
        raise ValueError(f"condition violated: every c in c_grid > 0; got {c_grid!r}")
    top = m_list[-1]
    L_top = params.kept_coefficients(top)
    if L_top > MAX_SIM_COEFFICIENTS:
        raise ValueError(f"condition violated: L = (q**m-1)/(q-1) <= {MAX_SIM_COEFFICIENTS} for the "
                         f"simulation; m={top} gives L={L_top}. Use the formula for larger m.")
    exponent = params.lambda_exponent_paper if lam_exponent is None else float(lam_exponent)

    _, var, theta = params.level_arrays(top)
    sd = np.sqrt(var)
    tail_sd = math.sqrt(params.tau ** 2 + params.truncation_energy(top))
    L_of = {mm: params.kept_coefficients(mm) for mm in m_list}
    kbar_of = {mm: params.truncation_energy(mm) for mm in m_list}

    cols: dict[str, list] = {k: [] for k in ("repeat", "n", "m", "L", "lam", "c", "c_index",
                                             "at_edge", "excess", "excess_sampled",
                                             "oracle_excess", "kbar")}
    reps = range(int(repeats))
    if progress:
        try:
            from tqdm.auto import tqdm
            reps = tqdm(reps, desc="theory simulation", unit="repeat")
        except ImportError:  # pragma: no cover - tqdm is a package dependency
            pass
    with thread_limits.limit(blas=threads):
        for rep in reps:
            _one_repeat(params, rep, seed, n_list, m_list, c_arr, exponent, n_val, n_test, sd,
                        theta, var, tail_sd, dist, chunk_rows, L_of, kbar_of, cols)
    return {k: np.asarray(v) for k, v in cols.items()}


def _one_repeat(params, rep, seed, n_list, m_list, c_arr, exponent, n_val, n_test, sd, theta,
                var, tail_sd, dist, chunk_rows, L_of, kbar_of, cols):
    """One independent repeat of :func:`simulate`: appends one row per (n, m) to ``cols``."""
    L_top = L_of[m_list[-1]]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(rep)]))
    Gv, bv, yyv = _gram(rng, int(n_val), sd, theta, tail_sd, dist, chunk_rows)
    if n_test:
        Gt, bt, yyt = _gram(rng, int(n_test), sd, theta, tail_sd, dist, chunk_rows)
    G = np.zeros((L_top, L_top))
    b = np.zeros(L_top)
    done = 0
    for nn in n_list:
        while done < nn:
            k = min(chunk_rows, nn - done)
            X, y = _draw(rng, k, sd, theta, tail_sd, dist)
            G += X.T @ X
            b += X.T @ y
            done += k
        lams = c_arr * float(nn) ** exponent
        for mm in m_list:
            L = L_of[mm]
            s, U = np.linalg.eigh(G[:L, :L])
            proj = U.T @ b[:L]
            Theta = U @ (proj[:, None] / (s[:, None] + lams[None, :]))  # L x K estimators
            val = (yyv - 2.0 * bv[:L] @ Theta
                   + np.einsum("ik,ik->k", Theta, Gv[:L, :L] @ Theta)) / n_val
            diff = Theta - theta[:L, None]
            pop = np.einsum("ik,i,ik->k", diff, var[:L], diff) + kbar_of[mm]
            k = int(np.argmin(val))
            if n_test:
                th = Theta[:, k]
                sampled = (yyt - 2.0 * bt[:L] @ th + th @ Gt[:L, :L] @ th) / n_test - params.tau ** 2
            else:
                sampled = np.nan
            for key, v in (("repeat", rep), ("n", nn), ("m", mm), ("L", L),
                           ("lam", lams[k]), ("c", c_arr[k]), ("c_index", k),
                           ("at_edge", k in (0, c_arr.size - 1) and c_arr.size > 1),
                           ("excess", pop[k]), ("excess_sampled", sampled),
                           ("oracle_excess", pop.min()), ("kbar", kbar_of[mm])):
                cols[key].append(v)


def summarize(rows: dict | object, value: str = "excess") -> dict[str, np.ndarray]:
    """Mean, standard error and count of ``value`` per (n, m) from :func:`simulate` rows."""
    n = np.asarray(rows["n"])
    m = np.asarray(rows["m"])
    v = np.asarray(rows[value], dtype=float)
    keys = sorted(set(zip(n.tolist(), m.tolist())))
    out = {"n": [], "m": [], "L": [], "mean": [], "se": [], "count": []}
    for nn, mm in keys:
        sel = (n == nn) & (m == mm)
        vals = v[sel]
        out["n"].append(nn)
        out["m"].append(mm)
        out["L"].append(int(np.asarray(rows["L"])[sel][0]))
        out["mean"].append(vals.mean())
        out["se"].append(vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else np.nan)
        out["count"].append(vals.size)
    return {k: np.asarray(v) for k, v in out.items()}


def simulation_table(cfg: dict):
    """``tables.profile_table`` compute function: parameters dict -> pandas DataFrame of rows.

    ``cfg`` keys: p, q, r, tau, total_levels (optional), n (list), m (list), repeats, n_val,
    n_test, seed, c_min, c_max, c_num (log10 range and count of the c grid), dist.
    """
    import pandas as pd

    params = ModelParams(p=cfg["p"], q=cfg["q"], r=cfg["r"], tau=cfg["tau"],
                         total_levels=cfg.get("total_levels"))
    c_grid = np.logspace(cfg.get("c_min", -2), cfg.get("c_max", 2), cfg.get("c_num", 20))
    rows = simulate(params, cfg["n"], cfg["m"], repeats=cfg["repeats"], n_val=cfg["n_val"],
                    n_test=cfg["n_test"], c_grid=c_grid, seed=cfg.get("seed", 0),
                    dist=cfg.get("dist", "uniform"), progress=cfg.get("progress", False))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Fitting the storage law to a grid (curve_fit in linear space, as the authors did)
# --------------------------------------------------------------------------------------------
def excess_law(nL, A, alpha, B, beta):
    """A n**-alpha + B L**-beta (no constant: tau^2 is already subtracted)."""
    n, L = nL
    return A * np.asarray(n, float) ** -alpha + B * np.asarray(L, float) ** -beta


def fit_excess_law(n, L, excess, sigma=None, p0=(1.0, 0.5, 1.0, 1.0)) -> dict[str, float]:
    """Fit A n^-alpha + B L^-beta with ``scipy.optimize.curve_fit`` in linear space, bounds >= 0.

    Returns the four parameters and their standard errors (``se_<name>``, from pcov).
    """
    n, L, e = (np.asarray(v, dtype=float).ravel() for v in (n, L, excess))
    if not (n.size == L.size == e.size) or n.size < 5:
        raise ValueError(f"need >= 5 matching (n, L, excess) points to fit 4 parameters; got "
                         f"{n.size}, {L.size}, {e.size}")
    popt, pcov = curve_fit(excess_law, (n, L), e, p0=p0, sigma=sigma, bounds=(0, np.inf),
                           maxfev=20000)
    se = np.sqrt(np.diag(pcov))
    names = ("A", "alpha", "B", "beta")
    res = {k: float(v) for k, v in zip(names, popt)}
    res.update({f"se_{k}": float(v) for k, v in zip(names, se)})
    pred = excess_law((n, L), *popt)
    res["r2"] = float(1 - np.sum((e - pred) ** 2) / np.sum((e - e.mean()) ** 2))
    return res


# --------------------------------------------------------------------------------------------
# Symbolic derivation (sympy)
# --------------------------------------------------------------------------------------------
P, Q, R, TAU = sp.symbols("p q r tau", positive=True)
N, S_STORE = sp.symbols("n s", positive=True)
M_LEV = sp.symbols("m", positive=True, integer=True)
ELL = sp.symbols("ell", nonnegative=True, integer=True)
T_CUT = sp.symbols("t", positive=True)  # continuous cut-off level of ridge: lambda_tilde = p**-t


def sym_truncation() -> dict[str, sp.Expr]:
    """Energy of the discarded levels: sum_{l>=m} (r/p)**l, summed by sympy.

    Returns ``sum`` (the unevaluated Sum), ``value`` (sympy's evaluation under r/p < 1) and
    ``closed_form`` r/(p - r) (r/p)**(m-1), with ``check`` = simplify(value - closed_form) = 0.
    """
    s = sp.Sum((R / P) ** ELL, (ELL, M_LEV, sp.oo))
    value = s.doit()
    if isinstance(value, sp.Piecewise):  # sympy returns (closed form, |r/p| < 1), (Sum, True)
        value = value.args[0][0]
    closed = R / (P - R) * (R / P) ** (M_LEV - 1)
    return {"sum": s, "value": sp.simplify(value), "closed_form": closed,
            "check": sp.simplify(value - closed)}


def sym_storage() -> sp.Expr:
    """L(m) = sum_{l<m} q**l = (q**m - 1)/(q - 1) stored coefficients (sympy, q != 1 branch)."""
    value = sp.Sum(Q ** ELL, (ELL, 0, M_LEV - 1)).doit()
    if isinstance(value, sp.Piecewise):  # (m, Eq(q, 1)), ((1 - q**m)/(1 - q), True)
        value = value.args[-1][0]
    return sp.simplify(value)


def sym_beta() -> dict[str, sp.Expr]:
    """beta = -lim_{m->oo} d log kbar_m / d log L(m) = log(p/r)/log q.

    q > 1 is imposed by writing q = 1 + Qm with Qm > 0 for the limit of d log L/dm = log q.
    """
    Qm = sp.symbols("Q_m", positive=True)
    kbar = sym_truncation()["closed_form"]
    dlogk = sp.simplify(sp.diff(sp.expand_log(sp.log(kbar), force=True), M_LEV))
    Lm = ((1 + Qm) ** M_LEV - 1) / Qm
    dlogL = sp.limit(sp.diff(sp.log(Lm), M_LEV), M_LEV, sp.oo).subs(Qm, Q - 1)
    beta = sp.simplify(-dlogk / dlogL)
    return {"dlog_kbar_dm": dlogk, "dlog_L_dm": dlogL, "beta": beta}


def sym_bias_sums() -> dict[str, sp.Expr]:
    """Ridge bias at normalised penalty lambda_tilde = p**-t, split at the cut-off level t.

    Levels with eigenvalue p**-l >> lambda_tilde (l < t) are learned and leave bias
    lambda_tilde**2 (r p)**l each; levels with l >= t are not learned and leave their full energy
    (r/p)**l. sympy sums both geometric series (including the r p = 1 case).
    """
    lam = P ** (-T_CUT)
    learned = sp.Sum(lam ** 2 * (R * P) ** ELL, (ELL, 0, T_CUT - 1)).doit()
    unlearned = sym_truncation()["closed_form"].subs(M_LEV, T_CUT)
    return {"learned": learned, "unlearned": unlearned,
            "rate_non_saturated": sp.log(R / P),  # d log bias / dt when r p > 1
            "rate_saturated": -2 * sp.log(P)}  # when r p < 1 (bias stuck at lambda_tilde**2)


def sym_alpha() -> dict[str, sp.Expr]:
    """alpha from balancing bias e**(-a t) against variance q**t / n over the cut-off level t.

    The effective dimension at cut-off t is d = q**t (variance ~ d/n); the bias decays as
    e**(-a t) with a = log(p/r) if r p > 1 and a = 2 log p if r p < 1 (saturation). Minimising
    over t and taking lim log(Err)/log(n) gives alpha = a/(a + log q) = s/(1 + s), s = a/log q.
    """
    a, g = sp.symbols("a g", positive=True)  # g = log q
    x = sp.symbols("t", real=True)
    err = sp.exp(-a * x) + sp.exp(g * x) / N
    t_star = sp.solve(sp.diff(err, x), x)[0]
    err_star = sp.simplify(err.subs(x, t_star))
    alpha_a = sp.limit(-sp.log(err_star) / sp.log(N), N, sp.oo)
    lam_exp = sp.simplify(1 - sp.log(P) / (a + g))  # lambda = n * p**-t* ~ n**(1 - log p/(a+g))
    sub_ns = {a: sp.log(P / R), g: sp.log(Q)}
    sub_s = {a: 2 * sp.log(P), g: sp.log(Q)}
    return {"error": err, "t_star": t_star, "error_at_t_star": err_star, "alpha_general": alpha_a,
            "alpha_non_saturated": sp.simplify(alpha_a.subs(sub_ns)),
            "alpha_saturated": sp.simplify(alpha_a.subs(sub_s)),
            "lambda_exponent_non_saturated": sp.simplify(lam_exp.subs(sub_ns)),
            "lambda_exponent_saturated": sp.simplify(lam_exp.subs(sub_s)),
            # effective dimension d* = q**t* ~ n**(g/(a+g)); d* <= L  <=>  n <~ L**((a+g)/g)
            "dimension_exponent_non_saturated": sp.simplify((g / (a + g)).subs(sub_ns)),
            "dimension_exponent_saturated": sp.simplify((g / (a + g)).subs(sub_s))}


def sym_optimal_split() -> dict[str, sp.Expr]:
    """Minimise A n**-alpha + B L**-beta under n L = s: n*(s), L*(s), nu and the constant C."""
    A, B, al, be, n = sp.symbols("A B alpha beta n", positive=True)
    obj = A * n ** (-al) + B * (S_STORE / n) ** (-be)
    n_star = sp.solve(sp.diff(obj, n), n)[0]
    L_star = sp.simplify(S_STORE / n_star)
    err = sp.simplify(obj.subs(n, n_star))
    nu = sp.simplify(-sp.limit(sp.log(err) / sp.log(S_STORE), S_STORE, sp.oo))
    return {"objective": obj, "n_star": sp.simplify(n_star), "L_star": L_star, "error": err,
            "nu": nu, "n_exponent": sp.simplify(sp.diff(sp.expand_log(sp.log(n_star), force=True),
                                                        S_STORE) * S_STORE),
            "L_exponent": sp.simplify(sp.diff(sp.expand_log(sp.log(L_star), force=True),
                                              S_STORE) * S_STORE)}


def derived_exponents(params: ModelParams) -> dict[str, float]:
    """The sympy expressions evaluated at ``params`` (cross-checks the float properties)."""
    sub = {P: params.p, Q: params.q, R: params.r}
    beta = float(sym_beta()["beta"].subs(sub))
    alpha_exprs = sym_alpha()
    key = "alpha_saturated" if params.phase == "saturated" else "alpha_non_saturated"
    alpha = float(alpha_exprs[key].subs(sub))
    lam_key = key.replace("alpha", "lambda_exponent")
    return {"kappa": params.kappa, "beta": beta, "alpha": alpha,
            "nu": alpha * beta / (alpha + beta), "n_share": beta / (alpha + beta),
            "L_share": alpha / (alpha + beta),
            "lambda_exponent_optimal": float(alpha_exprs[lam_key].subs(sub)),
            "lambda_exponent_paper": params.lambda_exponent_paper}


# --------------------------------------------------------------------------------------------
# What the theory chapter reports (notebook 05 calls these, plots and glues)
# --------------------------------------------------------------------------------------------
# Exponents listed in the project's reference notes on the paper (paper-facts §1.11; the paper's
# printed theorem was not retrievable): INPUTS, shown beside ours, not results of this package.
REFERENCE_EXPONENTS = {"asymptotic": {"alpha": 0.505, "beta": 1.02},
                       "finite-grid fit": {"alpha": 0.46, "beta": 1.01}}
SATURATED_R = 0.3  # an r with r p < 1: the saturated phase, the literal reading of the theorem
SLOPE_LEVELS = 60  # kept levels for the local n-slopes "far out" (truncation negligible)


def simulation_params(p: float, q: float, r: float, tau: float, *, repeats: int, n_val: int,
                      n_test: int, seed: int) -> tuple[dict, dict]:
    """(full, smoke) parameters of ``results/theory_simulation``: the paper's n x m grid, and a
    toy grid of 4 n, 6 m and 6 repeats."""
    full = dict(p=p, q=q, r=r, tau=tau, total_levels=None, n=list(PAPER_N), m=list(PAPER_M),
                repeats=repeats, n_val=n_val, n_test=n_test, seed=seed,
                c_min=-2, c_max=2, c_num=20, dist="uniform")
    smoke = dict(full, n=[100, 464, 2154, 10000], m=[2, 3, 4, 5, 6, 7], repeats=6, n_val=2000, n_test=2000)
    return full, smoke


def constants_table(params: ModelParams):
    """The model's constants and exponents, each with the formula it comes from."""
    import pandas as pd

    exps = derived_exponents(params)
    p, q, r = params.p, params.q, params.r
    return pd.DataFrame({
        "quantity": ["p", "q", "r", "tau", "q/p (must be < 1)", "r/p (must be < 1)", "r p (phase)",
                     "phase", "kappa = log p / log q", "beta = log(p/r) / log q",
                     "alpha = s/(1+s), s = min(beta, 2 kappa)", "nu = alpha beta/(alpha+beta)",
                     "paper's lambda exponent (kappa+1)/(2kappa+1)", "optimal lambda exponent"],
        "value": [p, q, r, params.tau, q / p, r / p, r * p, params.phase, params.kappa, exps["beta"],
                  exps["alpha"], exps["nu"], exps["lambda_exponent_paper"], exps["lambda_exponent_optimal"]],
    })


def constant_values(params: ModelParams) -> dict:
    """The constants the chapter quotes, keyed by glue name (without ``theory_``). The sympy
    exponents are checked against the closed-form properties first."""
    exps = derived_exponents(params)
    if not (np.isclose(exps["alpha"], params.alpha) and np.isclose(exps["beta"], params.beta)):
        raise RuntimeError(f"sympy exponents {exps['alpha']}, {exps['beta']} disagree with the closed "
                           f"forms {params.alpha}, {params.beta}")
    p, q, r = params.p, params.q, params.r
    return {"kappa": params.kappa, "beta": exps["beta"], "alpha": exps["alpha"], "nu": exps["nu"],
            "n_share": exps["n_share"], "L_share": exps["L_share"], "phase": params.phase, "rp": r * p,
            "qp": q / p, "rp_per_coordinate": r / q * p, "lambda_exp_paper": exps["lambda_exponent_paper"],
            "lambda_exp_opt": exps["lambda_exponent_optimal"],
            "alpha_if_saturated": 2 * params.kappa / (1 + 2 * params.kappa)}


def reading_table(params: ModelParams):
    """The theorem's hypotheses under the two readings of its r (literal, per coordinate)."""
    import pandas as pd

    p, q, r = params.p, params.q, params.r
    return pd.DataFrame({
        "reading": ["literal: r_thm = r", "per coordinate: r_thm = r/q"],
        "r_thm * p": [r * p, r / q * p], "q/p": [q / p, q / p],
        "theorem hypotheses hold": [r * p < 1 and q / p < 1, r / q * p < 1 and q / p < 1],
        "phase of the code's model": [params.phase, params.phase],
    })


def simulation_summary(sim, params: ModelParams):
    """Per (n, m) of the simulation rows ``sim``: mean excess, s.e., count, the formula on the
    paper's penalty grid (``de``), z = (mean - de)/se, relative gap, the same on fresh test
    samples (``sampled_*``) and for the best penalty on the grid (``z_oracle``)."""
    import pandas as pd

    summ = pd.DataFrame(summarize(sim))
    sampled = pd.DataFrame(summarize(sim, "excess_sampled"))
    oracle = pd.DataFrame(summarize(sim, "oracle_excess"))
    summ["de"] = de_optimal(summ["n"].to_numpy(), summ["m"].to_numpy(), params, grid="paper")["excess"]
    summ["z"] = (summ["mean"] - summ["de"]) / summ["se"]
    summ["rel_gap"] = summ["mean"] / summ["de"] - 1
    summ["sampled_mean"] = sampled["mean"]
    summ["sampled_se"] = sampled["se"]
    summ["z_oracle"] = (oracle["mean"] - summ["de"]) / oracle["se"]
    return summ


def simulation_values(sim, summ, params: ModelParams) -> dict:
    """Repeats and points of the simulation, the noise of the sampled test error, and how much
    the truncated tail beyond 14 levels changes the discarded energy at m = 9."""
    test_noise = (sim["excess_sampled"] - sim["excess"]).groupby([sim["n"], sim["m"]]).std().mean()
    deep = ModelParams(p=params.p, q=params.q, r=params.r, tau=params.tau, total_levels=14)
    return {"sim_repeats": int(summ["count"].min()), "sim_points": len(summ),
            "test_noise_sd": float(test_noise),
            "kbar_diff_14": float(params.truncation_energy(9) - deep.truncation_energy(9))}


def de_grid(params: ModelParams, n=PAPER_N, m=PAPER_M):
    """The formula (minimised over the paper's penalty grid) on the n x m grid: n, m, L, excess."""
    import pandas as pd

    grid = pd.DataFrame([(nn, mm, params.kept_coefficients(mm)) for nn in n for mm in m], columns=["n", "m", "L"])
    grid["excess"] = de_optimal(grid["n"].to_numpy(), grid["m"].to_numpy(), params, grid="paper")["excess"]
    return grid


def de_reference_values(params: ModelParams) -> dict:
    """The formula at (n, L) = (1e5, 511) and (1e3, 63), quoted by the chapter."""
    ref = de_optimal(np.array([1e5, 1e3]), np.array([9, 6]), params, grid="paper")["excess"]
    return {"de_1e5_511": float(ref[0]), "de_1e3_63": float(ref[1])}


def slope_far_out(params: ModelParams, levels: int = SLOPE_LEVELS) -> float:
    """The local n-exponent of the formula between n = 1e6 and 1e8 with ``levels`` kept levels."""
    return -local_slope(lambda n: de_optimal(n, levels, params)["excess"], 1e6, 1e8)


def exponent_report(params: ModelParams, summ, grid) -> tuple:
    """The exponents four ways: derived (sympy), local slopes of the formula far out, the law
    fitted to the formula on the paper's grid and to our simulation; beside the reference
    notes. Returns (table indexed by exponent, glue values, the fit to the simulation)."""
    import pandas as pd

    exps = derived_exponents(params)
    fit_sim = fit_excess_law(summ["n"], summ["L"], summ["mean"])
    fit_de = fit_excess_law(grid["n"], grid["L"], grid["excess"])
    alpha_slope = slope_far_out(params)
    levels = np.arange(10, 15)
    beta_slope = -np.polyfit(np.log(params.kept_coefficients(levels)),
                             np.log(de_optimal(1e14, levels, params)["excess"]), 1)[0]
    table = pd.DataFrame({
        "exponent": ["alpha (n)", "beta (L)"],
        "derived (sympy)": [exps["alpha"], exps["beta"]],
        "formula, local slope far out": [alpha_slope, beta_slope],
        "fit to formula, paper's grid": [fit_de["alpha"], fit_de["beta"]],
        "fit to our simulation": [f"{fit_sim['alpha']:.3f} ± {fit_sim['se_alpha']:.3f}",
                                  f"{fit_sim['beta']:.3f} ± {fit_sim['se_beta']:.3f}"],
        **{f"reference notes: {k}": [v["alpha"], v["beta"]] for k, v in REFERENCE_EXPONENTS.items()},
    })
    values = {"fit_sim_alpha": fit_sim["alpha"], "fit_sim_beta": fit_sim["beta"],
              "fit_sim_alpha_se": fit_sim["se_alpha"], "fit_sim_beta_se": fit_sim["se_beta"],
              "fit_de_alpha": fit_de["alpha"], "fit_de_beta": fit_de["beta"],
              "slope_alpha": alpha_slope, "slope_beta": beta_slope}
    return table, {k: float(v) for k, v in values.items()}, fit_sim


def agreement_report(sim, summ, params: ModelParams, grid, c_num: int) -> tuple:
    """Simulation against formula: the per-point table, the glued numbers (share within 3 s.e.,
    points outside, penalties at the ends of the grid, gaps at small and large n...) and a
    sentence with the share of tuned penalties at an end of the grid per m."""
    within = float(np.mean(np.abs(summ["z"]) <= 3))
    outside = summ[np.abs(summ["z"]) > 3]
    de_cont = de_optimal(grid["n"].to_numpy(), grid["m"].to_numpy(), params)["excess"]
    small_n = summ[summ["n"] == summ["n"].min()]
    large_n = summ[summ["n"] >= 1000]
    edge = float(np.mean(sim["at_edge"]))
    edge_by_m = sim.groupby("m")["at_edge"].mean()
    values = {
        "outside_count": len(outside),
        "outside_min_n": int(outside["n"].min()) if len(outside) else 0,
        "outside_max_gap": float(outside["rel_gap"].abs().max()) if len(outside) else 0.0,
        "oracle_max_abs_z": float(np.max(np.abs(summ["z_oracle"]))),
        "at_lower_edge_frac": float(np.mean(sim["c_index"] == 0)),
        "at_upper_edge_frac": float(np.mean(sim["c_index"] == c_num - 1)),
        "at_lower_edge_m2": float(np.mean(sim.loc[sim["m"] == sim["m"].min(), "c_index"] == 0)),
        "grid_vs_continuous_max": float(np.max(grid["excess"] / de_cont - 1)),
        "frac_within_3se": within,
        "max_abs_z": float(np.max(np.abs(summ["z"]))),
        "gap_small_n": float(small_n["rel_gap"].mean()),
        "gap_small_n_value": int(summ["n"].min()),
        "gap_large_n": float(large_n["rel_gap"].abs().max()) if len(large_n) else float("nan"),
        "at_edge_frac": edge,
        "sampled_vs_pop": float(np.max(np.abs(summ["sampled_mean"] - summ["mean"])
                                       / np.hypot(summ["sampled_se"], summ["se"]))),
    }
    table = summ[["n", "L", "mean", "se", "de", "z", "rel_gap", "z_oracle"]].rename(columns={
        "mean": "simulated excess", "se": "s.e.", "de": "formula", "z": "(sim − formula)/s.e.",
        "rel_gap": "relative gap", "z_oracle": "(best λ on grid − formula)/s.e."})
    text = (f"{within:.0%} of the points lie within 3 s.e. of the formula; the chosen penalty sat at an "
            f"end of the grid in {edge:.0%} of fits (by m: "
            + ", ".join(f"m={k}: {v:.0%}" for k, v in edge_by_m.items()) + ").")
    return table, values, text


def validity_map(params: ModelParams, n=None, m=None) -> dict:
    """Ratio of the formula (continuous penalty) to n^-alpha + L^-beta on a grid of n (rows)
    and kept levels m (columns): keys ratio, n, L (2-D arrays), ridge (n = L^(1+2 kappa))."""
    n = np.logspace(0, 12, 37) if n is None else np.asarray(n, float)
    m = np.arange(1, 31) if m is None else np.asarray(m)
    NN, MM = np.meshgrid(n, m, indexing="ij")
    LL = params.kept_coefficients(MM)
    err = de_optimal(NN, MM, params)["excess"]
    return {"ratio": err / (NN ** -params.alpha + LL ** -params.beta), "n": NN, "L": LL,
            "ridge": LL[0] ** (1 + 2 * params.kappa)}


def validity_values(code: dict, sat: dict, sat_params: ModelParams) -> dict:
    """Range of the ratio for the code's parameters, and for the saturated phase inside and
    outside n <= L^(1+2 kappa); the saturated phase's exponents and local slope."""
    inside = sat["n"] <= sat["L"] ** (1 + 2 * sat_params.kappa)
    r_s = sat["ratio"]
    return {"ratio_ns_min": float(code["ratio"].min()), "ratio_ns_max": float(code["ratio"].max()),
            "ratio_sat_in_min": float(r_s[inside].min()), "ratio_sat_in_max": float(r_s[inside].max()),
            "ratio_sat_out_min": float(r_s[~inside].min()), "sat_alpha": sat_params.alpha,
            "sat_beta": sat_params.beta, "sat_naive_alpha": sat_params.beta / (1 + sat_params.beta),
            "sat_slope_alpha": slope_far_out(sat_params)}


def local_slopes(params: ModelParams, n, levels: int = SLOPE_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """-d log(Err - tau^2) / d log n of the formula between consecutive ``n``, at their
    geometric midpoints: (midpoints, slopes)."""
    n = np.asarray(n, float)
    e = de_optimal(n, levels, params)["excess"]
    return np.sqrt(n[1:] * n[:-1]), -np.diff(np.log(e)) / np.diff(np.log(n))


def two_d_example(p: float = 4.02, q: int = 4, r: float = 0.99) -> tuple:
    """The exercise's two-dimensional case (q = 4, so p > 4): derived exponents and the formula's
    local slope far out. Returns (table, glue values)."""
    import pandas as pd

    prm = ModelParams(p=p, q=q, r=r, tau=1.0)
    ex = derived_exponents(prm)
    slope = -local_slope(lambda n: de_optimal(n, 30, prm)["excess"], 1e6, 1e8)
    table = pd.DataFrame({"quantity": ["kappa", "alpha", "beta", "nu"],
                          "derived": [ex["kappa"], ex["alpha"], ex["beta"], ex["nu"]],
                          "formula slope": [np.nan, slope, np.nan, np.nan]})
    return table, {"ex_q4_alpha": ex["alpha"], "ex_q4_beta": ex["beta"], "ex_q4_slope": slope}
