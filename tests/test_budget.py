"""Budget searches: one distance, largest prefixes, randomized ranges, real-byte verification."""

import numpy as np
import pytest

from storage_scaling.compress import budget

D_MIN, D_MAX = budget.DEFAULT_RANGE  # the study's range, codecs.STUDY_DISTANCES
GRID = np.arange(D_MIN, D_MAX + 1e-4, 0.25)


def true_sizes(base, d):
    """A smooth, monotone 'codec': bytes = base / (0.35 d + 1) + 40 (the paper's L(d) = 1/(a d + b) shape)."""
    d = np.asarray(d, dtype=float)
    return base / (0.35 * d + 1.0) + 40.0


def make_table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.lognormal(mean=6.5, sigma=0.4, size=n)  # ~700 B at d=0
    table = np.stack([np.round(true_sizes(base, d)) for d in GRID], axis=1).astype(np.int64)
    return base, table


# ----------------------------------------------------------------------------------------------
# (a) one distance


def test_distance_for_budget_fits_and_is_tight():
    base, table = make_table()
    s = 0.6 * table[:, 0].sum()
    d = budget.distance_for_budget(table, GRID, s)
    assert GRID[0] < d < GRID[-1]
    assert budget.total_at(table, GRID, d) <= s
    # precision 1e-3: a slightly better quality no longer fits
    assert budget.total_at(table, GRID, d - 2e-3) > s


def test_real_bytes_within_budget_and_half_percent():
    """The table is 4% optimistic; real encodes (the exact curve, rounded per image) must fit tightly."""
    base, table = make_table(n=300, seed=1)
    optimistic = np.round(table * 0.96).astype(np.int64)
    encodes = []

    def measure(d):
        encodes.append(d)
        return int(np.round(true_sizes(base, d)).sum())

    for fraction in (0.3, 0.55, 0.8):
        s = fraction * table[:, 0].sum()
        fit = budget.fit_real_bytes(lambda t: budget.distance_for_budget(optimistic, GRID, t), measure, s)
        assert fit.total_bytes <= s
        assert fit.total_bytes >= 0.995 * s
        assert fit.within_tolerance
        assert fit.encodes <= 8
        assert measure(fit.candidate) == fit.total_bytes


def test_budget_too_small_raises_before_search():
    _, table = make_table(n=50)
    with pytest.raises(ValueError, match="too small .* even at the largest distance"):
        budget.distance_for_budget(table, GRID, table[:, -1].sum() * 0.5)
    with pytest.raises(ValueError, match="budget must be a positive"):
        budget.distance_for_budget(table, GRID, -1)
    with pytest.raises(ValueError, match="columns"):
        budget.distance_for_budget(table[:, :5], GRID, 1e6)
    with pytest.raises(ValueError, match="d_range"):
        budget.distance_for_budget(table, GRID, 1e6, d_range=(0.1, 20))


def test_budget_that_does_not_bind_returns_best_quality():
    _, table = make_table(n=20)
    assert budget.distance_for_budget(table, GRID, 10 * table.sum()) == GRID[0]


def test_interpolation_is_exact_on_the_grid_and_log_linear_between():
    _, table = make_table(n=5)
    np.testing.assert_allclose(budget.interpolate_sizes(table, GRID, GRID[4]), table[:, 4])
    mid = budget.interpolate_sizes(table, GRID, 0.5 * (GRID[4] + GRID[5]))
    np.testing.assert_allclose(mid, np.sqrt(table[:, 4] * table[:, 5]))
    per_image = budget.interpolate_sizes(table, GRID, GRID[[0, 1, 2, 3, 4]])
    np.testing.assert_allclose(per_image, table[np.arange(5), [0, 1, 2, 3, 4]])
    with pytest.raises(ValueError, match="outside"):
        budget.interpolate_sizes(table, GRID, 16.0)
    with pytest.raises(ValueError, match="one distance per image"):
        budget.interpolate_sizes(table, GRID, GRID[:3])
    with pytest.raises(ValueError, match="positive"):
        budget.interpolate_sizes(-table, GRID, 3.0)


# ----------------------------------------------------------------------------------------------
# (b), (c) prefixes


def test_largest_prefix():
    sizes = np.array([100, 200, 300, 400])
    p = budget.largest_prefix(sizes, 650)
    assert (p.n, p.total_bytes, p.pool_exhausted) == (3, 600, False)
    p = budget.largest_prefix(sizes, 10_000)
    assert (p.n, p.total_bytes, p.pool_exhausted) == (4, 1000, True)
    assert budget.largest_prefix(sizes, 100).n == 1
    with pytest.raises(ValueError, match="too small for even one"):
        budget.largest_prefix(sizes, 99)


# ----------------------------------------------------------------------------------------------
# (d) randomized


def test_randomized_distances_span_the_range_uniformly():
    ranks = budget.permutation_ranks(1000, seed=2024)
    assert sorted(ranks) == list(range(1, 1001))
    d = budget.randomized_distances(ranks, 2.0, 12.0)
    assert d.min() == pytest.approx(2.0)
    assert d.max() == pytest.approx(12.0 - 10.0 / 1000)
    np.testing.assert_allclose(np.diff(np.sort(d)), 10.0 / 1000)  # evenly spread
    assert not np.all(np.diff(d) >= 0)  # in random order
    zeroed = budget.randomized_distances(ranks, D_MIN, D_MAX, zero_below=1.0)
    assert np.all((zeroed == 0) | (zeroed >= 1.0)) and np.any(zeroed == 0)


