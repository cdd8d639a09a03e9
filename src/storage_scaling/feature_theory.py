"""The multiresolution model's ingredients, measured on a real model's features (chapter 5).

The probe tier is a ridge regression on fixed features: the setting of the stylized model of
:mod:`.theory`, on real images. The model has three ingredients, each with a measurable analogue
on the probe's standardised features of the whole training pool:

* **the spectrum**: level variances ``p**-l`` over ``q**l`` coefficients make the k-th covariance
  eigenvalue fall as ``k**-kappa``; measured: the eigenvalues of the feature covariance;
* **the target's energy**: ``||theta_l||**2 = r**l`` puts energy ``e_k ~ k**-(1 + beta)`` on the
  k-th eigen-direction, so the energy beyond the first K directions falls as ``K**-beta``;
  measured: ``e_k = sum_c (v_k . c_c)**2 / lambda_k`` for the one-vs-rest targets (``c_c`` the
  covariance of the features with class c's indicator), the energy of the population least-squares
  predictor along v_k, *cross-fitted* (one half of the images times the other) so that the
  sampling noise of ``c`` (a floor of about classes / n per direction) cancels in expectation;
* **what compression does**: the model keeps the coarsest levels and drops the rest, so its
  error grows by the dropped target energy, ``L**-beta`` in the kept coefficients L; measured: the
  change of each image's features when it is stored at distance d (same images, compressed minus
  original, in the original's standardisation), per eigen-direction, and its target-relevant part
  ``sum_c ((x_d - x_0) . theta_c)**2`` for the ridge's own weights ``theta`` at the penalty the grid
  chose, against the bytes per image L. Its decay in L is a beta that needs no training.

Exponents come from least squares on log-log axes over a stated range (:func:`power_law`); their
intervals from half-samples of the images (:func:`half_samples`): the pool is cut into random
blocks of images once (``blocks`` statistics, one pass over the features), and each replicate
keeps a random half of the blocks, so a replicate costs one eigendecomposition, not a pass over
the features. The ridge weights whose change is measured are those of all images (held fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .learn import ridge

# The measurement's knobs per profile (``tables.profile_table``): the full one reads the full grid's
# cached whole-pool features; the smoke one the toy grid's (16 centroids, 400 images: shape only).
FULL_PARAMS = {"datasets": ["cifar10-jpg", "food101-64px"], "model": "probe", "profile": "full", "penalty": "grid",
               "blocks": 20, "replicates": 20, "seed": 0, "eigen_range": [10, 1000], "energy_range": [10, 1000],
               "curve_points": 60, "level": 0.95}
SMOKE_PARAMS = {**FULL_PARAMS, "datasets": ["cifar10-jpg"], "profile": "smoke", "penalty": 1.0, "blocks": 4,
                "replicates": 4, "eigen_range": [2, 30], "energy_range": [2, 20], "curve_points": 30}


@dataclass(frozen=True)
class Decay:
    """``v ~ exp(log_c) * x**-exponent``, fitted over ``lo <= x <= hi`` (``points`` of them)."""

    exponent: float
    log_c: float
    lo: float
    hi: float
    points: int

    def __call__(self, x):
        return np.exp(self.log_c) * np.asarray(x, dtype=float) ** -self.exponent


def power_law(x, v, lo: float, hi: float) -> Decay:
    """Least squares of log v on log x over ``lo <= x <= hi`` (non-positive v left out: a
    cross-fitted energy can fall below zero where noise dominates); a ValueError when fewer than
    three points remain, naming the range."""
    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    if x.shape != v.shape or x.ndim != 1:
        raise ValueError(f"x and v must be 1-d arrays of one length, got {x.shape} and {v.shape}")
    if not 0 < lo < hi:
        raise ValueError(f"the fit range must satisfy 0 < lo < hi, got lo={lo}, hi={hi}")
    keep = (x >= lo) & (x <= hi) & (v > 0) & np.isfinite(v)
    if keep.sum() < 3:
        raise ValueError(f"a power law needs 3 positive points in [{lo:g}, {hi:g}], found {int(keep.sum())}: "
                         "widen the range or check the values")
    slope, intercept = np.polyfit(np.log(x[keep]), np.log(v[keep]), 1)
    return Decay(float(-slope), float(intercept), float(lo), float(hi), int(keep.sum()))


# ---------------------------------------------------------------------------------------------
# The spectrum and the target's energy


def block_ids(n: int, blocks: int, seed: int) -> np.ndarray:
    """Each of ``n`` images' block: ``blocks`` random, disjoint blocks of (nearly) equal size."""
    if not 2 <= blocks <= n // 2:
        raise ValueError(f"blocks={blocks} must be at least 2 and at most half the {n} images")
    ids = np.empty(n, dtype=np.int64)
    for b, part in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), blocks)):
        ids[part] = b
    return ids


