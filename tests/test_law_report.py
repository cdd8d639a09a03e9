"""What notebook 03 reports: paper comparisons, synthetic studies, size curves, our grid per model."""

import json

import numpy as np
import pandas as pd
import pytest

from storage_scaling import law, law_report as report, paths


def _committed_params(name):
    return json.loads((paths.repo_root() / "results" / f"{name}.json").read_text())["params"]


def test_recorded_params_equal_the_committed_tables():
    """The publish profile loads a committed table only when these are identical."""
    assert report.synthetic_bootstrap_params(0.01, 2, 0, 1000) == _committed_params("law_synthetic_bootstrap")
    assert report.coverage_params(0.01, 2, 0, "full") == _committed_params("law_bootstrap_coverage")
    with pytest.raises(ValueError, match="size"):
        report.coverage_params(0.01, 2, 0, "huge")


def test_paper_values_are_the_closed_forms():
    values = report.paper_exponent_values()
    food = law.paper_law("food101")
    assert values["food_alpha"] == food.alpha and values["food_nexp"] == food.n_exponent
    assert values["isaid_segm_Lexp"] == law.paper_law("isaid_segm").L_exponent
    table, v = report.paper_comparison()
    assert len(table) == len(law.PAPER_ALLOCATION_TABLE)
    assert v["food_nstar_48"] == pytest.approx(food.n_star(48.48e6))
    assert v["alloc_max_dn"] == pytest.approx(float((table["n* ours"] - table["n* paper"]).abs().max()))
    assert v["city_orig_n_36"] == pytest.approx(36.36e6 / law.PAPER_ORIGINAL_BYTES["cityscapes"])
    assert set(report.fixed_distance_sizes()["cityscapes"]) == {4, 10}


def test_synthetic_runs_and_fits_recover_the_constants():
    runs = report.synthetic_runs(0.0, 1, 0)  # no noise: the fits must find the truth
    assert len(runs["food101"]) == 36 and len(runs["cityscapes"]) == 30
    fits = report.synthetic_fits(runs)
    table, values = report.synthetic_fit_report(runs, fits)
    assert values["syn_runs_food"] == 36.0
    assert fits["Cityscapes, robust fit (with E)"].params.alpha == pytest.approx(law.paper_law("cityscapes").alpha, rel=1e-3)
    assert table.loc[0, "alpha"].endswith(f"({law.paper_law('food101').alpha:.4f})")


def test_bootstrap_report_reads_the_committed_table():
    bt = pd.read_csv(paths.repo_root() / "results" / "law_synthetic_bootstrap.csv")
    table, values = report.synthetic_bootstrap_report(bt)
    row = bt[(bt["case"] == report.FOOD_ROBUST) & (bt["quantity"] == "alpha") & (bt["kind"] == "interval")].iloc[0]
    assert values["syn_alpha_lo"] == row["lo"] and values["syn_alpha_hi"] == row["hi"]
    assert values["syn_nboot"] == 1000
    assert values["syn_cover_total"] == len(table) == 8 + 8 + 9  # two Food-101 cases, one Cityscapes
    assert values["syn_cover_count"] == (table["covers truth"] == "yes").sum()
    with pytest.raises(ValueError, match="no interval"):
        report.synthetic_bootstrap_report(bt[bt["quantity"] != "alpha"])


def test_coverage_report_flags_narrow_intervals():
    rows = []
    for method, covered in (("paper, no E", 0.5), ("robust, with E", 1.0)):
        for d in range(20):
            for q in report.COVERAGE_QUANTITIES:
                rows.append({"dataset": d, "quantity": q, "covered": d < 20 * covered, "method": method})
    table, values = report.coverage_report(pd.DataFrame(rows))
    assert values["cov_paper_alpha"] == 0.5 and values["cov_robust_nstar"] == 1.0
    assert values["cov_ndatasets"] == 20.0
    assert "paper's linear-space fit (no E) covers the truth in 50.0% to 50.0%" in values["cov_verdict"]
    assert "too narrow and should be read as optimistic" in values["cov_verdict"]
    assert "consistent with honest 95% intervals" in values["cov_verdict"]
    assert list(table["method"]) == ["paper, no E", "robust, with E"]
    _, toy = report.coverage_report(pd.DataFrame(rows), toy=True)
    assert toy["cov_verdict"].startswith("(Smoke-size")


