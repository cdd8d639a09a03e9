"""Tests of the multiresolution model: simulation vs formula, exponents, closed forms, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from storage_scaling import theory

PAPER = theory.ModelParams(p=2.01, q=2, r=0.99, tau=1.0)
POINTS = [(100, 3), (1000, 5), (10000, 7)]


@pytest.fixture(scope="module")
def tuned_runs():
    """Validation-tuned ridge on the paper's grid at the three test points, 30 repeats."""
    return theory.simulate(PAPER, [n for n, _ in POINTS], [m for _, m in POINTS], repeats=30,
                           n_val=10_000, n_test=2_000, seed=7)


def _select(rows, n, m, key="excess"):
    sel = (rows["n"] == n) & (rows["m"] == m)
    return np.asarray(rows[key], dtype=float)[sel]


@pytest.mark.parametrize("n,m", POINTS)
def test_tuned_simulation_matches_deterministic_equivalent(tuned_runs, n, m):
    values = _select(tuned_runs, n, m)
    assert values.size == 30
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
    formula = float(theory.de_optimal(n, m, PAPER, grid="paper")["excess"])
    assert se < 0.05 * formula, "too few repeats for the comparison to mean anything"
    assert abs(mean - formula) <= 3 * se, (n, m, mean, se, formula)


@pytest.mark.parametrize("n,m", POINTS)
def test_fixed_penalty_simulation_matches_formula(n, m):
    """At one fixed lambda (the formula's best on the grid) the formula is the expected risk."""
    best = theory.de_optimal(n, m, PAPER, grid="paper")
    lam = float(best["lam"])
    c = lam / n ** PAPER.lambda_exponent_paper
    reps = {100: 200, 1000: 60, 10000: 20}[n]
    rows = theory.simulate(PAPER, [n], [m], repeats=reps, n_val=10, n_test=0, c_grid=[c], seed=3)
    values = rows["excess"]
    mean, se = values.mean(), values.std(ddof=1) / math.sqrt(values.size)
    assert np.allclose(rows["lam"], lam)
    assert se < 0.02 * float(best["excess"])
    assert abs(mean - float(best["excess"])) <= 3 * se


def test_sampled_test_error_agrees_with_population_error(tuned_runs):
    for n, m in POINTS:
        pop, sampled = _select(tuned_runs, n, m), _select(tuned_runs, n, m, "excess_sampled")
        diff = sampled - pop  # paired: same trained model, fresh test samples
        assert abs(diff.mean()) <= 3 * diff.std(ddof=1) / math.sqrt(diff.size) + 1e-12


def test_ordinary_least_squares_limit_is_exact():
    """Gaussian design, lambda -> 0: E excess = kbar + (tau^2 + kbar) L/(n - L - 1) exactly."""
    n, m = 60, 3
    rows = theory.simulate(PAPER, [n], [m], repeats=600, n_val=5, n_test=0, c_grid=[1e-9],
                           dist="gaussian", seed=11)
    k = PAPER.truncation_energy(m)
    L = PAPER.kept_coefficients(m)
    exact = k + (1 + k) * L / (n - L - 1)
    se = rows["excess"].std(ddof=1) / math.sqrt(rows["excess"].size)
    assert abs(rows["excess"].mean() - exact) <= 3 * se


def test_formula_reproduces_reference_values():
    """paper-facts §4 item 12 (exact formula, paper grid): n=1e5, L=511 -> 0.0074; n=1e3, L=63 -> 0.0764."""
    values = theory.de_optimal(np.array([1e5, 1e3]), np.array([9, 6]), PAPER, grid="paper")["excess"]
    assert round(float(values[0]), 4) == 0.0074
    assert round(float(values[1]), 4) == 0.0764


def test_fixed_point_equation_holds():
    n, m, lam = np.array([50.0, 1e3, 1e5]), np.array([9, 5, 12]), np.array([0.3, 20.0, 150.0])
    x = theory.lambda_star(n, m, lam, PAPER)
    for ni, mi, li, xi in zip(n, m, lam, x):
        level = np.arange(mi)
        df1 = np.sum(2.0 ** level * 2.01 ** -level / (2.01 ** -level + xi))
        assert df1 + li / xi == pytest.approx(ni, rel=1e-10)


def test_alpha_matches_local_slope_far_out():
    derived = theory.derived_exponents(PAPER)["alpha"]
    assert derived == pytest.approx(math.log(2.01 / 0.99) / math.log(2.01 * 2 / 0.99))
    slope = -theory.local_slope(lambda n: theory.de_optimal(n, 60, PAPER)["excess"], 1e6, 1e8)
    assert abs(slope / derived - 1) < 0.05


