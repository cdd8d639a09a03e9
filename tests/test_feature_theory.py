"""The theory's ingredients measured on features: estimators checked on synthetic features whose
spectrum, target energy and compression decays are planted, so the exponents are known."""

import numpy as np
import pytest
from scipy.linalg import hadamard

from storage_scaling import feature_theory as ft

KAPPA, BETA = 1.5, 0.8  # planted: eigenvalues k**-kappa, target energy k**-(1 + beta)
D, N, CLASSES = 128, 12_000, 4


def planted(seed=0, classes=CLASSES):
    """Gaussian features with eigenvalues k**-KAPPA along the columns of a Hadamard matrix (every
    coordinate then has the same variance, so standardising rotates nothing), and labels
    from linear scores whose energy along direction k is k**-(1 + BETA) (argmax over classes of
    score + noise; with two classes, the sign of one score: by Stein's lemma the indicator's
    covariance with Gaussian features is then proportional to the score's, so its energy decays
    exactly as planted). Returns features, labels, the directions and the eigenvalues."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, D + 1)
    lam = k ** -KAPPA
    basis = hadamard(D) / np.sqrt(D)
    z = rng.standard_normal((N, D)) * np.sqrt(lam)
    x = z @ basis.T
    # per class, coefficients theta_k with theta_k**2 lam_k = k**-(1+beta) (random signs)
    theta = np.sqrt(k ** -(1 + BETA) / lam)[:, None] * rng.choice([-1.0, 1.0], size=(D, classes))
    score = z @ theta + 0.3 * rng.standard_normal((N, classes))
    labels = (score[:, 0] > 0).astype(int) if classes == 2 else score.argmax(1)
    return x.astype(np.float32), labels, basis, lam


def test_power_law_recovers_an_exact_exponent_and_refuses_too_few_points():
    x = np.arange(1.0, 200.0)
    fit = ft.power_law(x, 3.0 * x ** -1.7, 5, 150)
    assert fit.exponent == pytest.approx(1.7) and np.exp(fit.log_c) == pytest.approx(3.0)
    assert fit.points == 146 and fit(10.0) == pytest.approx(3.0 * 10 ** -1.7)
    with pytest.raises(ValueError, match=r"3 positive points in \[500, 900\]"):
        ft.power_law(x, x ** -1.0, 500, 900)
    with pytest.raises(ValueError, match="0 < lo < hi"):
        ft.power_law(x, x, 10, 5)


def test_planted_spectrum_and_target_energy_are_recovered_within_their_intervals():
    x, labels, _, _ = planted(classes=2)
    stats = ft.block_stats(x, labels, 2, ft.block_ids(N, 8, seed=0))
    full = ft.spectrum(stats)
    k = np.arange(1, D + 1)
    kappa = ft.power_law(k, full.eigenvalues, 3, 60).exponent
    halves = [ft.power_law(k, ft.spectrum(stats, w).eigenvalues, 3, 60).exponent
              for w in ft.half_samples(8, 12, seed=1)]
    lo, hi = ft.interval(kappa, halves)
    assert lo <= kappa <= hi
    assert abs(kappa - KAPPA) < 0.15
    energy = ft.power_law(k, full.target_energy, 2, 30).exponent
    halves = [ft.power_law(k, ft.spectrum(stats, w).target_energy, 2, 30).exponent
              for w in ft.half_samples(8, 12, seed=1)]
    lo, hi = ft.interval(energy, halves)
    assert lo - 0.1 <= 1 + BETA <= hi + 0.1 and abs(energy - (1 + BETA)) < 0.2


def test_cross_fitting_removes_the_noise_floor_of_the_target_energy():
    # labels independent of the features: every direction's true target energy is zero; the plain
    # estimate sits on a floor of about classes / n, the cross-fitted one scatters around zero
    x, _, _, _ = planted()
    labels = np.random.default_rng(5).integers(0, CLASSES, N)
    full = ft.spectrum(ft.block_stats(x, labels, CLASSES, ft.block_ids(N, 8, seed=0)))
    plain = ((full.vectors.T @ full.class_cov) ** 2).sum(1) / full.eigenvalues
    assert plain.mean() > 0.5 * (CLASSES - 1) / CLASSES / N * 0.75  # the floor (indicator variance 3/16)
    assert abs(full.target_energy.mean()) < 0.2 * plain.mean()
    assert (full.target_energy < 0).mean() > 0.3


def test_compression_that_drops_fine_directions_gives_the_planted_beta_in_bytes():
    # "compression" keeping the first K directions, K proportional to the bytes: the target-relevant
    # change is the dropped target energy, K**-beta, so the byte beta is the planted one
    x, labels, basis, lam = planted()
    full = ft.spectrum(ft.block_stats(x, labels, CLASSES, ft.block_ids(N, 8, seed=0)))
    theta = full.ridge_weights(1e-6)
    coords = x @ basis
    kept = [8, 12, 18, 27, 40]
    changes = []
    for K in kept:
        dropped = coords.copy()
        dropped[:, K:] = 0.0
        per_image, per_direction = ft.compression_change(full, x, (dropped @ basis.T).astype(np.float32), theta)
        changes.append(per_image.mean())
        assert per_direction.shape == (D,)
    fit = ft.power_law(np.array(kept, float), np.array(changes), 1, 100)
    assert abs(fit.exponent - BETA) < 0.35


def test_predicted_exponents_follow_the_closed_forms_and_say_when_the_model_has_none():
    p = ft.predicted_exponents(kappa=1.2, beta_spectrum=0.5, beta_bytes=2.0)
    assert p["alpha"] == pytest.approx(0.5 / 1.5) and p["nu"] == pytest.approx((1 / 3) * 2 / (1 / 3 + 2))
    assert ft.predicted_exponents(0.2, 3.0, 2.0)["alpha"] == pytest.approx(0.4 / 1.4)  # saturated: s = 2 kappa
    assert np.isnan(ft.predicted_exponents(1.2, -0.1, 2.0)["alpha"])  # r >= p: outside the model


def test_intervals_hold_their_estimate_and_bad_blocks_are_refused():
    assert ft.interval(1.0, [1.1, 1.2, 1.3]) == (1.0, pytest.approx(1.2 + 0.1 * 0.95))
    assert all(np.isnan(ft.interval(np.nan, [1.0]))) and all(np.isnan(ft.interval(1.0, [np.nan])))
    with pytest.raises(ValueError, match="blocks=1"):
        ft.block_ids(10, 1, seed=0)
    ids = ft.block_ids(10, 3, seed=0)
    assert sorted(np.bincount(ids)) == [3, 3, 4]
    w = ft.half_samples(6, 4, seed=0)
    assert (w.sum(1) == 6).all() and ((w == 0) | (w == 2)).all()


@pytest.mark.parametrize("change, message", [
    ({"datasets": []}, "at least one dataset"), ({"model": "cnn_cpu"}, "probe's features"),
    ({"eigen_range": [100, 10]}, "0 < lo < hi"), ({"level": 1.5}, "level=1.5"), ({"penalty": -1}, "penalty=-1")])
def test_bad_knobs_are_refused_before_any_data_is_read(change, message):
    with pytest.raises(ValueError, match=message):
        ft.measure_table({**ft.SMOKE_PARAMS, **change})


def test_a_drawn_line_has_the_fitted_slope_through_the_points():
    x = np.array([1.0, 10.0, 100.0])
    ends, values = ft.line_at(x, 2.0 * x ** -1.5, 1.5, 1.0, 100.0)
    assert ends.tolist() == [1.0, 100.0] and values == pytest.approx([2.0, 2.0 * 100 ** -1.5])


def test_de_curve_is_the_chapters_deterministic_equivalent_on_a_level_spectrum():
    # the multiresolution model written out coefficient by coefficient: level l's q**l coefficients
    # of variance p**-l share its energy (r/p)**l; the truncated energy enters as kbar
    from storage_scaling import theory

    params, m, n, factor = theory.ModelParams(p=3.0, q=2, r=1.2, tau=0.5), 6, np.array([40.0, 400.0]), 0.01
    levels = np.repeat(np.arange(m), 2 ** np.arange(m))
    energy = (params.r / params.p) ** levels / 2.0 ** levels
    spec = ft.Spectrum(params.p ** -levels.astype(float), np.eye(len(levels)), energy, np.zeros((len(levels), 1)),
                       np.ones(len(levels)), 0, params.tau ** 2 + energy.sum())
    kbar = float(params.truncation_energy(m))
    got = ft.de_curve(spec, n, [factor], kbar)
    want = theory.deterministic_equivalent(n, m, n * factor, params)
    assert got["test"] == pytest.approx(want["test"], rel=1e-9) and spec.noise == pytest.approx(params.tau ** 2)
    assert got["excess"] == pytest.approx(want["excess"], rel=1e-9) and (got["penalty"] == factor).all()


def test_held_out_mse_is_the_probes_ridge_scored_on_the_test_rows():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 10)) * rng.uniform(0.5, 3.0, 10) + 5.0
    y = rng.integers(0, 3, 300)
    train, test = ft.block_stats(x, y, 3, np.r_[np.zeros(200, int), np.ones(100, int)])
    factors = np.array([1e-3, 0.1, 3.0])
    mu, s = x[:200].mean(0), x[:200].std(0)
    z, onehot = (x[:200] - mu) / s, np.eye(3)[y]
    want = []
    for f in factors:
        w = np.linalg.solve(z.T @ z / 200 + f * np.eye(10), z.T @ (onehot[:200] - onehot[:200].mean(0)) / 200)
        pred = onehot[:200].mean(0) + (x[200:] - mu) / s @ w
        want.append(((onehot[200:] - pred) ** 2).sum(1).mean())
    np.testing.assert_allclose(ft.held_out_mse(train, test, factors), want, rtol=1e-7)


def test_de_curve_predicts_the_ridge_on_planted_features():
    # Gaussian features, one-hot labels: the measured spectrum's deterministic equivalent and the
    # ridge's held-out error agree to about a percent at every size of the check; without the
    # variance term (the effective dimension's n / (n - D)) they would not at the smallest size
    from storage_scaling.learn import ridge

    x, labels, _, _ = planted()
    stats = ft.block_stats(x, labels, CLASSES, ft.block_ids(N, 8, seed=0))
    full, factors = ft.spectrum(stats), ridge.penalty_grid(-7, 5, 4)
    test = ft.weighted(stats, [0] * 4 + [1] * 4)
    assert ft.check_blocks(8).tolist() == [1, 2, 3, 4]
    measured = []
    for b in ft.check_blocks(8):
        train = ft.weighted(stats, [1] * b + [0] * (8 - b))
        measured.append(ft.held_out_mse(train, test, factors).min())
        de = ft.de_curve(full, [train.n], factors)
        assert de["test"][0] == pytest.approx(measured[-1], rel=0.015)
        assert de["test"][0] - de["excess"][0] == pytest.approx(full.noise)
    assert measured[0] - full.noise > 0.03 * measured[0]  # the curve is more than the tolerance above its floor
    assert measured == sorted(measured, reverse=True)


def test_comparison_sets_each_route_beside_the_fit_and_says_whether_intervals_meet():
    import pandas as pd

    est = {"kappa": (1.5, 1.4, 1.6), "beta_spectrum": (-0.2, -0.3, -0.1), "alpha": (np.nan,) * 3, "alpha_de": (0.5, 0.45, 0.55),
           "beta_bytes": (4.0, 3.5, 4.5), "nu": (np.nan,) * 3, "nu_de": (0.45, 0.4, 0.5)}
    measured = pd.DataFrame([{"dataset": "toy", "model": "probe", "kind": "exponent", "quantity": q, "estimate": e,
                              "lo": lo, "hi": hi} for q, (e, lo, hi) in est.items()])
    boot = pd.DataFrame([{"dataset": "toy", "model": "probe", "kind": "interval", "fit": ft.FIT_LABEL, "quantity": q,
                          "point": p, "lo": lo, "hi": hi} for q, p, lo, hi in
                         [("alpha", 0.3, 0.2, 0.4), ("beta", 4.2, 4.0, 4.4), ("nu", 0.42, 0.35, 0.44)]])
    table = ft.comparison(measured, boot).set_index("route", append=True)
    verdicts = dict(zip(zip(table["exponent"], table.index.get_level_values("route")), table["verdict"]))
    assert verdicts == {("alpha", ft.ROUTES["alpha"]): "no prediction", ("alpha", ft.ROUTES["alpha_de"]): "intervals disjoint",
                        ("beta", ft.ROUTES["beta_bytes"]): "intervals overlap", ("nu", ft.ROUTES["nu"]): "no prediction",
                        ("nu", ft.ROUTES["nu_de"]): "intervals overlap"}
    text = ft.comparison_sentence(ft.comparison(measured, boot), measured)
    assert "alpha, deterministic equivalent: predicted 0.50 [0.45, 0.55], fitted 0.30 [0.20, 0.40] (intervals disjoint)" in text
    assert "alpha, closed form: no prediction (the model needs a spectral beta above 0)" in text