def block_stats(x: np.ndarray, labels: np.ndarray, num_classes: int, ids: np.ndarray) -> list[ridge.GramStats]:
    """The ridge statistics of each block of images (``ids``: :func:`block_ids`; one shift for
    all, so they add up): the pieces every half-sample reweighs."""
    shift = np.asarray(x[: min(len(x), 4096)], dtype=np.float64).mean(0)
    return [ridge.GramStats.of(np.asarray(x[part]), labels[part], num_classes, shift=shift)
            for part in (np.flatnonzero(ids == b) for b in range(int(ids.max()) + 1))]


def weighted(stats: list[ridge.GramStats], weights, gram: bool = True) -> ridge.GramStats:
    """The statistics of the blocks taken ``weights`` times each (a half-sample); without the Gram
    matrix (``gram=False``, None in its place) where only the class covariances are read."""
    pairs = [(wi, s) for wi, s in zip(np.asarray(weights, dtype=float), stats) if wi > 0]
    return ridge.GramStats(int(round(sum(wi * s.n for wi, s in pairs))), stats[0].shift,
                           sum(wi * s.sums for wi, s in pairs), sum(wi * s.gram for wi, s in pairs) if gram else None,
                           sum(wi * s.class_sums for wi, s in pairs), sum(wi * s.class_counts for wi, s in pairs))


@dataclass
class Spectrum:
    """The standardised features' covariance eigenpairs (largest first), the cross-fitted target
    energy per eigen-direction, and the features' scales (to put compressed features in the same units)."""

    eigenvalues: np.ndarray  # (d,)
    vectors: np.ndarray  # (d, d), columns
    target_energy: np.ndarray  # (d,) cross-fitted e_k
    class_cov: np.ndarray  # (d, C) covariance of standardised features with the centred one-hot targets
    scale: np.ndarray  # the features' standard deviations (compressed minus original is divided by them)
    n: int
    target_variance: float = np.nan  # sum over classes of p_c (1 - p_c): the one-hot targets' total variance

    @property
    def noise(self) -> float:
        """The one-vs-rest targets' variance no linear function of the features explains: the total
        minus the cross-fitted energy of every direction (the deterministic equivalent's noise)."""
        return float(self.target_variance - self.target_energy.sum())

    def ridge_weights(self, penalty: float) -> np.ndarray:
        """theta = (C + penalty I)^-1 c in standardised units: the probe's weights at a penalty
        factor (``penalty * trace(X^T X)/d`` with trace/d = n for standardised features)."""
        return self.vectors @ ((self.vectors.T @ self.class_cov) / (self.eigenvalues + penalty)[:, None])