def test_beta_matches_local_slope_far_out():
    derived = theory.derived_exponents(PAPER)["beta"]
    assert derived == pytest.approx(math.log(2.01 / 0.99) / math.log(2))
    m = np.array([10, 14])  # L = 1,023 and 16,383
    err = theory.de_optimal(1e14, m, PAPER)["excess"]
    slope = -np.diff(np.log(err))[0] / np.diff(np.log(PAPER.kept_coefficients(m)))[0]
    assert abs(slope / derived - 1) < 0.05


def test_saturated_phase_has_its_own_alpha():
    sat = theory.ModelParams(p=2.01, q=2, r=0.3)
    assert sat.phase == "saturated"
    derived = theory.derived_exponents(sat)["alpha"]
    assert derived == pytest.approx(2 * sat.kappa / (1 + 2 * sat.kappa))
    slope = -theory.local_slope(lambda n: theory.de_optimal(n, 60, sat)["excess"], 1e6, 1e8)
    assert abs(slope / derived - 1) < 0.05
    assert abs(slope / (sat.beta / (1 + sat.beta)) - 1) > 0.05  # the naive formula is wrong here


def test_truncation_term_closed_form():
    sym = theory.sym_truncation()
    assert sym["check"] == 0
    p, r, m = theory.P, theory.R, theory.M_LEV
    assert sp.simplify(sym["value"] - r ** m * p ** (1 - m) / (p - r)) == 0
    for prm in (PAPER, theory.ModelParams(p=5.0, q=4, r=2.5)):
        for mm in (1, 3, 9):
            direct = sum((prm.r / prm.p) ** l for l in range(mm, 4000))
            closed = prm.r / (prm.p - prm.r) * (prm.r / prm.p) ** (mm - 1)
            assert prm.truncation_energy(mm) == pytest.approx(direct, rel=1e-12)
            assert closed == pytest.approx(direct, rel=1e-12)
            assert float(sym["value"].subs({p: prm.p, r: prm.r, m: mm})) == pytest.approx(direct)
    finite = theory.ModelParams(total_levels=14)
    assert finite.truncation_energy(9) == pytest.approx(sum((0.99 / 2.01) ** l for l in range(9, 14)))


def test_storage_and_split_formulas():
    assert sp.simplify(theory.sym_storage() - (theory.Q ** theory.M_LEV - 1) / (theory.Q - 1)) == 0
    assert [PAPER.kept_coefficients(m) for m in theory.PAPER_M] == [3, 7, 15, 31, 63, 127, 255, 511]
    split = theory.sym_optimal_split()
    a, b = sp.symbols("alpha beta", positive=True)
    assert sp.simplify(split["nu"] - a * b / (a + b)) == 0
    assert sp.simplify(split["n_exponent"] - b / (a + b)) == 0


@pytest.mark.parametrize("kwargs,needle", [
    (dict(p=1.9, q=2, r=0.99), "q/p < 1"),
    (dict(p=2.0, q=2, r=0.99), "q/p < 1"),
    (dict(p=2.01, q=2, r=2.5), "r < p"),
    (dict(p=2.01, q=2, r=0.0), "r > 0"),
    (dict(p=2.01, q=1, r=0.5), "q="),
    (dict(p=2.01, q=2.5, r=0.5), "q="),
    (dict(p=2.01, q=2, r=0.99, tau=-1.0), "tau >= 0"),
    (dict(p=float("nan"), q=2, r=0.99), "p=nan"),
])
def test_bad_model_parameters_name_the_condition(kwargs, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("*", r"\*")):
        theory.ModelParams(**kwargs)


def test_bad_sizes_name_the_condition():
    with pytest.raises(ValueError, match="n >= 1"):
        theory.de_optimal(0, 3, PAPER)
    with pytest.raises(ValueError, match="m >= 1"):
        theory.de_optimal(100, 0, PAPER)
    with pytest.raises(ValueError, match="n >= 1"):
        theory.simulate(PAPER, [0], [3], repeats=1)
    with pytest.raises(ValueError, match="m >= 1"):
        theory.simulate(PAPER, [10], [0], repeats=1)
    with pytest.raises(ValueError, match="lambda > 0"):
        theory.deterministic_equivalent(100, 3, 0.0, PAPER)
    with pytest.raises(ValueError, match="L = "):
        theory.simulate(PAPER, [10], [20], repeats=1)
    with pytest.raises(ValueError, match="repeats >= 1"):
        theory.simulate(PAPER, [10], [2], repeats=0)


def test_fit_recovers_known_exponents():
    n, L = np.meshgrid(np.logspace(2, 5, 10), [3, 7, 15, 31, 63, 127, 255, 511])
    err = 2.0 * n ** -0.45 + 1.5 * L ** -1.1
    fit = theory.fit_excess_law(n, L, err)
    assert fit["alpha"] == pytest.approx(0.45, rel=1e-4)
    assert fit["beta"] == pytest.approx(1.1, rel=1e-4)
