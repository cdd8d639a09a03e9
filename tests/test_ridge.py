"""The ridge head: the closed form in both forms, the penalty chosen on validation rows only, the
tie rule, the grid-edge report and the input checks."""

import inspect

import numpy as np
import pytest

from storage_scaling.learn import ridge

GRID = ridge.penalty_grid(-7.0, 5.0, 4)  # the probe's default grid


def planted(n, d, classes, seed, noise=0.3, rule=0):
    """Gaussian classes around the random means of ``rule``: a linear rule separates them."""
    means = np.random.default_rng(rule).normal(size=(classes, d)) * 3
    rng = np.random.default_rng(seed + 1000)
    labels = rng.integers(0, classes, n)
    return (means[labels] + noise * rng.normal(size=(n, d))).astype(np.float32), labels


def nuisance(n, seed):
    """Two classes that only least squares separates: x1 = +-1 + u and x2 = u with a large shared u.
    A small penalty cancels u (x1 - x2 is the class); a large one keeps the class-mean direction
    (mostly x1 alone), which u swamps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    u = 10 * rng.normal(size=n)
    return np.stack([2.0 * labels - 1 + u, u], 1).astype(np.float32), labels


def standardised(x, reference):
    mean, scale = reference.mean(0, dtype=np.float64), reference.std(0, dtype=np.float64)
    return (x.astype(np.float64) - mean) / scale


def test_penalty_grid_is_log_spaced_per_decade():
    assert len(GRID) == 49 and GRID[0] == pytest.approx(1e-7) and GRID[-1] == pytest.approx(1e5)
    np.testing.assert_allclose(GRID[1:] / GRID[:-1], 10 ** 0.25)
    np.testing.assert_allclose(ridge.penalty_grid(-1, 1, 1), [0.1, 1.0, 10.0])
    assert len(ridge.penalty_grid(1, 0, 4)) == 0


def test_standardiser_is_the_training_mean_and_population_scale():
    x, _ = planted(300, 6, 3, seed=0)
    x[:, 2] = 5.0  # a constant feature keeps scale 1
    s = ridge.Standardiser.fit(x)
    np.testing.assert_allclose(s.mean, x.mean(0, dtype=np.float64), rtol=1e-6)
    expected = x.std(0, dtype=np.float64)
    expected[2] = 1.0
    np.testing.assert_allclose(s.scale, expected, rtol=1e-5)


@pytest.mark.parametrize("n, d", [(300, 40), (40, 120)])  # Gram (primal) form and kernel form
def test_many_penalty_path_equals_a_direct_solve(n, d):
    x, y = planted(n, d, 3, seed=2, noise=2.0)
    standardiser = ridge.Standardiser.fit(x)
    onehot = np.eye(3)[y]
    centred = onehot - onehot.mean(0)
    spectrum = ridge.RidgeSpectrum.of_rows(x, onehot)
    assert spectrum.primal == (n >= d)
    xs = ((x - standardiser.mean) / standardiser.scale).astype(np.float64)
    for lam in (1e-3, 0.1, 10.0, 1e3):
        direct = np.linalg.solve(xs.T @ xs + lam * np.eye(d), xs.T @ centred)
        np.testing.assert_allclose(spectrum.weights(lam), direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max())
    assert spectrum.mean_eigenvalue == pytest.approx(np.trace(xs.T @ xs) / d, rel=1e-5)


@pytest.mark.parametrize("n, d, form", [(300, 40, "gram"), (40, 120, "kernel")])
def test_fitted_head_is_the_closed_form_on_standardised_features(n, d, form):
    """weights and bias on raw features = (X^T X + lam I)^-1 X^T Y on standardised X, centred
    one-hot Y, at the chosen penalty lam = factor * trace(X^T X) / d, folded back."""
    x, y = planted(n, d, 3, seed=3, noise=2.0)
    xv, yv = planted(100, d, 3, seed=4, noise=2.0)
    head = ridge.fit_ridge(x, y, xv, yv, 3, [1e-2, 1.0, 1e2])
    assert head.form == form
    xs = standardised(x, x)
    onehot = np.eye(3)[y]
    assert head.penalty == pytest.approx(head.penalty_factor * np.trace(xs.T @ xs) / d, rel=1e-5)
    w_std = np.linalg.solve(xs.T @ xs + head.penalty * np.eye(d), xs.T @ (onehot - onehot.mean(0)))
    scale, mean = x.std(0, dtype=np.float64), x.mean(0, dtype=np.float64)
    weights = w_std / scale[:, None]
    np.testing.assert_allclose(head.weights, weights, rtol=1e-3, atol=1e-4 * np.abs(weights).max())
    np.testing.assert_allclose(head.bias, onehot.mean(0) - mean @ weights, rtol=1e-3, atol=1e-4)
    xt, _ = planted(50, d, 3, seed=5, noise=2.0)
    scores = standardised(xt, x) @ w_std + onehot.mean(0)
    np.testing.assert_allclose(head.scores(xt), scores, rtol=1e-3, atol=1e-3 * np.abs(scores).max())
    np.testing.assert_array_equal(head.predict(xt), head.scores(xt).argmax(1))


@pytest.mark.parametrize("n, d", [(600, 30), (60, 200)])  # Gram form and kernel form
def test_ridge_recovers_a_planted_linear_rule(n, d):
    x, y = planted(n, d, 4, seed=0)
    xv, yv = planted(200, d, 4, seed=1)
    xt, yt = planted(500, d, 4, seed=2)
    head = ridge.fit_ridge(x, y, xv, yv, 4, GRID)
    assert head.form == ("gram" if n >= d else "kernel")
    assert head.evaluate(xt, yt)["accuracy"] >= 0.99


def test_ridge_fails_on_a_rule_that_is_not_there():
    x, _ = planted(400, 20, 4, seed=0)
    rng = np.random.default_rng(5)
    head = ridge.fit_ridge(x, rng.integers(0, 4, 400), x[:200], rng.integers(0, 4, 200), 4, [1e-3, 1.0])
    assert head.evaluate(x[200:], rng.integers(0, 4, 200))["accuracy"] < 0.45


def test_penalty_is_chosen_on_validation_rows_only():
    assert "test" not in " ".join(inspect.signature(ridge.fit_ridge).parameters)
    x, y = planted(200, 60, 3, seed=4, noise=6.0)
    xv, yv = planted(150, 60, 3, seed=4, noise=6.0)
    factors = np.logspace(-4, 3, 15)
    head = ridge.fit_ridge(x, y, xv, yv, 3, factors)
    # the curve is exactly the validation error of train-only fits: recompute it from scratch
    onehot = np.eye(3)[y]
    xs, xvs = standardised(x, x), standardised(xv, x)
    scale = np.trace(xs.T @ xs) / xs.shape[1]
    for factor, error in zip(factors, head.val_errors):
        w = np.linalg.solve(xs.T @ xs + factor * scale * np.eye(60), xs.T @ (onehot - onehot.mean(0)))
        assert error == pytest.approx(np.mean((xvs @ w).argmax(1) != yv))
    assert head.val_errors[list(factors).index(head.penalty_factor)] == head.val_errors.min()
    # scoring two different test sets changes nothing about the fitted model
    weights, penalty = head.weights.copy(), head.penalty
    for seed in (7, 8):
        xt, yt = planted(100, 60, 3, seed=seed)
        head.evaluate(xt, yt)
    np.testing.assert_array_equal(head.weights, weights)
    assert head.penalty == penalty


def test_the_penalty_follows_the_validation_rows():
    """The same training rows: scored on themselves every penalty fits them (a flat curve), on
    held-out rows the near-interpolating small penalties lose."""
    x, y = planted(60, 50, 3, seed=0, noise=5.0)
    xv, yv = planted(300, 50, 3, seed=1, noise=5.0)
    factors = np.logspace(-6, 4, 11)
    on_train = ridge.fit_ridge(x, y, x, y, 3, factors)
    held_out = ridge.fit_ridge(x, y, xv, yv, 3, factors)
    assert on_train.val_errors.max() == 0 and on_train.penalty_factor == factors[5]
    assert held_out.val_errors[0] > 2 * held_out.val_errors.min()
    assert held_out.penalty_factor == factors[int(np.argmin(held_out.val_errors))] != on_train.penalty_factor


def test_ties_go_to_the_middle_of_the_tied_run():
    x, y = nuisance(200, seed=0)
    xv, yv = nuisance(200, seed=1)
    factors = [1e-6, 1e-5, 1e-4, 1e3, 1e6]
    head = ridge.fit_ridge(x, y, xv, yv, 2, factors)
    assert list(head.val_errors[:3]) == [0, 0, 0] and head.val_errors[3:].min() > 0.3  # the run 0..2 ties
    assert head.penalty_factor == 1e-5 and head.at_edge == "low"
    # a tie over an even run: index len // 2 (the upper of the two middle points)
    x, y = planted(200, 5, 2, seed=0, noise=0.1)
    xv, yv = planted(100, 5, 2, seed=1, noise=0.1)
    flat = ridge.fit_ridge(x, y, xv, yv, 2, [1e-3, 1e-2, 1e-1, 1.0])
    assert flat.val_errors.max() == 0 and flat.penalty_factor == 1e-1 and flat.at_edge == "both"
    # the grid is sorted before the choice: the order given does not matter
    again = ridge.fit_ridge(x, y, xv, yv, 2, [1.0, 1e-3, 1e-1, 1e-2])
    assert again.penalty_factor == 1e-1 and list(again.factors) == [1e-3, 1e-2, 1e-1, 1.0]


def test_at_edge_reports_the_grid_ends():
    x, y = planted(60, 50, 3, seed=0, noise=5.0)  # n close to d: near-interpolation is bad
    xv, yv = planted(300, 50, 3, seed=1, noise=5.0)
    factors = np.logspace(-6, 4, 11)
    interior = ridge.fit_ridge(x, y, xv, yv, 3, factors)
    best = int(np.argmin(interior.val_errors))
    assert 0 < best < len(factors) - 1 and interior.val_errors[[0, -1]].min() > interior.val_errors[best]
    assert interior.at_edge == "" and interior.summary()["penalty_at_edge"] == ""
    high = ridge.fit_ridge(x, y, xv, yv, 3, factors[:6])  # grid too low: its top wins
    assert high.penalty_factor == factors[5] and high.at_edge == "high"
    assert high.val_error_at(factors[5]) > interior.val_error_at(interior.penalty_factor)
    xn, yn = nuisance(200, seed=0)
    xnv, ynv = nuisance(200, seed=1)
    low = ridge.fit_ridge(xn, yn, xnv, ynv, 2, [1e-6, 1e3, 1e6])  # only the smallest penalty cancels u
    assert low.penalty_factor == 1e-6 and low.at_edge == "low"
    one = ridge.fit_ridge(x, y, xv, yv, 3, [1.0])  # a one-point grid has no edge to report
    assert one.at_edge == "" and one.summary()["penalties_tried"] == 1


def test_summary_is_flat_facts_of_the_search():
    x, y = planted(60, 50, 3, seed=0, noise=5.0)
    xv, yv = planted(300, 50, 3, seed=1, noise=5.0)
    head = ridge.fit_ridge(x, y, xv, yv, 3, np.logspace(-6, 4, 11))
    s = head.summary()
    assert s == {"penalty": head.penalty, "penalty_factor": head.penalty_factor, "penalty_at_edge": "",
                 "val_error": head.val_errors.min(), "val_error_low_end": head.val_errors[0],
                 "val_error_high_end": head.val_errors[-1], "penalties_tried": 11, "ridge_form": "gram"}


@pytest.mark.parametrize("change, needle", [
    (dict(y=np.array([0, 1, 2, 5])), r"training labels must lie in \[0, 3\)"),
    (dict(yv=np.array([0, 1.0])), "validation labels must be 2 integers"),
    (dict(x=np.ones((4, 2), np.int64)), "training features must be a non-empty float"),
    (dict(xv=np.ones((2, 3), np.float32)), "validation features have 3 columns, training features 2"),
    (dict(num_classes=1), "num_classes=1 must be an integer >= 2"),
    (dict(factors=[]), "penalty grid"),
    (dict(factors=[1.0, -1.0]), "penalty grid"),
    (dict(factors=[np.nan]), "penalty grid"),
])
def test_bad_inputs_name_what_is_wrong(change, needle):
    args = dict(x=np.ones((4, 2), np.float32), y=np.array([0, 1, 2, 0]), xv=np.ones((2, 2), np.float32),
                yv=np.array([0, 1]), num_classes=3, factors=[1.0])
    args.update(change)
    with pytest.raises(ValueError, match=needle):
        ridge.fit_ridge(args["x"], args["y"], args["xv"], args["yv"], args["num_classes"], args["factors"])


def probe_like(n, d=192, classes=10, seed=0, rule=0):
    """Non-negative, correlated features with a weak linear class signal, like the probe's pooled
    k-means activations: ReLU of class means plus shared and private noise, through a fixed mixing."""
    rng = np.random.default_rng(rule)
    mixing, means = rng.normal(size=(64, d)) / 8, rng.normal(size=(classes, 64)) * 0.25
    rng = np.random.default_rng(seed + 100)
    labels = rng.integers(0, classes, n)
    latent = means[labels] + rng.normal(size=(n, 64))
    return np.maximum(latent @ mixing + 0.3 * rng.normal(size=(n, d)), 0).astype(np.float16), labels


@pytest.mark.parametrize("n", [120, 400, 3000])  # kernel form, both forms near n = d, Gram form
def test_fast_and_reference_give_the_same_head(n):
    x, y = probe_like(n, d=192 if n != 120 else 300, seed=n)
    xv, yv = probe_like(600, d=x.shape[1], seed=1)
    heads = {m: ridge.fit_ridge(x, y, xv, yv, 10, GRID, method=m, exhaustive=True) for m in ridge.METHODS}
    fast, reference = heads["fast"], heads["reference"]
    assert fast.form == reference.form == ("gram" if n >= x.shape[1] else "kernel")
    # the same curve (a validation row whose scores tie to float32 may flip), the same choice and weights
    assert np.abs(fast.val_errors - reference.val_errors).max() <= 2 / len(yv)
    assert fast.penalty_factor == reference.penalty_factor
    assert fast.penalty == pytest.approx(reference.penalty, rel=1e-6)
    scale = np.abs(reference.weights).max()
    np.testing.assert_allclose(fast.weights, reference.weights, atol=2e-3 * scale)
    xt, yt = probe_like(800, d=x.shape[1], seed=2)
    assert np.mean(fast.predict(xt) != reference.predict(xt)) <= 0.005


def test_the_coarse_scan_finds_the_exhaustive_choice_on_a_grid_of_runs():
    """The grid's shape: nested subsets of one pool, scored on one held-out split; the coarse, then
    fine scan (19 of 49 penalties) against the exhaustive reference, as the speed issue asks: the
    same or a neighbouring penalty, test accuracy within 0.5 points each and 0.05 on average."""
    pool, labels = probe_like(6000, seed=3)
    xv, yv = probe_like(1500, seed=4)
    xt, yt = probe_like(2000, seed=5)
    gaps = []
    for n in (300, 600, 1200, 2400, 4800, 6000):
        fast = ridge.fit_ridge(pool[:n], labels[:n], xv, yv, 10, GRID, exhaustive=False)
        reference = ridge.fit_ridge(pool[:n], labels[:n], xv, yv, 10, GRID, method="reference", exhaustive=True)
        assert fast.summary()["penalties_tried"] == 19 and reference.summary()["penalties_tried"] == 49
        chosen = [int(np.flatnonzero(GRID == h.penalty_factor)[0]) for h in (fast, reference)]
        assert abs(chosen[0] - chosen[1]) <= 1, (n, chosen)
        gaps.append(100 * abs(fast.evaluate(xt, yt)["accuracy"] - reference.evaluate(xt, yt)["accuracy"]))
    assert max(gaps) <= 0.5 and np.mean(gaps) <= 0.05, gaps


def test_the_scan_is_coarse_then_fine_on_long_grids_only():
    calls = []
    curve = (np.arange(49) - 29.0) ** 2  # a U with its minimum between coarse points (28 and 32)

    def errors_of(indices):
        calls.extend(indices)
        return curve[indices]

    errors = ridge.scan_grid(49, errors_of)
    assert ridge.choose(errors) == 29 and len(calls) == len(set(calls)) == 19
    assert set(errors) == set(range(0, 49, 4)) | set(range(25, 32))
    assert len(ridge.scan_grid(15, lambda ix: [0.0] * len(ix))) == 15  # a short grid: every point
    assert len(ridge.scan_grid(49, lambda ix: [0.0] * len(ix), exhaustive=True)) == 49
    flat = ridge.scan_grid(49, lambda ix: [0.0] * len(ix))  # a flat curve: the middle of what was tried
    assert ridge.choose(flat) == sorted(flat)[len(flat) // 2]


def test_statistics_of_a_pass_standardise_like_the_standardiser():
    x, y = probe_like(5000, seed=6)
    x[:, 3] = 2.0  # constant
    stats = ridge.GramStats.of(x, y, 10)
    reference = ridge.Standardiser.fit(x)
    np.testing.assert_allclose(stats.mean(), reference.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.scale(stats.centred_gram()), reference.scale, rtol=1e-4)
    xs = (x.astype(np.float64) - stats.mean()) / stats.scale(stats.centred_gram())
    np.testing.assert_allclose(stats.centred_gram() / np.outer(*[stats.scale(stats.centred_gram())] * 2),
                               xs.T @ xs, rtol=1e-4, atol=1e-3 * len(x))
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(stats.centred_xty(), (x.astype(np.float64) - stats.mean()).T @ (onehot - onehot.mean(0)),
                               rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        ridge.fit_ridge(x, y, x, y, 10, GRID, method="qr")


def test_collinear_features_and_tiny_penalties_still_fit_like_the_reference():
    """Duplicated and summed columns make the Gram singular, and penalties down to 1e-12 of its
    mean eigenvalue reach below the rounding of its smallest eigenvalues: the fast path must still
    give the reference's curve (a Gram gathered in float32 did not: 0.92 error where the reference
    has 0.605)."""
    x, y = probe_like(800, d=40, seed=7)
    x = np.concatenate([x, x[:, :10], x[:, :5].astype(np.float32).sum(1, keepdims=True).astype(np.float16)], 1)
    xv, yv = probe_like(400, d=40, seed=8)
    xv = np.concatenate([xv, xv[:, :10], xv[:, :5].astype(np.float32).sum(1, keepdims=True).astype(np.float16)], 1)
    factors = np.logspace(-12, 2, 15)
    fast = ridge.fit_ridge(x, y, xv, yv, 10, factors)
    reference = ridge.fit_ridge(x, y, xv, yv, 10, factors, method="reference")
    assert np.isfinite(fast.weights).all()
    chosen = [int(np.flatnonzero(factors == h.penalty_factor)[0]) for h in (fast, reference)]
    assert abs(chosen[0] - chosen[1]) <= 1
    assert np.nanmax(np.abs(fast.val_errors - reference.val_errors)) <= 0.01


def test_nested_subsets_read_each_row_once_and_fit_as_if_from_scratch(monkeypatch):
    pool, labels = probe_like(3000, d=64, seed=9)
    xv, yv = probe_like(500, d=64, seed=10)
    features = pool
    gathered = []
    of = ridge.GramStats.of.__func__
    monkeypatch.setattr(ridge.GramStats, "of",
                        classmethod(lambda cls, x, *a, **k: gathered.append(len(x)) or of(cls, x, *a, **k)))
    kept = ridge.SubsetStats()
    read = 0
    order = np.random.default_rng(0).permutation(3000)
    for n in (500, 1500, 3000):
        rows = np.sort(order[:n])
        gathered.clear()
        stats = kept.stats("store-a", rows, features[rows], labels[rows], 10)
        read += sum(gathered)
        scratch = of(ridge.GramStats, pool[rows], labels[rows], 10)
        np.testing.assert_allclose(stats.centred_gram(), scratch.centred_gram(), rtol=1e-9, atol=1e-9 * n)
        np.testing.assert_allclose(stats.mean(), scratch.mean(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(stats.class_counts, scratch.class_counts)
        head = ridge.fit_ridge(pool[rows], labels[rows], xv, yv, 10, GRID, stats=stats)
        alone = ridge.fit_ridge(pool[rows], labels[rows], xv, yv, 10, GRID)
        assert head.penalty_factor == alone.penalty_factor
        np.testing.assert_allclose(head.weights, alone.weights, rtol=1e-5, atol=1e-6 * np.abs(alone.weights).max())
    assert read == 3000  # each row once, not 500 + 1500 + 3000
    again = np.sort(order[:1500])
    gathered.clear()
    assert kept.stats("store-a", again, features[again], labels[again], 10) is not None
    assert sum(gathered) == 0  # a kept subset: nothing gathered
    kept.stats("store-b", again, features[again], labels[again], 10)
    assert sum(gathered) == 1500  # another file's subsets never count
    small = ridge.SubsetStats(budget_bytes=1)  # keeps only the latest
    small.stats("a", np.arange(100), pool[:100], labels[:100], 10)
    small.stats("a", np.arange(200), pool[:200], labels[:200], 10)
    assert len(small._kept) == 1
    with pytest.raises(ValueError, match="not the statistics"):
        ridge.fit_ridge(pool[:900], labels[:900], xv, yv, 10, GRID, stats=stats)


def test_penalties_scored_together_score_as_one_at_a_time():
    """The batched scan (16 penalties per matrix product) gives each penalty's own error."""
    x, y = probe_like(1500, d=96, seed=11)
    xv, yv = probe_like(400, d=96, seed=12)
    spectrum = ridge.RidgeSpectrum.of_rows(x, np.eye(10)[y])
    projected, truth = spectrum.project(xv), ridge.torch.from_numpy(yv)
    penalties = GRID * spectrum.mean_eigenvalue
    together = spectrum.val_errors(projected, penalties, truth)
    alone = [spectrum.val_errors(projected, penalties[i:i + 1], truth)[0] for i in range(len(GRID))]
    assert together == alone and len(together) == 49
    for i in (0, 20, 48):  # and each is the direct solve's error
        w = spectrum.weights(float(penalties[i]))
        pred = ((xv - spectrum.mean) / spectrum.scale) @ w
        assert together[i] == pytest.approx(np.mean(pred.argmax(1) != yv), abs=1 / len(yv))