def test_size_curves_one_per_image_set_and_named_problems():
    d = np.array([1.0, 2.0, 4.0, 8.0])
    sizes = pd.concat([pd.DataFrame({"dataset": "food101-64px", "scheme": "jxl", "distance": d,
                                     "mean_bytes": 1 / (2e-4 * d + 5e-4)}),
                       pd.DataFrame({"dataset": "food101-originals", "scheme": "jxl", "distance": d,
                                     "mean_bytes": 1 / (2e-5 * d + 2e-5)})])
    ours = report.our_size_curves(sizes, ["food101-64px", "food101-originals", "cifar10-jpg"])
    assert set(ours.curves) == {"food101-64px", "food101-originals"}
    assert ours.curves["food101-64px"].a == pytest.approx(2e-4, rel=1e-6)
    assert ours.problems and ours.problems[0].startswith("cifar10-jpg")
    assert "never averaged" in ours.note and "Not drawn: cifar10-jpg" in ours.note
    assert "not available yet" in report.our_size_curves(None, ["food101-64px"]).note


def test_calculator_table_prints_intervals():
    calc = pd.DataFrame({"budget_MB": [48.48], "n": [6838.2], "L_bytes": [7090.4], "error": [0.4641],
                         "n_lo": [5900.0], "n_hi": [7702.0], "note": [""]})
    shown = report.calculator_table(calc)
    assert shown.loc[0, "n"] == "6,838 [5,900, 7,702]"
    assert shown.loc[0, "L (bytes)"] == "7,090" and shown.loc[0, "predicted error"] == "0.464"


def _grid(model_col="model"):
    parts = []
    truths = {"airnet": law.LawParams(A=3.0, alpha=0.45, B=40.0, beta=0.9, E=0.05),
              "probe": law.LawParams(A=1.5, alpha=0.15, B=5.0, beta=0.6, E=0.1)}
    sizes = {1: 1500.0, 2: 1000.0, 4: 600.0, 8: 350.0}
    for model, p in truths.items():
        g = law.synthetic_grid(p, [1000, 2000, 5000, 10000, 20000], list(sizes.values()), seeds=1)
        g["distance"] = g["L"].map({v: k for k, v in sizes.items()})
        g = g.rename(columns={"L": "mean_bytes"}).assign(dataset="cifar10-jpg")
        if model_col:
            g[model_col] = model
        parts.append(g)
    return pd.concat(parts, ignore_index=True), truths


def test_grid_groups_split_by_dataset_and_model():
    raw, _ = _grid()
    raw.loc[0, "error"] = np.nan
    groups = report.grid_groups(raw)
    assert sorted(groups.frames) == [("cifar10-jpg", "airnet"), ("cifar10-jpg", "probe")]
    assert groups.model_column == "model" and groups.problems == ["1 rows without a result were left out"]
    assert all(part["model"].nunique() == 1 for part in groups.frames.values())
    legacy = report.grid_groups(_grid("network")[0])
    assert legacy.model_column == "network" and len(legacy.frames) == 2
    single = report.grid_groups(_grid(None)[0].iloc[:20])
    assert list(single.frames) == [("cifar10-jpg", report.ONE_MODEL)]
    tiny = report.grid_groups(raw[raw["n"] == 1000])
    assert not tiny.frames and "degenerate grid" in tiny.status
    with pytest.raises(ValueError, match="DataFrame"):
        report.grid_groups([1, 2])