def test_validation_ranks_are_reproducible_and_not_the_training_ranks():
    for n in (7, 1000):
        ranks = budget.validation_ranks(n, 2024)
        assert sorted(ranks) == list(range(1, n + 1))
        assert np.array_equal(ranks, budget.validation_ranks(n, 2024))  # from rank_seed alone
        assert not np.array_equal(ranks, budget.permutation_ranks(n, 2024))  # a stream of its own
        assert not np.array_equal(ranks, budget.validation_ranks(n, 2025))


@pytest.mark.parametrize("fraction,moved", [(0.25, "d_min"), (0.6, "d_max")])
def test_randomized_range_fits_budget(fraction, moved):
    base, table = make_table(n=500, seed=3)
    ranks = budget.permutation_ranks(len(table), seed=2024)
    s = fraction * table[:, 0].sum()
    fit = budget.randomized_range_for_budget(table, GRID, s, ranks)
    assert fit.moved == moved
    assert fit.estimated_bytes <= s
    assert fit.distances.min() == pytest.approx(fit.d_min)
    assert fit.distances.max() == pytest.approx(fit.d_max - (fit.d_max - fit.d_min) / len(table))
    if moved == "d_min":
        assert fit.d_max == D_MAX and fit.d_min > D_MIN
        worse = budget.randomized_distances(ranks, fit.d_min - 2e-3, D_MAX)
        assert budget.randomized_sizes(table, GRID, worse).sum() > s
    else:
        assert fit.d_min == D_MIN and fit.d_max < D_MAX
    # verified against the exact curve with real-byte correction
    measure = lambda f: int(np.round(true_sizes(base, f.distances)).sum())  # noqa: E731
    real = budget.fit_real_bytes(lambda t: budget.randomized_range_for_budget(table, GRID, t, ranks), measure, s)
    assert real.total_bytes <= s and real.within_tolerance


def test_randomized_keeps_originals_below_zero_gain_distance():
    base, table = make_table(n=300, seed=4)
    original = np.round(true_sizes(base, 1.2)).astype(np.int64)  # the stored file is worth d = 1.2
    d0 = budget.zero_gain_distance(table, GRID, original)
    assert 1.1 < d0 < 1.3
    ranks = budget.permutation_ranks(len(table), seed=0)
    s = 0.7 * table[:, 0].sum()
    fit = budget.randomized_range_for_budget(table, GRID, s, ranks, zero_below=d0, original_sizes=original)
    kept = fit.distances == 0
    assert kept.any() and np.all(fit.distances[~kept] >= d0)
    est = budget.randomized_sizes(table, GRID, fit.distances, original)
    np.testing.assert_array_equal(est[kept], original[kept])
    assert est.sum() == pytest.approx(fit.estimated_bytes) and est.sum() <= s


def test_randomized_range_that_cannot_fit_raises():
    _, table = make_table(n=100)
    ranks = budget.permutation_ranks(100, seed=0)
    with pytest.raises(ValueError, match="cannot fit budget"):
        budget.randomized_range_for_budget(table, GRID, 0.5 * table[:, -1].sum(), ranks)
    with pytest.raises(ValueError, match="one rank per image"):
        budget.randomized_range_for_budget(table, GRID, 1e9, ranks[:10])


# ----------------------------------------------------------------------------------------------
# real encodes through the compressed store (a broken import fails here, never skips)


def test_real_jxl_encodes_fit_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_SCALING_CACHE", str(tmp_path / "cache"))
    from skimage import data as skdata
    from skimage.transform import resize

    from storage_scaling.compress import codecs, store
    from storage_scaling.data import ImageSet

    rng = np.random.default_rng(0)
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    crops = []
    for k in range(96):
        p = photos[k % len(photos)]
        y, x = rng.integers(0, p.shape[0] - 96), rng.integers(0, p.shape[1] - 96)
        crops.append((resize(p[y:y + 96, x:x + 96], (32, 32), anti_aliasing=True) * 255).astype(np.uint8))
    encoded = [codecs.encode(c, "jpeg", 90) for c in crops]
    images = ImageSet("synthetic", "train", encoded, np.zeros(96, dtype=np.int64),
                      np.array([f"crop{k}" for k in range(96)], dtype=object), ["x"])
    grid = np.arange(D_MIN, D_MAX + 1e-4, 0.5)
    sizes, grid = store.size_table(images, distances=grid, effort=7)
    s = 0.5 * sizes[:, 0].sum()

    def measure(d):
        return int(store.compress(images, codec="jxl", setting=float(d), effort=7).total_bytes)

    fit = budget.fit_real_bytes(lambda t: budget.distance_for_budget(sizes, grid, t), measure, s)
    assert fit.total_bytes <= s
    assert fit.total_bytes >= 0.995 * s
