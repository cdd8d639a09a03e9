"""What notebook 05 reports, computed by theory.py: parameters, summaries, agreement, validity."""

import json

import numpy as np
import pandas as pd
import pytest

from storage_scaling import paths, theory

MODEL = theory.ModelParams(p=2.01, q=2, r=0.99, tau=1.0)


def test_simulation_params_equal_the_committed_table():
    full, smoke = theory.simulation_params(2.01, 2, 0.99, 1.0, repeats=50, n_val=10_000, n_test=10_000, seed=2024)
    committed = json.loads((paths.repo_root() / "results" / "theory_simulation.json").read_text())["params"]
    assert full == committed
    assert smoke["repeats"] == 6 and smoke["n"] == [100, 464, 2154, 10000] and smoke["p"] == 2.01


def test_constant_values_are_the_model_properties():
    v = theory.constant_values(MODEL)
    assert v["kappa"] == MODEL.kappa and v["alpha"] == pytest.approx(MODEL.alpha)
    assert v["rp"] == pytest.approx(2.01 * 0.99) and v["phase"] == MODEL.phase
    assert v["alpha_if_saturated"] == pytest.approx(2 * MODEL.kappa / (1 + 2 * MODEL.kappa))
    table = theory.constants_table(MODEL)
    assert table.loc[table["quantity"] == "phase", "value"].iloc[0] == MODEL.phase
    readings = theory.reading_table(MODEL)
    assert readings["theorem hypotheses hold"].tolist() == [False, True]  # rp ~ 2; r p / q ~ 0.995


def _fake_sim():
    """Two (n, m) points, three repeats each, with known means."""
    rows = []
    for n, m in ((100, 2), (1000, 3)):
        for rep, bump in enumerate((-0.01, 0.0, 0.01)):
            de = float(theory.de_optimal(np.array([n]), np.array([m]), MODEL, grid="paper")["excess"][0])
            rows.append({"n": n, "m": m, "L": MODEL.kept_coefficients(m), "repeat": rep,
                         "excess": de * 1.1 + bump, "excess_sampled": de * 1.1 + bump + 0.001,
                         "oracle_excess": de + bump, "c_index": [0, 5, 19][rep], "at_edge": rep != 1})
    return pd.DataFrame(rows)


def test_simulation_summary_and_agreement():
    sim = _fake_sim()
    summ = theory.simulation_summary(sim, MODEL)
    assert summ["count"].tolist() == [3, 3]
    assert summ["rel_gap"].to_numpy() == pytest.approx([0.1, 0.1])
    assert summ["se"].to_numpy() == pytest.approx([0.01 / np.sqrt(3)] * 2)
    assert summ["z"].to_numpy() == pytest.approx(summ["de"].to_numpy() * 0.1 / summ["se"].to_numpy())
    assert summ["z_oracle"].to_numpy() == pytest.approx([0, 0], abs=1e-9)
    v = theory.simulation_values(sim, summ, MODEL)
    assert v["sim_repeats"] == 3 and v["sim_points"] == 2 and v["test_noise_sd"] == pytest.approx(0)
    grid = theory.de_grid(MODEL, n=[100, 1000], m=[2, 3])
    table, values, text = theory.agreement_report(sim, summ, MODEL, grid, c_num=20)
    assert values["at_lower_edge_frac"] == pytest.approx(1 / 3) and values["at_upper_edge_frac"] == pytest.approx(1 / 3)
    assert values["at_edge_frac"] == pytest.approx(2 / 3) and values["gap_small_n_value"] == 100
    assert values["grid_vs_continuous_max"] >= 0  # the paper's grid can only do worse than the continuum
    assert "relative gap" in table.columns and text.startswith(f"{values['frac_within_3se']:.0%} of the points")


def test_validity_map_and_local_slopes():
    vm = theory.validity_map(MODEL, n=[10.0, 1e4], m=[3, 6])
    err = theory.de_optimal(np.array([1e4]), np.array([6]), MODEL)["excess"][0]
    L = MODEL.kept_coefficients(6)
    assert vm["ratio"][1, 1] == pytest.approx(err / (1e4 ** -MODEL.alpha + L ** -MODEL.beta))
    mid, slope = theory.local_slopes(MODEL, np.logspace(6, 10, 5))
    assert mid[0] == pytest.approx(np.sqrt(1e6 * 1e7))
    assert slope[-1] == pytest.approx(MODEL.alpha, abs=0.01)  # converges to the derived exponent
    table, v = theory.two_d_example()
    assert v["ex_q4_alpha"] == pytest.approx(theory.ModelParams(p=4.02, q=4, r=0.99).alpha)
    assert list(table["quantity"]) == ["kappa", "alpha", "beta", "nu"]
