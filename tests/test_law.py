"""Tests of the storage scaling law: closed forms, the paper's numbers, both fitters, bootstrap,
extrapolation, the size curve and the calculator, and bad input."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

from storage_scaling import law

FOOD = law.paper_law("food101")
CITY = law.paper_law("cityscapes")
ISAID = law.paper_law("isaid")
FOOD_N = law.PAPER_N_GRIDS["food101"]
FOOD_L = list(law.PAPER_SIZE_TABLES["food101"].values())
CITY_N = law.PAPER_N_GRIDS["cityscapes"]
CITY_L = list(law.PAPER_SIZE_TABLES["cityscapes"].values())


def grid(params, ns=FOOD_N, Ls=FOOD_L, **kw):
    return law.synthetic_grid(params, ns, Ls, **kw)


# ---------------------------------------------------------------- closed forms -----------------

@pytest.mark.parametrize("key", ["food101", "cityscapes", "isaid", "food101_f1", "cityscapes_macc",
                                 "isaid_segm"])
@pytest.mark.parametrize("s", [1e6, 48.48e6, 1.2e8, 7.272e8, 1e11])
def test_closed_forms_equal_direct_minimisation(key, s):
    p = law.paper_law(key)
    res = minimize_scalar(lambda t: float(p.error(math.exp(t), s / math.exp(t))),
                          bounds=(0.0, math.log(s)), method="bounded", options={"xatol": 1e-12})
    n_num = math.exp(res.x)
    assert p.n_star(s) == pytest.approx(n_num, rel=1e-5)
    assert p.L_star(s) == pytest.approx(s / n_num, rel=1e-5)
    assert p.n_star(s) * p.L_star(s) == pytest.approx(s, rel=1e-12)
    assert p.optimal_error(s) == pytest.approx(res.fun, rel=1e-10)
    # E + C_E s^-nu is the law evaluated at the closed-form optimum
    assert p.optimal_error(s) == pytest.approx(float(p.error(p.n_star(s), p.L_star(s))), rel=1e-12)
    n2, L2, e2 = law.numerical_optimum(p, s)
    assert n2 == pytest.approx(n_num, rel=1e-5) and e2 == pytest.approx(res.fun, rel=1e-10)


def test_optimal_beats_every_fixed_size():
    for s in (48.48e6, 727.2e6):
        best = FOOD.optimal_error(s)
        for L in np.geomspace(1e3, 1e5, 40):
            assert FOOD.fixed_size_error(s, L) >= best - 1e-12


def test_fixed_size_error_saturates():
    L = 43_000.0
    floor = CITY.E + CITY.B * L ** -CITY.beta
    assert CITY.fixed_size_error(1e15, L) == pytest.approx(floor, rel=1e-3)
    capped = CITY.fixed_size_error(1e15, L, n_max=2975)
    assert capped == pytest.approx(float(CITY.error(2975, L)), rel=1e-12)
    # past the pool, more storage buys nothing
    assert CITY.fixed_size_error(1e12, L, n_max=2975) == CITY.fixed_size_error(1e13, L, n_max=2975)


def test_allocation_pool_cap():
    tab = FOOD.allocation([48.48e6, 1e10], n_max=60_600)
    assert not tab["pool_capped"].iloc[0] and tab["pool_capped"].iloc[1]
    assert tab["n_star"].iloc[1] == 60_600
    assert tab["L_star"].iloc[1] == pytest.approx(1e10 / 60_600)


# ---------------------------------------------------------------- the paper's numbers ---------

def test_food101_at_48_48_MB():
    s = 48.48e6
    assert round(FOOD.n_star(s)) == 6_838
    assert round(FOOD.L_star(s)) == 7_090
    assert round(FOOD.optimal_error(s), 3) == 0.464


def test_isaid_at_168_MB_matches_authors_config_file():
    # the authors' repo has a config idxs_s168174000_n11417
    assert ISAID.n_star(168.174e6) == pytest.approx(11_417, rel=0.01)
    assert round(ISAID.n_star(168.174e6)) == 11_417


def test_every_row_of_the_allocation_table():
    ref = law.paper_allocation_table()
    assert len(ref) == 15
    for _, r in ref.iterrows():
        p = law.paper_law(r["dataset"])
        s = r["budget_bytes"]
        assert abs(p.n_star(s) - r["n_star"]) <= 0.5 + 1e-9, (r["dataset"], s)
        assert abs(p.L_star(s) - r["L_star"]) <= 0.5 + 1e-9, (r["dataset"], s)
        assert abs(p.optimal_error(s) - r["err_pred"]) <= 0.0005 + 1e-9, (r["dataset"], s)
    cmp = law.compare_with_paper()
    assert (cmp["n_star"] - cmp["n_star_paper"]).abs().max() <= 0.5


@pytest.mark.parametrize("key,nu,lexp,C,CE", [
    ("food101", 0.2536, 0.2390, 103.2, 41.34),
    ("cityscapes", 0.4312, 0.2684, 298.7, 168.5),
    ("isaid", 0.0863, 0.0509, 5619, 2.315),
])
def test_derived_constants(key, nu, lexp, C, CE):
    p = law.paper_law(key)
    assert p.nu == pytest.approx(nu, abs=5e-5)
    assert p.L_exponent == pytest.approx(lexp, abs=5e-5)
    assert p.n_exponent == pytest.approx(1 - lexp, abs=5e-5)
    assert p.C == pytest.approx(C, rel=1e-3)
    assert p.C_E == pytest.approx(CE, rel=1e-3)


def test_predicted_grid_corners():
    assert round(float(FOOD.error(60_600, 39_966)), 3) == 0.189
    assert round(float(FOOD.error(3_030, 5_621)), 3) == 0.606
    assert round(float(CITY.error(595, 28_441)), 3) == 0.265
    assert round(float(ISAID.error(28_029, 83_365)), 3) == 0.729


def test_paper_budgets():
    assert law.PAPER_BUDGETS["food101"][0] == pytest.approx(48.48e6)
    assert law.PAPER_BUDGETS["isaid"][1] == pytest.approx(168.174e6)
    assert law.PAPER_BUDGETS["cityscapes"][-1] == pytest.approx(119.988e6)
    assert np.diff(law.PAPER_BUDGETS["cityscapes"]) == pytest.approx([20.907e6] * 4)


# ---------------------------------------------------------------- fitters ---------------------

@pytest.mark.parametrize("method", ["paper", "robust"])
def test_exact_recovery_without_floor(method):
    fit = law.fit_law(grid(FOOD), method=method, with_floor=False)
    assert fit.params.alpha == pytest.approx(FOOD.alpha, rel=1e-6)
    assert fit.params.beta == pytest.approx(FOOD.beta, rel=1e-6)
    assert fit.params.A == pytest.approx(FOOD.A, rel=1e-5)
    assert fit.params.B == pytest.approx(FOOD.B, rel=1e-5)
    assert fit.r2 > 0.999999


@pytest.mark.parametrize("method", ["paper", "robust"])
def test_exact_recovery_with_floor(method):
    fit = law.fit_law(grid(CITY, CITY_N, CITY_L), method=method, with_floor=True)
    assert fit.params.alpha == pytest.approx(CITY.alpha, rel=1e-6)
    assert fit.params.beta == pytest.approx(CITY.beta, rel=1e-6)
    assert fit.params.E == pytest.approx(CITY.E, rel=1e-6)
    assert fit.at_bound == ()


def test_floor_on_its_bound_is_reported():
    fit = law.fit_robust(grid(FOOD), with_floor=True)  # data made with E = 0
    assert "E" in fit.at_bound and fit.params.E == 0.0
    assert fit.params.alpha == pytest.approx(FOOD.alpha, rel=1e-6)
    paper = law.fit_paper(grid(FOOD), with_floor=True)
    assert "E" in paper.at_bound


def test_recovery_within_bootstrap_interval_at_one_percent_noise():
    data = grid(FOOD, noise=0.01, seeds=2, rng_seed=3)
    budgets = (48.48e6, 727.2e6)
    boot = law.bootstrap(data, method="robust", with_floor=False, n_boot=200, budgets=budgets, seed=1)
    assert boot.n_failed == 0 and len(boot.samples) == 200
    for name in ("A", "alpha", "B", "beta", "nu"):
        lo, hi = boot.interval(name)
        truth = FOOD.nu if name == "nu" else getattr(FOOD, name)
        assert lo <= truth <= hi, (name, lo, truth, hi)
    for s in budgets:
        lo, hi = boot.interval(f"n_star@{s / 1e6:.6g} MB")
        assert lo <= FOOD.n_star(s) <= hi
        assert hi / lo < 1.2  # 1 % noise on a 6x6 grid pins n* to a few per cent
    corr = boot.correlations()
    assert corr.shape == (4, 4) and corr.loc["alpha", "A"] > 0.5  # A and alpha trade off
    summary = boot.summary_frame()
    assert set(summary["kind"]) == {"interval", "correlation", "bound_fraction", "meta"}


def test_paper_bootstrap_and_within_cells():
    data = grid(FOOD, noise=0.01, seeds=2, rng_seed=4)
    boot = law.bootstrap(data, method="paper", with_floor=False, n_boot=40, seed=0, within_cells=True)
    lo, hi = boot.interval("beta")
    assert lo <= FOOD.beta <= hi
    with pytest.raises(ValueError, match="repeated runs"):
        law.bootstrap(grid(FOOD), n_boot=5, within_cells=True, with_floor=False)


def test_second_metric_one_minus():
    data = grid(law.paper_law("food101_f1"))
    acc = data.assign(macro_f1=1 - data["error"]).drop(columns="error")
    fit = law.fit_robust(acc, metric="macro_f1", one_minus=True, with_floor=False)
    assert fit.params.beta == pytest.approx(1.0817, rel=1e-6)
    d = law.law_data(acc.rename(columns={"L": "mean_bytes"}), metric="macro_f1", one_minus=True)
    assert d.metric == "1 - macro_f1" and np.allclose(d.err, data["error"])


def test_extrapolation_check():
    exact = law.extrapolation_check(grid(FOOD), axis="n", with_floor=False)
    assert exact.held_out_value == 60_600 and len(exact.frame) == 6
    assert exact.max_abs_rel_error < 1e-6
    noisy = grid(FOOD, noise=0.01, rng_seed=5)
    for axis in ("n", "L"):
        ex = law.extrapolation_check(noisy, axis=axis, method="paper", with_floor=False)
        assert ex.mean_abs_rel_error < 0.1
    ex = law.extrapolation_check(noisy, axis="L", with_floor=False)
    assert ex.held_out_value == max(FOOD_L) and (ex.fit.n_points == 30)


def test_extrapolation_fit_up_to_holds_out_every_larger_n():
    # the paper's n grid: fit n <= 60 % of the pool (3 sizes), predict the 80 % and 100 % cells
    ex = law.extrapolation_check(grid(FOOD), axis="n", with_floor=False, fit_up_to=0.6 * 60_600 + 0.5)
    assert sorted(set(ex.frame["n"])) == [48_480, 60_600] and ex.held_out_value == 48_480
    assert ex.fit.n_points == 4 * 6 and ex.max_abs_rel_error < 1e-6
    with pytest.raises(ValueError, match="fit_up_to"):
        law.extrapolation_check(grid(FOOD), axis="n", with_floor=False, fit_up_to=5_000)  # one n left to fit
    with pytest.raises(ValueError, match="hold"):
        law.extrapolation_check(grid(FOOD), axis="n", with_floor=False, fit_up_to=60_600)  # nothing held out


# ---------------------------------------------------------------- size curve / calculator -----

def test_size_curve_and_calculator():
    d = np.array([1, 2, 4, 7, 10, 15.0])
    curve = law.fit_size_curve(d, 1 / (2e-5 * d + 1.5e-5))
    assert curve.a == pytest.approx(2e-5, rel=1e-6) and curve.b == pytest.approx(1.5e-5, rel=1e-6)
    assert curve.distance(curve.size(6.5)) == pytest.approx(6.5)
    paper_curve = law.fit_size_curve(list(law.PAPER_SIZE_TABLES["food101"]), FOOD_L)
    assert np.all(np.abs(paper_curve.size(d) / np.array(FOOD_L) - 1) < 0.2)

    data = grid(FOOD, noise=0.01, rng_seed=6)
    budgets = [48.48e6, 5e9]
    boot = law.bootstrap(data, with_floor=False, n_boot=30, budgets=budgets, seed=0, n_max=60_600)
    calc = law.storage_calculator(boot.point.params, budgets, size_curve=paper_curve, boot=boot,
                                  n_max=60_600)
    first = calc.iloc[0]
    assert first["n_lo"] <= first["n"] <= first["n_hi"]
    assert first["L_bytes_lo"] <= first["L_bytes"] <= first["L_bytes_hi"]
    assert first["distance_lo"] <= first["distance"] <= first["distance_hi"]
    assert paper_curve.d_min <= first["distance"] <= paper_curve.d_max and first["note"] == ""
    assert "pool" in calc.iloc[1]["note"] and calc.iloc[1]["n"] == 60_600
    # the calculator also takes the interval rows of a saved summary table
    again = law.storage_calculator(boot.point.params, budgets, boot=boot.summary_frame(), n_max=60_600)
    assert again["n_lo"].tolist() == calc["n_lo"].tolist()


def test_pool_cap_applies_to_the_bootstrap_intervals_too():
    """Issue 9, item 3: with a pool cap every interval must contain its own point estimate."""
    data = grid(FOOD, noise=0.01, rng_seed=6)
    budgets = [48.48e6, 1e9, 5e10]  # uncapped, capped, far beyond the pool
    cap = 48_000
    boot = law.bootstrap(data, with_floor=False, n_boot=30, budgets=budgets, seed=0, n_max=cap)
    tab = boot.intervals()
    assert (tab["lo"] <= tab["point"]).all() and (tab["point"] <= tab["hi"]).all(), tab
    calc = law.storage_calculator(boot.point.params, budgets, boot=boot, n_max=cap)
    for col in ("n", "L_bytes", "error"):
        assert (calc[f"{col}_lo"] <= calc[col]).all() and (calc[col] <= calc[f"{col}_hi"]).all(), calc
    assert calc["n"].iloc[1:].tolist() == [cap, cap] and calc["n_hi"].max() == cap
    assert calc["L_bytes_lo"].iloc[2] == pytest.approx(5e10 / cap)
    # a bootstrap without the cap cannot be paired with a capped calculator, in either form
    plain = law.bootstrap(data, with_floor=False, n_boot=10, budgets=budgets, seed=0)
    with pytest.raises(ValueError, match="n_max"):
        law.storage_calculator(plain.point.params, budgets, boot=plain, n_max=cap)
    with pytest.raises(ValueError, match="without the cap"):
        law.storage_calculator(plain.point.params, budgets, boot=plain.summary_frame(), n_max=cap)
    with pytest.raises(ValueError, match="n_max"):
        law.bootstrap(data, with_floor=False, n_boot=5, n_max=0)


# ---------------------------------------------------------------- compression table selection --

def sizes_table():
    rows = []
    for ds, split, base in (("food101-64px", "train", 1500.0), ("food101-originals", "sample", 43000.0)):
        rows.append({"dataset": ds, "split": split, "scheme": "stored-jpeg", "distance": np.nan,
                     "mean_bytes": base * 1.2})
        for d in (1.0, 2.0, 4.0, 8.0):
            rows.append({"dataset": ds, "split": split, "scheme": "jxl", "distance": d,
                         "mean_bytes": base / (0.5 + 0.5 * d)})
    return pd.DataFrame(rows)


def test_select_sizes_takes_one_dataset_and_one_scheme():
    """Issue 9, item 1: two image sets whose names share 'food' must never be averaged."""
    table = sizes_table()
    small = law.select_sizes(table, dataset="food101-64px", scheme="jxl")
    assert small["distance"].tolist() == [1.0, 2.0, 4.0, 8.0]
    assert small["mean_bytes"].iloc[0] == pytest.approx(1500.0)  # not (1500 + 43000) / 2
    big = law.select_sizes(table, dataset="food101-originals")
    assert big["mean_bytes"].iloc[0] == pytest.approx(43000.0)
    curve = law.fit_size_curve(small["distance"], small["mean_bytes"])
    assert curve.size(1.0) == pytest.approx(1500.0, rel=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(dataset="food"), r"no rows for dataset 'food'.*food101-64px"),
    (dict(dataset="food101-64px", scheme="codec"), r"no 'codec' rows.*'jxl', 'stored-jpeg'"),
    (dict(dataset="food101-64px", split="test"), r"split 'test'.*\['train'\]"),
])
def test_select_sizes_names_what_is_missing(kwargs, match):
    with pytest.raises(ValueError, match=match):
        law.select_sizes(sizes_table(), **kwargs)


def test_select_sizes_refuses_to_average_or_guess():
    table = sizes_table()
    doubled = pd.concat([table, table.assign(split="valid")], ignore_index=True)
    with pytest.raises(ValueError, match="not averaged.*pass split="):
        law.select_sizes(doubled, dataset="food101-64px")
    assert len(law.select_sizes(doubled, dataset="food101-64px", split="valid")) == 4
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['scheme'\]"):
        law.select_sizes(table.rename(columns={"scheme": "codec"}), dataset="food101-64px")
    one = table[~((table["dataset"] == "food101-64px") & (table["distance"] > 1))]
    with pytest.raises(ValueError, match="at least two distances"):
        law.select_sizes(one, dataset="food101-64px")


# ---------------------------------------------------------------- bad input -------------------

def frame(**cols):
    base = {"n": [100, 100, 1000, 1000, 5000], "L": [1e3, 1e4, 1e3, 1e4, 3e3],
            "error": [0.5, 0.4, 0.3, 0.2, 0.25]}
    base.update(cols)
    return pd.DataFrame(base)


@pytest.mark.parametrize("bad,match", [
    (dict(n=[100, 100, 1000, 0, 5000]), "'n' must be > 0"),
    (dict(L=[1e3, -1, 1e3, 1e4, 3e3]), "'L' must be > 0"),
    (dict(error=[0.5, 0.4, 0.0, 0.2, 0.25]), r"\(0, 1\]"),
    (dict(error=[0.5, 0.4, 1.2, 0.2, 0.25]), r"\(0, 1\]"),
    (dict(error=[0.5, np.nan, 0.3, 0.2, 0.25]), "missing"),
    (dict(n=[100] * 5), "single n"),
    (dict(L=[1e3] * 5), "single L"),
])
def test_bad_input_raises_before_fitting(bad, match):
    for method in ("robust", "paper"):
        with pytest.raises(ValueError, match=match):
            law.fit_law(frame(**bad), method=method, with_floor=False)


def test_too_few_points_and_missing_columns():
    small = frame().iloc[:4]
    with pytest.raises(ValueError, match="4 distinct .* for 5 parameters"):
        law.fit_robust(small, with_floor=True)
    law.fit_paper(small, with_floor=False)  # 4 cells, 4 parameters: allowed
    with pytest.raises(ValueError, match="lacks column"):
        law.fit_robust(frame().rename(columns={"error": "acc"}))
    with pytest.raises(ValueError, match="unknown fit method"):
        law.fit_law(frame(), method="magic")
    with pytest.raises(ValueError, match=">= 0"):
        law.LawParams(A=-1, alpha=0.3, B=1, beta=1)
    with pytest.raises(ValueError, match="interior optimum"):
        law.LawParams(A=1, alpha=0.0, B=1, beta=1).n_star(1e6)
    with pytest.raises(ValueError, match="budget"):
        FOOD.n_star(-5)
    with pytest.raises(ValueError, match="3 distinct"):
        law.extrapolation_check(grid(FOOD, ns=(1000, 2000)), axis="n", with_floor=False)


def test_non_converged_fit_raises_instead_of_returning_numbers():
    noisy = grid(FOOD, noise=0.02, rng_seed=7)
    with pytest.raises(law.ConvergenceError, match="did not converge"):
        law.fit_robust(noisy, with_floor=False, gtol_accept=0.0)
    with pytest.raises(law.ConvergenceError, match="did not converge"):
        law.fit_paper(noisy, with_floor=False, rtol_grad=0.0)


# ---------------------------------------------------------------- with or without the floor ---

FOOD_E = law.LawParams(A=FOOD.A, alpha=FOOD.alpha, B=FOOD.B, beta=FOOD.beta, E=0.08)


@pytest.mark.parametrize("method", ["robust", "paper"])
def test_choose_form_by_bic(method):
    """Issue 9, item 4: the data choose the form, with the extra parameter penalised."""
    floor = law.choose_form(grid(FOOD_E, noise=0.01, seeds=2, rng_seed=3), method=method)
    assert floor.with_floor and not floor.forced
    assert floor.values[True] < floor.values[False]
    assert floor.fit.params.E == pytest.approx(0.08, rel=0.3)
    plain = law.choose_form(grid(FOOD, noise=0.01, seeds=2, rng_seed=3), method=method)
    assert not plain.with_floor and plain.values[False] < plain.values[True]
    assert "BIC" in plain.reason and "ln N" in plain.reason
    forced = law.choose_form(grid(FOOD, noise=0.01, seeds=2, rng_seed=3), method=method, with_floor=True)
    assert forced.forced and forced.with_floor and "would choose the form without floor" in forced.reason


def test_information_criterion_penalises_the_extra_parameter():
    data = grid(FOOD, noise=0.01, seeds=2, rng_seed=3)
    nofloor = law.fit_robust(data, with_floor=False)
    floor = law.fit_robust(data, with_floor=True)  # E ends on its bound: the same curve
    assert "E" in floor.at_bound
    bic = {f.with_floor: law.information_criterion(f, data) for f in (nofloor, floor)}
    aic = {f.with_floor: law.information_criterion(f, data, kind="aic") for f in (nofloor, floor)}
    assert bic[True] - bic[False] == pytest.approx(math.log(len(data)), abs=0.05)
    assert aic[True] - aic[False] == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError, match="'bic' or 'aic'"):
        law.information_criterion(floor, data, kind="r2")


def test_choose_form_with_too_few_cells_for_a_comparison():
    data = grid(FOOD, ns=(3030, 12120), Ls=(5621, 17902, 39966)).iloc[:5]  # 5 cells, 5 parameters
    choice = law.choose_form(data)
    assert not choice.with_floor and "6 cells" in choice.problems[True]
    assert "the only form that could be compared" in choice.reason
    assert law.choose_form(data, with_floor=True).with_floor  # forcing it is still allowed
    with pytest.raises(ValueError, match="True, False or None"):
        law.choose_form(data, with_floor="yes")


def test_identification_notes_name_flat_directions():
    # a floor fit to floor-free data, stopped off its bound: E is not pinned down by these data
    data = grid(FOOD, noise=0.01, seeds=2, rng_seed=0)
    fit = law.fit_robust(data, with_floor=True)
    assert "E" not in fit.at_bound  # (this draw) small positive floor
    notes = law.identification_notes(fit, data)
    assert any(n.startswith("E is not identified") and "reaches 0" for n in notes), notes
    # a well determined fit has no notes
    assert law.identification_notes(law.fit_robust(data, with_floor=False), data) == []
    # alpha -> 0 makes A n^-alpha a second constant beside E: a near-singular Jacobian
    flat = law.LawFit(params=law.LawParams(A=0.2, alpha=1e-9, B=FOOD.B, beta=FOOD.beta, E=0.1),
                      method="robust", with_floor=True, loss=0.0, n_points=len(data), r2=0.0,
                      grad_norm=0.0)
    notes = law.identification_notes(flat, data)
    assert len(notes) == 1 and "near-singular Jacobian" in notes[0]
    assert "A" in notes[0] and "E" in notes[0]


def test_bootstrap_coverage_table():
    cov = law.bootstrap_coverage(FOOD, FOOD_N, FOOD_L, noise=0.01, n_datasets=2, n_boot=15,
                                 method="paper", budgets=[48.48e6], quantities=["alpha", "nu"])
    assert len(cov) == 4 and set(cov["quantity"]) == {"alpha", "nu"}
    assert cov["truth"].iloc[0] == FOOD.alpha and cov["covered"].dtype == bool
    assert (cov["lo"] <= cov["hi"]).all()
    assert (cov["covered"] == ((cov["lo"] <= cov["truth"]) & (cov["truth"] <= cov["hi"]))).all()
    with pytest.raises(ValueError, match="n_datasets"):
        law.bootstrap_coverage(FOOD, FOOD_N, FOOD_L, noise=0.01, n_datasets=0)


# ---------------------------------------------------------------- a flat metric ----------------

def flat_frame(value=0.9):
    """A model at chance: the same error in every one of 24 runs (4 n x 3 L x 2 seeds)."""
    return pd.DataFrame([{"n": n, "L": L, "error": value, "seed": s}
                         for n in (1000, 2000, 4000, 8000) for L in (1000, 3000, 9000) for s in (0, 1)])


@pytest.mark.parametrize("call", [
    lambda d: law.law_data(d, source="rows.csv"),
    lambda d: law.fit_robust(d, with_floor=False),
    lambda d: law.fit_paper(d, with_floor=False),
    lambda d: law.choose_form(d),
    lambda d: law.bootstrap(d, with_floor=False, n_boot=3, budgets=[48e6]),
    lambda d: law.bootstrap(d, method="paper", with_floor=False, n_boot=3, budgets=[48e6]),
], ids=["law_data", "fit_robust", "fit_paper", "choose_form", "bootstrap", "bootstrap_paper"])
def test_flat_metric_is_refused_before_fitting(call):
    # the old code fitted alpha ~ 5e-17, beta ~ 3e-16 and then overflowed in C (or, with the
    # paper's fit, printed an allocation for a model at chance)
    with pytest.raises(ValueError, match=r"error is the same \(0\.9\) in all 24 rows.*flat metric"):
        call(flat_frame())


def test_flat_metric_message_names_the_source_and_an_accuracy_column():
    with pytest.raises(ValueError, match=r"in all 24 rows of rows\.csv: .*check the runs"):
        law.law_data(flat_frame(), source="rows.csv")
    acc = flat_frame().assign(accuracy=0.25).drop(columns="error")
    with pytest.raises(ValueError, match=r"1 - accuracy is the same \(0\.75\) in all 24 rows"):
        law.law_data(acc, metric="accuracy", one_minus=True)
    varied = flat_frame()
    varied.loc[3, "error"] = 0.89  # one run differs: not flat, the data checks pass
    assert len(law.law_data(varied)) == 24


# what the robust fit returned for the flat metric before it was refused: exponents at 0
DEGENERATE = law.LawParams(A=0.1249, alpha=4.767e-17, B=0.7751, beta=2.98e-16)


def test_closed_forms_of_a_degenerate_law_refuse_instead_of_overflowing():
    p = DEGENERATE
    assert "not defined" in p.closed_form_problem() and "alpha = 4.77e-17" in p.closed_form_problem()
    for get in (lambda: p.C, lambda: p.C_E, lambda: p.n_star(48e6), lambda: p.L_star(48e6),
                lambda: p.optimal_error(48e6), lambda: p.allocation([48e6, 1e9], n_max=60_000),
                lambda: law.storage_calculator(p, [48e6])):
        with pytest.raises(ValueError, match="the optimal allocation is not defined"):
            get()  # the old code raised OverflowError in C
    assert p.nu == pytest.approx(4.109e-17, rel=1e-3)  # nu itself is a number
    q = law.derived_quantities(p, [48e6])  # what every bootstrap resample computes
    assert np.isnan(q["n_star@48 MB"]) and np.isnan(q["error_star@48 MB"]) and q["alpha"] == p.alpha
    both_zero = law.LawParams(A=1.0, alpha=0.0, B=1.0, beta=0.0)
    with pytest.raises(ValueError, match="alpha \\+ beta > 0"):
        both_zero.L_exponent  # was ZeroDivisionError
    assert "are 0" in both_zero.closed_form_problem()


@pytest.mark.parametrize("key", sorted(law.PAPER_FITS))
def test_closed_forms_in_log_space_keep_the_published_values(key):
    p = law.paper_law(key)
    a, b = p.alpha, p.beta
    assert p.closed_form_problem() == ""
    assert p.C == pytest.approx((b * p.B / (a * p.A)) ** (1 / (a + b)), rel=1e-12)
    assert p.C_E == pytest.approx(p.A * (a + b) / b * (b * p.B / (a * p.A)) ** (a / (a + b)), rel=1e-12)


def test_bootstrap_progress_only_when_asked(capsys):
    data = grid(FOOD, noise=0.01, seeds=1, rng_seed=4)
    law.bootstrap(data, with_floor=False, n_boot=4, seed=1)
    assert capsys.readouterr().err == ""  # library callers: silent by default
    law.bootstrap(data, with_floor=False, n_boot=4, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "4/4" in err


def test_the_calculator_never_prints_an_infeasible_distance():
    curve = law.SizeCurve(a=0.002, b=0.0005, d_min=1.0, d_max=15.0)  # L(1) = 400 B, L(0) = 2,000 B
    params = law.LawParams(A=2.0, alpha=0.2, B=50.0, beta=0.6)  # asks for large L at large budgets
    budgets = [2e4, 5e6, 5e8]
    raw = [float(curve.distance(L)) for L in params.L_star(np.array(budgets))]
    assert min(raw) < 0  # the curve's inverse goes negative: the old calculator printed that
    calc = law.storage_calculator(params, budgets, size_curve=curve)
    assert (calc["distance"] >= curve.d_min).all()
    clamped = calc["note"].str.contains("clamped to 1")
    assert clamped.sum() == sum(d < 1.0 for d in raw)
    kept = law.storage_calculator(params, budgets, size_curve=curve, original_bytes=1_000.0)
    originals = kept["L_bytes"] >= 1_000.0
    assert originals.any() and kept.loc[originals, "distance"].isna().all()
    assert kept.loc[originals, "note"].str.startswith("keep the originals").all()
    assert (kept.loc[~originals, "distance"] >= curve.d_min).all()