def test_read_grid_takes_one_table_per_model(tmp_path):
    raw, _ = _grid()
    for model, part in raw.groupby("model"):
        part.to_csv(tmp_path / f"training_grid_{model}.csv", index=False)
    groups = report.read_grid(tmp_path / "training_grid_*.csv")
    assert sorted(groups.frames) == [("cifar10-jpg", "airnet"), ("cifar10-jpg", "probe")]
    assert groups.rows == len(raw)
    assert report.read_grid(tmp_path / "training_none_*.csv") is None


def test_read_grid_leaves_out_an_unfinished_setting_and_keeps_the_others_digest(tmp_path):
    raw, _ = _grid()
    for model, part in raw.groupby("model"):
        part.to_csv(tmp_path / f"training_grid_{model}.csv", index=False)
    pattern = tmp_path / "training_grid_*.csv"
    n_airnet = int((raw["model"] == "airnet").sum())
    progress = {("cifar10-jpg", "airnet"): (n_airnet - 1, n_airnet), ("cifar10-jpg", "probe"): (5, 5)}
    partial = report.read_grid(pattern, progress)
    assert list(partial.frames) == [("cifar10-jpg", "probe")]
    assert partial.problems[0] == f"cifar10-jpg, airnet: {n_airnet - 1:,} of {n_airnet:,} grid runs so far, " \
                                  "fitted when the grid is complete"
    # more airnet rows landing does not change what was fitted, so the committed fits stay valid
    pd.concat([raw[raw["model"] == "airnet"]] * 2).to_csv(tmp_path / "training_grid_airnet.csv", index=False)
    assert report.read_grid(pattern, progress).digest == partial.digest
    assert report.read_grid(pattern).digest != partial.digest  # without progress every row counts
    # rows written before the `model` column name the model in `network`: found the same way
    raw.rename(columns={"model": "network"}).to_csv(tmp_path / "training_grid_airnet.csv", index=False)
    (tmp_path / "training_grid_probe.csv").unlink()
    legacy = report.read_grid(pattern, progress)
    assert list(legacy.frames) == [("cifar10-jpg", "probe")] and legacy.model_column == "network"


def test_grid_report_never_pools_models(tmp_path):
    raw, truths = _grid()
    path = tmp_path / "grid.csv"
    raw.to_csv(path, index=False)
    groups = report.read_grid(path)
    assert len(groups.digest) == 16 and report.read_grid(tmp_path / "missing.csv") is None
    params = report.grid_bootstrap_params(groups.digest, 0, 8)
    boot = report.grid_bootstrap_table(params, groups)
    assert set(zip(boot["dataset"], boot["model"])) == set(groups.frames)
    assert set(boot["fit"]) == {"robust, with floor", "paper, no floor"}  # both fits have intervals
    rep = report.grid_report(groups, boot)
    for key, fit in rep.fits.items():  # each model's own exponent, not a pooled one
        assert fit.params.alpha == pytest.approx(truths[key[1]].alpha, abs=0.02)
    assert list(rep.table["model"]) == ["airnet", "probe"]
    assert "cifar10-jpg, airnet (20 runs)" in rep.summary and "cifar10-jpg, probe (20 runs)" in rep.summary
    assert set(rep.calculator["size curve"]) == {"cifar10-jpg grid: mean bytes per distance"}
    level, cells = report.grid_cells(groups.frames[("cifar10-jpg", "airnet")])
    assert level == "distance" and len(cells) == 20
    held = rep.held_out[("cifar10-jpg", "probe")]  # fitted on n <= 60 % of the largest n only
    assert held.frame["n"].min() > 0.6 * raw["n"].max() and held.fit.n_points < len(cells)
    assert "[n/a]" not in rep.table["alpha (paper's form)"].iloc[0]