def _class_cov(stats: list[ridge.GramStats], weights: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The standardised features' covariance with the centred one-hot targets, (d, C), of the blocks
    weighed by ``weights`` (no Gram matrix summed)."""
    part = weighted(stats, weights, gram=False)
    return part.centred_xty() / scale[:, None] / part.n


def spectrum(stats: list[ridge.GramStats], weights=None) -> Spectrum:
    """:class:`Spectrum` of the blocks weighed by ``weights`` (all ones: the data as they are). The
    target energy multiplies the class covariances of the first and the second half of the blocks
    that have weight (disjoint images: their sampling noise is independent)."""
    weights = np.ones(len(stats)) if weights is None else np.asarray(weights, dtype=float)
    whole = weighted(stats, weights)
    centred = whole.centred_gram()
    scale = whole.scale(centred)
    cov = centred / np.outer(scale, scale) / whole.n
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1].copy(), vectors[:, ::-1].copy()
    used = np.flatnonzero(weights > 0)
    a, b = np.zeros_like(weights), np.zeros_like(weights)
    a[used[: len(used) // 2]] = weights[used[: len(used) // 2]]
    b[used[len(used) // 2:]] = weights[used[len(used) // 2:]]
    pa, pb = vectors.T @ _class_cov(stats, a, scale), vectors.T @ _class_cov(stats, b, scale)
    energy = (pa * pb).sum(1) / np.maximum(values, 1e-300)
    class_cov = whole.centred_xty() / scale[:, None] / whole.n
    p = whole.y_mean()
    return Spectrum(values, vectors, energy, class_cov, scale, whole.n, float(np.sum(p * (1 - p))))


def half_samples(blocks: int, replicates: int, seed: int) -> np.ndarray:
    """``replicates`` weightings of the blocks, each a random half of them (weight 2, the rest 0).
    A half-sample without replacement, not a bootstrap with replacement: a duplicated block adds
    no new directions, and the spectrum's small eigenvalues move with it (a percentile interval
    that misses its own estimate). The spread of half-sample estimates about the full estimate
    approximates the full estimate's sampling spread (the delete-half jackknife)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((replicates, blocks))
    for row in out:
        row[rng.choice(blocks, blocks // 2, replace=False)] = 2.0
    return out


# ---------------------------------------------------------------------------------------------
# What compression does


def compression_change(spec: Spectrum, original: np.ndarray, compressed: np.ndarray, theta: np.ndarray,
                       chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the target-relevant change ``sum_c ((x_d - x_0) . theta_c)**2``; and per
    eigen-direction, the mean squared change ``mean_i ((x_d - x_0)_i . v_k)**2`` (standardised
    units; rows of ``original`` and ``compressed`` are the same images)."""
    if original.shape != compressed.shape:
        raise ValueError(f"original and compressed features must be the same images, got {original.shape} "
                         f"and {compressed.shape}")
    per_image = np.empty(len(original))
    per_direction = np.zeros(spec.vectors.shape[1])
    for start in range(0, len(original), chunk):
        stop = start + chunk
        delta = (np.asarray(compressed[start:stop], np.float64) - np.asarray(original[start:stop], np.float64)) \
            / spec.scale
        per_image[start:stop] = ((delta @ theta) ** 2).sum(1)
        per_direction += ((delta @ spec.vectors) ** 2).sum(0)
    return per_image, per_direction / len(original)


# ---------------------------------------------------------------------------------------------
# From the measured decays to the model's exponents


def predicted_exponents(kappa: float, beta_spectrum: float, beta_bytes: float) -> dict[str, float]:
    """The chapter's closed forms fed measured decays: alpha = s/(1+s) with s = min(beta, 2 kappa)
    for the spectral beta (the model's beta counts kept coefficients), and nu = alpha beta/(alpha +
    beta) for the beta measured against bytes (the law's L). NaN where a decay is not positive: a
    spectral beta <= 0 (target energy falling no faster than 1/k) lies outside the model (r >= p),
    which then has no alpha to predict."""
    s = min(beta_spectrum, 2 * kappa) if np.isfinite(beta_spectrum) and np.isfinite(kappa) else np.nan
    alpha = s / (1 + s) if s > 0 else np.nan
    nu = alpha * beta_bytes / (alpha + beta_bytes) if np.isfinite(alpha) and beta_bytes > 0 else np.nan
    return {"kappa": kappa, "beta_spectrum": beta_spectrum, "beta_bytes": beta_bytes, "alpha": alpha, "nu": nu}


def interval(estimate: float, halves, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` range of the half-sample estimates, widened to hold the estimate
    itself: where half the images shift an estimate systematically (a spectrum's tail depends on
    n), that shift counts as uncertainty rather than leaving an interval that misses its estimate."""
    h = np.asarray(halves, dtype=float)
    h = h[np.isfinite(h)]
    if len(h) == 0 or not np.isfinite(estimate):
        return np.nan, np.nan
    lo, hi = np.quantile(h, [(1 - level) / 2, (1 + level) / 2])
    return float(min(lo, estimate)), float(max(hi, estimate))


def summary_rows(point: dict, halves: list[dict], level: float = 0.95) -> pd.DataFrame:
    """One row per quantity: the estimate on all images and its half-sample interval."""
    return pd.DataFrame([{"quantity": q, "estimate": value, **dict(zip(("lo", "hi"), interval(
        value, [h[q] for h in halves], level))), "level": level, "replicates": len(halves)}
        for q, value in point.items()])


# ---------------------------------------------------------------------------------------------
# The learning curve: the chapter's deterministic equivalent fed the whole measured spectrum


def de_curve(spec: Spectrum, n, factors, kbar: float = 0.0) -> dict[str, np.ndarray]:
    """Chapter 5's deterministic equivalent of the probe's one-vs-rest ridge (penalty ``factor * n``
    on standardised features, as :class:`Spectrum.ridge_weights`), fed every measured eigenvalue and
    target energy instead of fitted power laws, at each training size ``n``, minimised over the
    penalty ``factors`` (the probe's grid: it picks its penalty on held-out images). ``kbar``: target
    energy compression removes, which the model turns into noise (``excess = kbar + B + (noise +
    kbar) V``). Returns per n the test mean squared error (summed over classes), its excess over the
    noise, and the penalty factor that minimises it."""
    from . import theory

    n = np.asarray(n, dtype=float)
    factors = np.asarray(factors, dtype=float)
    keep = spec.eigenvalues > 1e-12 * spec.eigenvalues[0]  # numerically zero directions carry no signal
    pl, sig = 1.0 / spec.eigenvalues[keep], spec.target_energy[keep]
    lam = n[:, None] * factors[None, :]
    x = theory.solve_lambda_star(n[:, None], lam, 1.0, pl)
    parts = theory.ridge_terms(n[:, None], x, 1.0, pl, sig)
    excess = kbar + np.maximum(parts["bias"], 0.0) + (spec.noise + kbar) * parts["variance"]
    best = np.argmin(excess, axis=1)
    rows = np.arange(len(n))
    return {"n": n, "test": spec.noise + excess[rows, best], "excess": excess[rows, best], "penalty": factors[best]}


def held_out_mse(train: ridge.GramStats, test: ridge.GramStats, factors) -> np.ndarray:
    """The probe's ridge fitted on ``train``'s statistics (standardised on them, intercept by
    centring) at each penalty factor, and its one-vs-rest mean squared error (summed over classes)
    on ``test``'s rows; both gathered with one shift. The measured point beside :func:`de_curve`."""
    if not np.array_equal(train.shift, test.shift):
        raise ValueError("the training and test statistics must be gathered with the same shift (block_stats)")
    centred = train.centred_gram()
    scale = train.scale(centred)
    values, vectors = np.linalg.eigh(centred / np.outer(scale, scale) / train.n)
    proj = vectors.T @ (train.centred_xty() / scale[:, None] / train.n)  # (d, C)
    y_mean, delta, m = train.y_mean(), train.mean() - test.shift, test.n
    second = (test.gram - np.outer(test.sums, delta) - np.outer(delta, test.sums) + m * np.outer(delta, delta)) \
        / np.outer(scale, scale) / m  # mean (x - mu)(x - mu)^T / s s^T over the test rows
    cross = (test.class_sums.T - np.outer(delta, test.class_counts) - np.outer(test.sums - m * delta, y_mean)) \
        / scale[:, None] / m  # mean (x - mu)/s (y - y_mean)^T
    y_sq = 1.0 - 2.0 * test.class_counts @ y_mean / m + y_mean @ y_mean
    second, cross = vectors.T @ second @ vectors, vectors.T @ cross
    out = []
    for f in np.asarray(factors, dtype=float):
        g = proj / (np.maximum(values, 0.0) + f)[:, None]  # the weights in the eigenbasis
        out.append(y_sq - 2.0 * np.sum(g * cross) + np.sum(g * (second @ g)))
    return np.array(out)


def check_blocks(blocks: int) -> np.ndarray:
    """Training sizes of the held-out check, in blocks: up to 5 log-spaced counts of the first half
    of the blocks (the second half is the test set)."""
    return np.unique(np.round(np.geomspace(1, blocks // 2, 5)).astype(int))


# ---------------------------------------------------------------------------------------------
# The measurement on a grid's whole-pool features, as one table


def grid_features(dataset: str, model: str, profile: str):
    """The cached features of the grid's largest subset (the whole pool) at each format (first seed), the labels, each
    format's mean bytes per image, and the grid's run parameters: ``[(fmt, x, bytes)], labels, run``
    (``fmt`` "original" or the distance). Features are computed and cached where missing."""
    from .experiments import kinds
    from .learn import learners, probe

    runs = grid_runs(dataset, model, profile)
    largest = max(r["n"] for r in runs)  # the whole pool in the full spec
    runs = [r for r in runs if r["n"] == largest and r["seed"] == runs[0]["seed"]]
    grid, probe_model = kinds.get("grid"), learners.get(model)
    out, labels, dictionary = [], None, None
    for run in runs:  # one probe block: the same config and dictionary for every format
        training = grid.training_set(run, grid.plan(run))
        if dictionary is None:
            config = probe_model.config(run).validate(training.entry.pixels().shape[1:])
            dictionary = probe.dataset_dictionary(dataset, config, classes=run["classes"], limit=run["test_n"],
                                                  progress=False)
        x = learners.probe_features(training, config, dictionary, dataset)
        fmt = "original" if run["codec"] == "original" else float(run["distance"])
        out.append((fmt, x, float(training.storage["mean_bytes"])))
        labels = training.labels
    if not out or out[0][0] != "original":
        raise ValueError(f"the grid spec of {dataset}/{model} ({profile}) must list 'original' first among its formats")
    return out, labels, runs[0]


def grid_runs(dataset: str, model: str, profile: str) -> list[dict]:
    """The runs of the grid spec of ``profile`` for one dataset and model (their sizes ``n`` are the
    learning curve's)."""
    from .experiments import specs

    return specs.build_runs("grid", specs.restrict(specs.default_spec("grid", profile), datasets=[dataset],
                                                   models=[model]))


def grid_penalty(dataset: str, model: str) -> float:
    """The penalty factor the committed full grid chose for the whole pool in the original format
    (seed 0): the ridge weights whose change under compression is measured."""
    from . import paths
    from .experiments import kinds
    from .results import read_rows

    path = kinds.result_path("grid", model, paths.results_dir())
    rows = read_rows(path) if path.is_file() else pd.DataFrame({"dataset": []})
    rows = rows[(rows["dataset"] == dataset)] if len(rows) else rows
    rows = rows[(rows["codec"] == "original") & (rows["seed"] == 0)] if len(rows) else rows
    if rows.empty:
        raise ValueError(f"no committed grid row of {dataset}/{model} at the original format: run the grid first "
                         f"(storage-scaling run grid --profile full --models {model} --datasets {dataset}), or give "
                         "a number as the penalty")
    return float(rows.loc[rows["n"].idxmax(), "penalty"])


def curve_points(d: int, points: int) -> np.ndarray:
    """About ``points`` log-spaced eigen-indices 1..d (the figure's points; fits use every index)."""
    return np.unique(np.round(np.logspace(0, np.log10(d), points)).astype(int))


def check_params(params: dict) -> dict:
    """The measurement's knobs, or a ValueError naming the first bad one (before any data is read)."""
    if not params.get("datasets"):
        raise ValueError("datasets must name at least one dataset, e.g. ['cifar10-jpg']")
    if params.get("model") != "probe":
        raise ValueError(f"model {params.get('model')!r}: the measurement reads the probe's features (model 'probe')")
    for key in ("eigen_range", "energy_range"):
        lo, hi = params[key]
        if not 0 < lo < hi:
            raise ValueError(f"{key}={params[key]!r} must be [lo, hi] with 0 < lo < hi (eigen-indices)")
    if int(params["blocks"]) < 2 or int(params["replicates"]) < 1:
        raise ValueError(f"blocks={params['blocks']} must be >= 2 and replicates={params['replicates']} >= 1")
    if not 0 < float(params["level"]) < 1:
        raise ValueError(f"level={params['level']} must lie in (0, 1), e.g. 0.95")
    if params["penalty"] != "grid" and not float(params["penalty"]) > 0:
        raise ValueError(f"penalty={params['penalty']!r} must be 'grid' (the committed grid's choice) or a number > 0")
    return params


def measure_table(params: dict) -> pd.DataFrame:
    """:func:`measure` for each of ``params["datasets"]``, one long table."""
    check_params(params)
    return pd.concat([measure({**params, "dataset": ds}) for ds in params["datasets"]], ignore_index=True)


def line_at(x, v, exponent: float, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Two points of the line ``c x**-exponent`` from ``lo`` to ``hi``, its ``c`` the least-squares
    intercept (in logs) of the positive ``v`` at ``lo <= x <= hi``: a fitted exponent drawn through
    the points a figure shows."""
    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    keep = (x >= lo) & (x <= hi) & (v > 0)
    log_c = np.mean(np.log(v[keep]) + exponent * np.log(x[keep]))
    ends = np.array([lo, hi], dtype=float)
    return ends, np.exp(log_c) * ends ** -exponent


def exponent_or_nan(x, v, lo: float, hi: float) -> float:
    """:func:`power_law`'s exponent, NaN where too few positive points lie in the range (a half-sample
    or a toy-size run may have none: the table then says the decay was not measured)."""
    try:
        return power_law(x, v, lo, hi).exponent
    except ValueError:
        return np.nan


def measure(params: dict) -> pd.DataFrame:
    """The whole measurement for ``params`` (dataset, model, profile, penalty, blocks, replicates,
    seed, eigen_range, energy_range, curve_points, level) as one long table:

    * ``kind = "curve"``: at log-spaced eigen-indices k, the eigenvalue, the cross-fitted target
      energy and (one column per format ``change d=..``) the mean squared feature change over the
      eigenvalue (the model: 0 on kept levels, 1 on dropped ones);
    * ``kind = "compression"``: per format, bytes per image and the target-relevant change with
      its interval;
    * ``kind = "exponent"``: kappa, the spectral and the byte betas, the predicted alpha and nu,
      and the deterministic equivalent's alpha (``alpha_de``: the slope of its excess error over the
      grid's sizes, original format) with its nu (``nu_de``, with the byte beta), each with its
      half-sample interval (``estimate``, ``lo``, ``hi``; :func:`interval`);
    * ``kind = "learning_curve"``: per format (``distance``; none for the original) and grid size
      ``train_n``, :func:`de_curve`'s test error, excess and penalty (``de_test``, ``de_excess``,
      ``de_penalty``), compression entering as the measured target-relevant change (``kbar``);
    * ``kind = "de_check"``: the ridge itself on the first half of the blocks (``train_n`` images),
      its mean squared error on the second half (``ridge_test``, the best penalty of the probe's
      grid) beside :func:`de_curve`'s at the same size (``de_test``; ``noise`` its floor).
    """
    from tqdm.auto import tqdm

    from . import data, threads
    from .learn import learners

    penalty = grid_penalty(params["dataset"], params["model"]) if params["penalty"] == "grid" \
        else float(params["penalty"])
    with threads.limit(blas=2, lower_only=True):
        formats, labels, run = grid_features(params["dataset"], params["model"], params["profile"])
        k_classes = data.num_classes(params["dataset"], run["classes"])
        factors = learners.get(params["model"]).config(run).penalty_factors()  # the probe's own grid
        sizes = np.array(sorted({r["n"] for r in grid_runs(params["dataset"], params["model"], params["profile"])}))
        x0 = formats[0][1]
        block_of = block_ids(len(x0), int(params["blocks"]), int(params["seed"]))
        stats = block_stats(x0, labels, k_classes, block_of)
        full = spectrum(stats)
        theta = full.ridge_weights(penalty)
        lossy = [(fmt, x, L) for fmt, x, L in formats[1:]]
        changes, directions = {}, {}
        for fmt, x, _ in lossy:
            changes[fmt], directions[fmt] = compression_change(full, x0, x, theta)
        block_sums = {fmt: np.bincount(block_of, weights=v, minlength=int(params["blocks"])) for fmt, v in changes.items()}
        block_n = np.bincount(block_of, minlength=int(params["blocks"])).astype(float)
        byte_values = np.array([L for _, _, L in lossy])

        def exponents(sp: Spectrum, weights) -> dict:
            k = np.arange(1, len(sp.eigenvalues) + 1)
            kappa = exponent_or_nan(k, sp.eigenvalues, *params["eigen_range"])
            beta_spectrum = exponent_or_nan(k, sp.target_energy, *params["energy_range"]) - 1
            means = np.array([(weights * block_sums[fmt]).sum() / (weights * block_n).sum() for fmt, _, _ in lossy])
            beta_bytes = exponent_or_nan(byte_values, means, byte_values.min(), byte_values.max())
            excess = de_curve(sp, sizes, factors)["excess"]
            alpha_de = exponent_or_nan(sizes, excess, sizes.min(), sizes.max())
            nu_de = alpha_de * beta_bytes / (alpha_de + beta_bytes) if alpha_de > 0 and beta_bytes > 0 else np.nan
            return {**predicted_exponents(kappa, beta_spectrum, beta_bytes), "alpha_de": alpha_de, "nu_de": nu_de,
                    **{f"change d={fmt:g}": m for (fmt, _, _), m in zip(lossy, means)}}

        point = exponents(full, np.ones(len(stats)))
        replicates = [exponents(spectrum(stats, w), w) for w in tqdm(
            half_samples(len(stats), int(params["replicates"]), int(params["seed"]) + 1),
            desc=f"{params['dataset']}: half-samples of the images", disable=None)]
        half = len(stats) // 2  # the held-out check: train on the first blocks, test on the second half
        test = weighted(stats, np.r_[np.zeros(half), np.ones(len(stats) - half)])
        check = []
        for b in check_blocks(len(stats)):
            train = weighted(stats, np.r_[np.ones(b), np.zeros(len(stats) - b)])
            de = de_curve(full, [train.n], factors)
            check.append({"kind": "de_check", "train_n": train.n, "ridge_test": float(held_out_mse(train, test, factors).min()),
                          "de_test": float(de["test"][0]), "noise": full.noise})
        curves = []
        for fmt, kbar in [("original", 0.0)] + [(fmt, float(changes[fmt].mean())) for fmt, _, _ in lossy]:
            de = de_curve(full, sizes, factors, kbar)
            curves.append(pd.DataFrame({"kind": "learning_curve", "distance": np.nan if fmt == "original" else fmt,
                                        "kbar": kbar, "train_n": sizes, "de_test": de["test"],
                                        "de_excess": de["excess"], "de_penalty": de["penalty"]}))
    summary = summary_rows(point, replicates, float(params["level"]))
    is_change = summary["quantity"].str.startswith("change d=")
    exps = summary[~is_change].assign(kind="exponent")
    comp = summary[is_change].assign(kind="compression",
                                     distance=[fmt for fmt, _, _ in lossy], mean_bytes=byte_values,
                                     original_bytes=formats[0][2])
    k = curve_points(len(full.eigenvalues), int(params["curve_points"]))
    curve = pd.DataFrame({"kind": "curve", "k": k, "eigenvalue": full.eigenvalues[k - 1],
                          "target_energy": full.target_energy[k - 1],
                          **{f"change d={fmt:g}": directions[fmt][k - 1] / full.eigenvalues[k - 1] for fmt, _, _ in lossy}})
    return pd.concat([exps, comp, curve, *curves, pd.DataFrame(check)], ignore_index=True).assign(
        dataset=params["dataset"], model=params["model"], n=full.n, features=len(full.eigenvalues), penalty=penalty)


# ---------------------------------------------------------------------------------------------
# Beside chapter 3's fits

FITTED = {"alpha": "alpha", "alpha_de": "alpha", "beta_bytes": "beta", "nu": "nu", "nu_de": "nu"}  # ours -> chapter 3's
ROUTES = {"alpha": "closed form (spectral decays)", "alpha_de": "deterministic equivalent (whole spectrum)",
          "beta_bytes": "target-relevant change vs bytes", "nu": "closed form (spectral decays)",
          "nu_de": "deterministic equivalent (whole spectrum)"}  # how each prediction is made
FIT_LABEL = "robust, with floor"  # chapter 3's fit of our grids (law_report.exponents_across_models)


def comparison(measured: pd.DataFrame, boot: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, exponent, route): the prediction from the measured features (:data:`ROUTES`)
    and chapter 3's fit of the same model's grid (``boot``: ``results/law_grid_bootstrap``), each
    with its interval, and whether the intervals overlap ("no prediction" where the route has none)."""
    rows = []
    exps = measured[measured["kind"] == "exponent"]
    for (ds, model), part in exps.groupby(["dataset", "model"]):
        got = part.set_index("quantity")
        fits = boot[(boot["dataset"] == ds) & (boot["model"] == model) & (boot["kind"] == "interval")
                    & (boot["fit"] == FIT_LABEL)].set_index("quantity")
        for ours, theirs in FITTED.items():
            if ours not in got.index:  # a table measured before the route existed
                continue
            p, f = got.loc[ours], fits.loc[theirs] if theirs in fits.index else None
            fitted = (np.nan,) * 3 if f is None else (float(f["point"]), float(f["lo"]), float(f["hi"]))
            if not np.isfinite(p["estimate"]):
                verdict = "no prediction"
            elif not np.isfinite(fitted[0]):
                verdict = "no fit"
            else:
                verdict = "intervals overlap" if p["lo"] <= fitted[2] and fitted[1] <= p["hi"] else "intervals disjoint"
            rows.append({"dataset": ds, "model": model, "exponent": theirs, "route": ROUTES[ours], "predicted": p["estimate"],
                         "predicted_lo": p["lo"], "predicted_hi": p["hi"], "fitted": fitted[0], "fitted_lo": fitted[1],
                         "fitted_hi": fitted[2], "verdict": verdict})
    return pd.DataFrame(rows)


def comparison_sentence(table: pd.DataFrame, measured: pd.DataFrame, label=str) -> str:
    """What :func:`comparison` shows, in words, with the measured decays it rests on."""
    out = []
    for (ds, model), part in table.groupby(["dataset", "model"]):
        got = measured[(measured["dataset"] == ds) & (measured["kind"] == "exponent")].set_index("quantity")

        def q(name, fmt=".2f"):
            r = got.loc[name]
            return f"{r['estimate']:{fmt}} [{r['lo']:{fmt}}, {r['hi']:{fmt}}]"

        energy = 1 + got.loc["beta_spectrum", "estimate"]
        bits = [f"eigenvalues fall as k^-{q('kappa')}, the target's energy per direction as k^-{energy:.2f} "
                f"(a spectral beta of {q('beta_spectrum')})"]
        for r in part.itertuples():
            fitted = f"{r.fitted:.2f} [{r.fitted_lo:.2f}, {r.fitted_hi:.2f}]"
            name = f"{r.exponent}, {r.route.split(' (')[0]}"
            if r.verdict == "no prediction":
                why = "the model needs a spectral beta above 0" if r.route == ROUTES["alpha"] else "no decay to fit"
                bits.append(f"{name}: no prediction ({why}), fitted {fitted}")
            else:
                bits.append(f"{name}: predicted {r.predicted:.2f} [{r.predicted_lo:.2f}, {r.predicted_hi:.2f}], "
                            f"fitted {fitted} ({r.verdict})")
        out.append(f"{label(ds)}, {label(model)}: " + "; ".join(bits))
    return ". ".join(out) + "." if out else "pending (no measurement yet)"