def test_a_groups_bootstrap_does_not_change_when_another_models_grid_is_added(tmp_path):
    raw, _ = _grid()
    raw.to_csv(tmp_path / "both.csv", index=False)
    raw[raw["model"] == "probe"].to_csv(tmp_path / "probe.csv", index=False)
    both, alone = report.read_grid(tmp_path / "both.csv"), report.read_grid(tmp_path / "probe.csv")
    assert list(both.frames) == [("cifar10-jpg", "airnet"), ("cifar10-jpg", "probe")]  # airnet sorts first
    params = report.grid_bootstrap_params("", 0, 6)
    probe_rows = report.grid_bootstrap_table(params, both).query("model == 'probe'").reset_index(drop=True)
    pd.testing.assert_frame_equal(probe_rows, report.grid_bootstrap_table(params, alone))
    assert report.group_seed(0, 0, "cifar10-jpg", "probe") != report.group_seed(0, 1, "cifar10-jpg", "probe")


def test_imports_only_numpy_scipy_pandas():
    import subprocess
    import sys

    code = ("import sys, storage_scaling.law_report, storage_scaling.theory; "
            "bad = sorted(m for m in ('torch', 'imagecodecs', 'matplotlib', 'seaborn') if m in sys.modules); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_original_accounting_rescales_only_the_original_cells():
    truth = law.LawParams(A=2.0, alpha=0.3, B=20.0, beta=1.0, E=0.05)
    ns, Ls = [1000, 2000, 5000, 10000, 20000], [900.0, 400.0, 250.0, 150.0]
    g = law.synthetic_grid(truth, ns, Ls, seeds=1).rename(columns={"L": "mean_bytes"})
    g["codec"] = np.where(g["mean_bytes"] == 900.0, "original", "jxl")
    g["distance"] = g["mean_bytes"].map({900.0: np.nan, 400.0: 1.0, 250.0: 2.0, 150.0: 4.0})
    groups = report.grid_groups(g.assign(dataset="cifar10-jpg", model="probe"))
    sizes = pd.DataFrame({"dataset": "cifar10-jpg", "split": "train",
                          "scheme": ["stored-jpeg", "jxl-transcode", "jpeg-headerless"],
                          "mean_bytes": [900.0, 450.0, 300.0]})
    out = report.original_accounting(groups, sizes).set_index("original format counted as")
    assert len(out) == 4
    stored = out.iloc[0]
    assert stored["alpha"] == pytest.approx(0.3, abs=1e-3) and stored["beta"] == pytest.approx(1.0, abs=1e-3)
    assert out.iloc[1]["original L (B)"] == pytest.approx(450.0) and out.iloc[2]["original L (B)"] == pytest.approx(300.0)
    assert out.iloc[1]["beta"] != pytest.approx(1.0, abs=1e-3)  # a wrong L for the original cells moves the fit
    assert out.iloc[3]["beta"] == pytest.approx(1.0, abs=1e-3)  # without them the law is exact again
    assert report.original_accounting(groups, None).empty
    text = report.accounting_sentence(out.reset_index())
    assert text.startswith("cifar10-jpg, probe: across the four accountings alpha runs from 0.")


def test_cells_keep_the_original_format_and_both_averagings_are_fitted():
    raw, truths = _grid()
    part = raw[raw["model"] == "probe"].rename(columns={"mean_bytes": "L"}).copy()
    part.loc[part["distance"] == 1, "distance"] = np.nan  # the largest L plays the original format
    part["codec"] = np.where(part["distance"].isna(), "original", "jxl")
    level, cells = report.grid_cells(part)
    assert len(cells) == 20 and cells["distance"].isna().sum() == 5  # original-format cells are cells too
    groups = report.grid_groups(part.rename(columns={"L": "mean_bytes"}))
    table = report.cell_averaging(groups)
    row = table.iloc[0]
    assert (row["runs"], row["cells_nd"]) == (20, 20)
    assert row["beta_nd"] == pytest.approx(row["beta_nL"], rel=1e-6)  # one run per cell: the same fit
    assert row["beta_nd"] == pytest.approx(truths["probe"].beta, abs=0.3)
    text = report.cell_averaging_sentence(table)
    assert text.startswith("cifar10-jpg, probe: 20 runs in 20 distinct (n, L) cells (20 (n, format) cells)")


def test_a_parameter_on_its_bound_in_most_resamples_is_said_not_identified():
    rows = []
    for ds, e_bound in (("food101-64px", 1.0), ("cifar10-jpg", 0.1)):
        rows += [{"kind": "bound_fraction", "quantity": q, "value": e_bound if q == "E" else 0.0, "dataset": ds,
                  "model": "probe", "fit": "robust, with floor"} for q in ("E", "alpha")]
        rows.append({"kind": "meta", "quantity": "n_resamples", "value": 1000.0, "dataset": ds, "model": "probe",
                     "fit": "robust, with floor"})
    text = report.identification_sentence(pd.DataFrame(rows))
    assert text.startswith("food101-64px, probe (robust, with floor) is not identified: E in 100% of 1,000")
    assert "Identified (no parameter on a bound in most resamples): cifar10-jpg, probe (robust, with floor)." in text
    assert report.identification_sentence(pd.DataFrame(rows[3:])).startswith("No fit has a parameter")


def test_the_second_metric_is_the_papers_weighted_f1_when_recorded():
    raw, _ = _grid()
    part = raw[raw["model"] == "probe"].rename(columns={"mean_bytes": "L"})
    part = part.assign(f1_weighted=1 - 0.95 * part["error"], f1_macro=1 - 0.9 * part["error"])
    row = report._second_metric_row("cifar10-jpg", "probe", part)
    assert row["metric"] == "1 - weighted F1" and "(1 - weighted F1)" in row["paper Food-101 alpha, beta"]
    assert report._second_metric_row("cifar10-jpg", "probe", part.drop(columns="f1_weighted"))["metric"] == \
        "1 - macro F1"


def test_exponents_across_models_hold_each_fit_its_interval_and_the_papers(tmp_path):
    raw, truths = _grid()
    path = tmp_path / "grid.csv"
    raw.to_csv(path, index=False)
    groups = report.read_grid(path)
    boot = report.grid_bootstrap_table(report.grid_bootstrap_params(groups.digest, 0, 8), groups)
    rep = report.grid_report(groups, boot)
    table = report.exponents_across_models(rep.fits, boot)
    ours = table[table["source"] == "ours"].set_index(["model", "exponent"])
    for model, truth in truths.items():
        assert ours.loc[(model, "alpha"), "estimate"] == pytest.approx(rep.fits[("cifar10-jpg", model)].params.alpha)
        assert ours.loc[(model, "nu"), "lo"] <= ours.loc[(model, "nu"), "estimate"] <= ours.loc[(model, "nu"), "hi"]
    paper = table[(table["source"] == "paper") & (table["dataset"] == "food101")].set_index("exponent")["estimate"]
    assert paper["alpha"] == pytest.approx(0.3333, abs=1e-4) and paper["beta"] == pytest.approx(1.0613, abs=1e-4)
    assert len(table) == 3 * (len(truths) + 3)
    text = report.exponents_sentence(table)
    assert text.startswith("alpha runs from") and "against the paper's Food-101 0.333" in text
    # a fit with a parameter on its bound leaves the ranges and is named
    unidentified = table.assign(identified=table["model"].ne("probe") | table["source"].eq("paper"))
    assert "Not identified, so not in these ranges: cifar10-jpg, probe." in report.exponents_sentence(unidentified)
    assert report.exponents_sentence(table[table["source"] == "paper"]).startswith("pending")
    food = table.assign(dataset=table["dataset"].replace("cifar10-jpg", "food101-64px"))
    text = report.exponents_sentence(food)
    assert "On Food-101, the paper's dataset (alpha 0.333, beta 1.061, nu 0.254 there): airnet: alpha " in text
    assert text.endswith("(identified).") and "On Food-101" not in report.exponents_sentence(table)
