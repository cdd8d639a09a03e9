"""The summaries the training chapters show: models are never averaged together, formats are
labelled, differences have the right sign."""

import numpy as np
import pandas as pd
import pytest

from storage_scaling.experiments import checks, report


def grid_rows():
    rows = []
    for model, shift in (("airnet", 0.0), ("probe", 0.2)):
        for n in (100, 400):
            for codec, d, L in (("original", np.nan, 900.0), ("jxl", 1.0, 400.0), ("jxl", 15.0, 120.0)):
                for seed, noise in ((0, -0.01), (1, 0.01)):
                    err = shift + 0.5 * (100 / n) ** 0.5 + 0.05 * (400 / L) ** 0.5 + noise
                    rows.append(dict(dataset="cifar10-jpg", model=model, n=n, codec=codec, distance=d, mean_bytes=L,
                                     error=err, f1_macro=1 - err, seed=seed, steps=10, epochs=1.0,
                                     protocol="fixed_steps", batch_size=32))
    return pd.DataFrame(rows)


def test_grid_summary_keeps_models_apart_and_labels_formats():
    s = report.grid_summary(grid_rows())
    assert len(s) == 2 * 2 * 3  # models x n x formats
    assert set(s["format"]) == {"original", "d=1", "d=15"}
    assert (s["seeds"] == 2).all()
    probe = s[(s["model"] == "probe") & (s["n"] == 100) & (s["format"] == "d=1")]
    airnet = s[(s["model"] == "airnet") & (s["n"] == 100) & (s["format"] == "d=1")]
    assert float(probe["error"].iloc[0] - airnet["error"].iloc[0]) == pytest.approx(0.2)
    assert float(airnet["error_max"].iloc[0] - airnet["error_min"].iloc[0]) == pytest.approx(0.02)
    assert (s["below"] >= 0).all() and (s["above"] >= 0).all()
    same = grid_rows().assign(error=0.1 + 1e-17 * grid_rows()["seed"])  # seeds equal up to rounding
    assert (report.grid_summary(same)["below"] >= 0).all()


def test_grid_summary_of_a_model_without_steps():
    probe = grid_rows()[lambda f: f["model"] == "probe"].drop(columns=["steps", "epochs", "protocol", "batch_size"])
    s = report.grid_summary(probe)
    assert len(s) == 2 * 3 and "steps" not in s.columns


def test_grid_error_table_is_one_row_per_n_with_a_column_per_format():
    table = report.grid_error_table(report.grid_summary(grid_rows()))
    assert len(table) == 2 * 2  # models x n, not models x n x formats
    assert list(table.columns) == ["dataset", "model", "n", "seeds", "original", "d=1", "d=15"]  # original first
    summary = report.grid_summary(grid_rows())
    cell = summary[(summary["model"] == "probe") & (summary["n"] == 400) & (summary["format"] == "d=15")]
    row = table[(table["model"] == "probe") & (table["n"] == 400)].iloc[0]
    assert row["d=15"] == pytest.approx(cell["error"].iloc[0]) and row["seeds"] == 2


def test_mean_range_shows_the_seed_range_only_when_it_is_one():
    cells = report.mean_range([63.14, 49.6, np.nan, 4.1], [62.8, 49.6, np.nan, 4.12], [63.5, 49.6, np.nan, 4.08])
    assert cells == ["63.1 [62.8, 63.5]", "49.6", "–", "4.1"]  # seeds that agree at the shown precision: the mean
    assert report.mean_range([4.12], [3.75], [4.34], "+.1f") == ["+4.1 [+3.8, +4.3]"]


def test_not_run_models_are_the_gpu_tier_without_rows():
    probe_only = grid_rows()[lambda f: f["model"] == "probe"]
    assert report.not_run_models("grid", probe_only) == ["airnet", "resnet18_64"]  # the CPU models never count
    assert report.not_run_models("grid", grid_rows()) == ["resnet18_64"]
    assert report.not_run_models("blog", pd.DataFrame()) == ["airnet", "resnet18_64"]


def test_corners_are_the_jpeg_xl_extremes():
    s = report.grid_summary(grid_rows())
    c = report.corners(s, "cifar10-jpg", "airnet")
    assert list(c["n"]) == [100, 100, 400, 400] and list(c["d"]) == [1.0, 15.0, 1.0, 15.0]
    assert c["error"].iloc[2] < c["error"].iloc[0] < c["error"].iloc[1]  # more data helps; compression hurts
    assert report.corners(s, "food101-64px")["error"].isna().all()


def test_old_rows_without_a_model_column_use_the_network():
    old = grid_rows().drop(columns="model").assign(network="airnet")
    assert set(report.with_model(old)["model"]) == {"airnet"}


def test_scheme_summary_and_differences():
    def rows(errors, **extra):
        return pd.DataFrame([dict(dataset="cifar10-jpg", model="airnet", budget=b, n=10, mean_bytes=1.0,
                                  budget_fill=0.99, error=e, seed=0, **extra) for b, e in errors])
    frames = {"budget": rows([(1e6, 0.40), (2e6, 0.30)]), "original": rows([(1e6, 0.50), (2e6, 0.35)]),
              "randomized": rows([(1e6, 0.38), (2e6, 0.31)]), "naive": rows([(1e6, 0.45)], distance=8.0)}
    per = report.scheme_summary(frames)
    assert set(per["scheme"]) == {"storage-optimal", "original format", "randomized", "naive d=8"}
    diff = report.scheme_differences(frames).set_index("budget")
    assert diff.loc[1e6, "randomized - optimal (points)"] == pytest.approx(-2.0)
    assert diff.loc[2e6, "optimal - original (points)"] == pytest.approx(-5.0)
    assert np.isnan(diff.loc[1e6, "optimal - original (points) lo"])  # one seed: no interval
    with pytest.raises(ValueError, match="not a budget-type experiment"):
        report.scheme_summary({"grid": frames["budget"]})
    # a randomized run that randomized nothing (the law kept the originals) is not shown as a scheme
    kept = dict(frames, randomized=frames["randomized"].assign(allocation_rule="keep_originals"))
    assert "randomized" not in set(report.scheme_summary(kept)["scheme"])


def test_scheme_differences_pair_seeds_with_a_t_interval():
    from scipy import stats

    def rows(errors):
        return pd.DataFrame([dict(dataset="cifar10-jpg", model="probe", budget=1e6, n=10, mean_bytes=1.0,
                                  budget_fill=1.0, error=e, seed=s) for s, e in enumerate(errors)])
    opt, orig = [0.40, 0.42, 0.47], [0.45, 0.46, 0.50]  # seed-paired gains of 5, 4 and 3 points
    d = report.scheme_differences({"budget": rows(opt), "original": rows(orig)}).iloc[0]
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd of (-5, -4, -3) is 1 point
    assert d["optimal - original (points)"] == pytest.approx(-4.0)
    assert d["optimal - original (points) lo"] == pytest.approx(-4.0 - half)
    assert d["optimal - original (points) hi"] == pytest.approx(-4.0 + half)
    assert d["optimal - original (points) seeds"] == 3
    text = report.differences_sentence(report.scheme_differences({"budget": rows(opt), "original": rows(orig)}))
    assert "storage-optimal minus original format is -4.0 to -4.0 points over 1 budget(s)" in text
    assert "entirely below zero at 1 of them and entirely above zero at 0" in text  # [-6.5, -1.5] excludes zero
    worse = report.differences_sentence(report.scheme_differences({"budget": rows(orig), "original": rows(opt)}))
    assert "entirely below zero at 0 of them and entirely above zero at 1" in worse  # a sure loss is said too


def test_mean_differences_are_averaged_per_setting_never_across_them():
    def rows(ds, budget, errors):
        return pd.DataFrame([dict(dataset=ds, model="probe", budget=budget, n=10, mean_bytes=1.0, budget_fill=1.0,
                                  error=e, seed=s) for s, e in enumerate(errors)])
    budget = pd.concat([rows("cifar10-jpg", 1e6, [0.40, 0.40]), rows("cifar10-jpg", 2e6, [0.30, 0.30]),
                        rows("food101-64px", 1e6, [0.80, 0.80])])
    original = pd.concat([rows("cifar10-jpg", 1e6, [0.44, 0.44]), rows("cifar10-jpg", 2e6, [0.32, 0.32]),
                          rows("food101-64px", 1e6, [0.70, 0.70])])
    text = report.mean_differences_sentence(report.scheme_differences({"budget": budget, "original": original}))
    assert text == ("cifar10-jpg, probe: optimal - original -3.00 points; "
                    "food101-64px, probe: optimal - original +10.00 points.")
    assert report.mean_differences_sentence(pd.DataFrame(columns=["dataset", "model"])).startswith("pending")


def test_run_hours_sum_each_experiment_per_setting():
    grid = pd.DataFrame({"dataset": ["cifar10-jpg"] * 3 + ["food101-64px"], "model": "probe",
                         "train_seconds": [1800.0, 1800.0, 3600.0, 360.0], "device": "cpu"})
    blog = pd.DataFrame({"dataset": ["cifar10-jpg"], "model": ["cnn_cpu"], "train_seconds": [np.nan],
                         "device": ["cpu"]})
    hours = report.run_hours({"grid": grid, "blog": blog, "cross": grid.iloc[:0]})
    by = hours.set_index(["dataset", "model", "experiment"])
    assert by.loc[("cifar10-jpg", "probe", "grid"), "hours"] == pytest.approx(2.0)
    assert by.loc[("cifar10-jpg", "probe", "grid"), "runs"] == 3
    assert np.isnan(by.loc[("cifar10-jpg", "cnn_cpu", "blog"), "hours"])  # unmeasured is not free
    assert ("cifar10-jpg", "probe", "cross") not in by.index  # an empty table adds no row
    # a cross-grid model scored at two test formats is one training: its seconds count once
    cross = pd.DataFrame({"dataset": "cifar10-jpg", "model": "probe", "train_seconds": [3600.0, 3600.0, 1800.0],
                          "device": "cpu", "params_json": [
                              '{"distance":1,"test_codec":"original","test_distance":null}',
                              '{"distance":1,"test_codec":"jxl","test_distance":4}',
                              '{"distance":2,"test_codec":"jxl","test_distance":4}']})
    once = report.run_hours({"cross": cross}).iloc[0]
    assert (once["runs"], once["trainings"]) == (3, 2) and once["hours"] == pytest.approx(1.5)
    # a kept grid model scored again trains nothing: the grid already counted its hours
    reused = report.run_hours({"cross": cross.assign(model_from=["abc", "abc", np.nan])}).iloc[0]
    assert (reused["runs"], reused["trainings"]) == (3, 1) and reused["hours"] == pytest.approx(0.5)
    assert report.kept_models_sentence(cross.assign(model_from=["abc", "abc", ""])) == (
        "cifar10-jpg, probe: 1 of 2 models scored from the grid's whole-pool runs (evaluation only), "
        "1 trained for this grid.")
    assert "0 of 2 models" in report.kept_models_sentence(cross)  # a table from before models were kept
    text = report.run_hours_sentence(hours)
    assert "cifar10-jpg, probe: 2.0 hours over 3 runs (fits and features, on cpu)" in text
    assert "cifar10-jpg, cnn_cpu: time not recorded over 1 run (training, on cpu)" in text
    assert "food101-64px, probe: 0.1 hours" in text


def test_best_schemes_and_capped_allocations_in_words():
    per = pd.DataFrame({"dataset": "food101-64px", "model": "probe",
                        "scheme": ["storage-optimal", "naive d=3", "storage-optimal", "naive d=3"],
                        "budget": [1e6, 1e6, 2e6, 2e6], "error": [0.90, 0.88, 0.85, 0.86]})
    assert report.best_schemes_sentence(per) == ("food101-64px, probe: naive d=3 at 1 of 2 budgets, "
                                                 "storage-optimal at 1 of 2 budgets (storage-optimal 0.0 to 2.0 "
                                                 "points above the lowest).")
    lone = per[per["scheme"] == "storage-optimal"].assign(model="pretrained")
    assert report.best_schemes_sentence(lone) == ("food101-64px, pretrained: only storage-optimal has run, so its "
                                                  "comparison is pending.")
    rows = pd.DataFrame({"dataset": "food101-64px", "model": "probe", "allocation_capped": [True, False, "True"],
                         "n_star": [927.0, 50.0, 1792.0], "n": [1291, 50, 2582]})
    assert report.capped_allocations_sentence(rows) == ("food101-64px, probe: 2 of 3 runs capped (n*(s) from 927 to "
                                                        "1,792; kept n from 1,291 to 2,582).")
    assert report.capped_allocations_sentence(rows.drop(columns="allocation_capped")).startswith("no law")
    kept = rows.assign(allocation_rule=["keep_originals", np.nan, np.nan])
    assert report.capped_allocations_sentence(kept) == (
        "food101-64px, probe: 1 of 3 runs capped (n*(s) from 1,792 to 1,792; kept n from 2,582 to 2,582), "
        "1 keeping the originals (n*(s) from 927 to 927, so L* above the original files' bytes; the "
        "original-format scheme's 1,291 to 1,291 images).")


def test_kept_originals_and_degenerate_randomized_runs_are_not_counted_as_results():
    def rows(errors, **extra):
        return pd.DataFrame([dict(dataset="food101-64px", model="probe", budget=b, n=10, mean_bytes=1.0,
                                  budget_fill=0.96, error=e, seed=s, **extra) for s, (b, e) in enumerate(errors)])
    budget = pd.concat([rows([(1e6, 0.90), (1e6, 0.91)], allocation_rule="keep_originals"),
                        rows([(2e6, 0.80), (2e6, 0.81)])], ignore_index=True)
    original = rows([(1e6, 0.90), (1e6, 0.91), (2e6, 0.84), (2e6, 0.86)])
    original["seed"] = [0, 1, 0, 1]
    randomized = pd.concat([rows([(1e6, 0.90), (1e6, 0.91)], allocation_rule="keep_originals", d_min=0.0, d_max=0.0),
                            rows([(2e6, 0.79), (2e6, 0.80)], d_min=0.5, d_max=0.5)], ignore_index=True)
    assert list(report.degenerate_randomized(randomized)) == [True, True, True, True]
    frames = {"budget": budget, "original": original, "randomized": randomized}
    diff = report.scheme_differences(frames).set_index("budget")
    assert diff.loc[1e6, "optimal keeps originals"] and not diff.loc[2e6, "optimal keeps originals"]
    assert "randomized - optimal (points)" not in diff.columns  # every randomized row is degenerate
    text = report.differences_sentence(diff.reset_index())
    assert "at 1 of 2 budget(s) the law keeps the originals" in text
    assert "storage-optimal minus original format is -4.5 to -4.5 points over 1 budget(s)" in text
    assert report.degenerate_sentence(randomized) == ("food101-64px, probe: 4 of 4 (2 because the law keeps the "
                                                      "originals, 2 with a range collapsed to one distance).")


def test_differences_table_says_kept_originals_and_missing_pairs_in_words():
    diff = pd.DataFrame({"dataset": "food101-64px", "model": "probe", "budget": [1e6, 2e6, 3e6],
                         "optimal keeps originals": [True, False, False],
                         "optimal - original (points)": [0.0, -4.5, np.nan],
                         "optimal - original (points) lo": [0.0, -6.0, np.nan],
                         "optimal - original (points) hi": [0.0, -3.0, np.nan]})
    shown = report.differences_table(diff)["optimal - original (points)"]
    assert list(shown) == ["originals kept", "-4.50 [-6.00, -3.00]", "–"]  # never "+0.00" or "+nan"


def test_scheme_budget_table_has_a_row_per_scheme_and_a_column_per_budget():
    per = pd.DataFrame([dict(dataset="cifar10-jpg", model="probe", scheme=s, budget=b, error=e, error_min=e - 0.01,
                             error_max=e + 0.02, seeds=3, law_error=0.3 if s == "storage-optimal" else 0.9)
                        for s in ("naive d=13", "original format", "naive d=3", "storage-optimal", "randomized")
                        for b, e in ((689970.0, 0.45), (10497394.0, 0.32))])
    per = pd.concat([per, per.assign(model="cnn_cpu", seeds=1)], ignore_index=True)
    table = report.scheme_budget_table(per, "cifar10-jpg", "probe")
    assert list(table.columns) == ["scheme", "0.69 MB", "10.5 MB"]
    assert list(table["scheme"]) == ["storage-optimal", "randomized", "original format", "naive d=3", "naive d=13",
                                     report.LAW_ROW]
    assert table.loc[0, "0.69 MB"] == "0.450 [0.440, 0.470]" and table.loc[5, "10.5 MB"] == "0.300"
    one_seed = report.scheme_budget_table(per[per["scheme"] != "randomized"], "cifar10-jpg", "cnn_cpu", sep="<br>")
    assert one_seed.loc[0, "0.69 MB"] == "0.450"  # one seed: no range to show
    partial = report.scheme_budget_table(per.drop(index=[0]).drop(columns="law_error"), "cifar10-jpg", "probe")
    assert partial.set_index("scheme").loc["naive d=13", "0.69 MB"] == "–" and report.LAW_ROW not in set(
        partial["scheme"])
    with pytest.raises(ValueError, match="no scheme rows"):
        report.scheme_budget_table(per, "food101-64px", "probe")


def test_budget_fit_summary_has_one_row_per_setting_and_scheme():
    budget = pd.DataFrame({"dataset": "cifar10-jpg", "model": "probe", "n": [1813, 23750, 1813],
                           "distance": [1.4071, 0.8655, 1.4664], "budget_fill": [0.99908, 0.99809, 0.99933],
                           "within_tolerance": [True, True, "false"], "encodes": [2, 1, 2]})
    kept = pd.DataFrame({"dataset": "food101-64px", "model": "probe", "n": [1390, 2766], "distance": np.nan,
                         "budget_fill": [0.9993, 0.99997], "within_tolerance": True, "encodes": 0,
                         "allocation_rule": "keep_originals"})
    randomized = pd.DataFrame({"dataset": "cifar10-jpg", "model": "probe", "n": [1813, 23750], "d_min": [0.5, 0.5],
                               "d_max": [2.5824, 1.3204], "budget_fill": [0.9981, 0.9971],
                               "within_tolerance": [True, True], "encodes": [1, 2]})
    out = report.budget_fit_summary(pd.concat([budget, kept], ignore_index=True), randomized)
    assert list(zip(out["dataset"], out["scheme"])) == [("cifar10-jpg", "storage-optimal"),
                                                         ("cifar10-jpg", "randomized"),
                                                         ("food101-64px", "storage-optimal")]
    first, rand, food = (out.iloc[i] for i in range(3))
    assert first["distance found"] == "0.866 to 1.466" and first["images kept"] == "1,813 to 23,750"
    assert first["budget used (%)"] == "99.81 to 99.93" and first["runs within tolerance"] == "2 of 3"
    assert first["real encodes per run"] == "1 to 2"
    assert rand["distance found"] == "lower end 0.5, upper end 1.32 to 2.582"
    assert food["distance found"] == "originals kept in 2 runs" and food["real encodes per run"] == "0"
    assert food["budget used (%)"] == "99.93 to 99.99"  # rounded down: short of the budget is never "100.00"


def test_law_prediction_beside_the_measured_error():
    from storage_scaling import law

    per = pd.DataFrame({"dataset": ["cifar10-jpg", "food101-64px"], "model": ["probe", "probe"],
                        "n": [1000.0, 10.0], "mean_bytes": [200.0, 1.0]})
    p = law.LawParams(A=2.0, alpha=0.5, B=10.0, beta=1.0, E=0.1)
    out = report.with_law_prediction(per, {("cifar10-jpg", "probe"): p})
    assert out["law_error"].iloc[0] == pytest.approx(0.1 + 2.0 / 1000 ** 0.5 + 10.0 / 200)
    assert np.isnan(out["law_error"].iloc[1])


def test_cross_summary_labels_train_and_test_formats():
    cross = pd.DataFrame([dict(dataset="cifar10-jpg", model="airnet", codec=c, distance=d, test_codec=tc,
                               test_distance=td, accuracy=a, mean_bytes=mb, test_mean_bytes=tb)
                          for c, d, mb in (("original", np.nan, 900.0), ("jxl", 15.0, 120.0))
                          for tc, td, tb, a in (("original", np.nan, 900.0, 0.9), ("jxl", 15.0, 120.0, 0.7))])
    heat = report.cross_summary(cross)
    assert set(zip(heat["train"], heat["test"])) == {("original", "original"), ("original", "d=15"),
                                                     ("d=15", "original"), ("d=15", "d=15")}
    assert set(heat["scheme"]) == {"fixed"}  # a table without a randomized model has no range columns


def test_cross_summary_shows_the_randomized_model_as_its_last_row():
    rows = [dict(dataset="cifar10-jpg", model="probe", codec=c, distance=d, range_start=a, range_end=b,
                 test_codec=tc, test_distance=td, accuracy=acc, mean_bytes=mb, test_mean_bytes=tb)
            for c, d, a, b, mb, acc in (("original", np.nan, np.nan, np.nan, 900.0, 0.8),
                                        ("jxl", 15.0, np.nan, np.nan, 120.0, 0.6),
                                        ("jxl-randomized", np.nan, 0.5, 15.0, 1000.0, 0.7))
            for tc, td, tb in (("original", np.nan, 900.0), ("jxl", 15.0, 120.0))]
    heat = report.cross_summary(pd.DataFrame(rows))
    rnd = heat[heat["scheme"] == "randomized"]
    assert set(rnd["train"]) == {"randomized d=0.5-15"} and set(rnd["test"]) == {"original", "d=15"}
    matrix, train_bytes, test_bytes = report.cross_matrix(heat, "cifar10-jpg", "probe")
    # fixed formats by bytes (largest first), the randomized model last even when it is the largest
    assert list(matrix.index) == ["original", "d=15", "randomized d=0.5-15"]
    assert list(matrix.columns) == ["original", "d=15"] and list(test_bytes) == [900.0, 120.0]
    assert matrix.loc["randomized d=0.5-15", "d=15"] == 0.7 and train_bytes["randomized d=0.5-15"] == 1000.0
    with pytest.raises(ValueError, match="no rows for dataset 'food101-64px'"):
        report.cross_matrix(heat, "food101-64px", "probe")


def test_quality_checks_use_the_floor_of_the_dataset_and_model():
    q = pd.DataFrame([
        dict(check="whole_pool", dataset="cifar10-jpg", model="airnet", n=50_000, accuracy=0.91, seed=0,
             train_seconds=3.0, images_per_second=1e5, steps=476, error=0.09),
        dict(check="whole_pool", dataset="cifar10-jpg", model="airnet", n=50_000, accuracy=0.88, seed=1,
             train_seconds=3.0, images_per_second=1e5, steps=476, error=0.12),
        dict(check="doubling", dataset="cifar10-jpg", model="airnet", n=2000, accuracy=0.6, seed=0,
             train_seconds=1.0, images_per_second=1e5, steps=476, error=0.40),
        dict(check="doubling", dataset="cifar10-jpg", model="airnet", n=2000, accuracy=0.6, seed=0,
             train_seconds=1.0, images_per_second=1e5, steps=952, error=0.385),
    ])
    whole = checks.whole_pool(q)
    assert whole["accuracy"].iloc[0] == pytest.approx(0.895) and not whole["meets floor"].iloc[0]  # floor 0.90
    dbl = checks.doubling(q)
    assert dbl["error change (points)"].iloc[0] == pytest.approx(-1.5) and not dbl["within limit"].iloc[0]
    assert dbl["steps"].iloc[0] == "476 -> 952"
    assert checks.doubling(q.assign(steps=q["steps"].astype(float)))["steps"].iloc[0] == "476 -> 952"  # read from CSV
    # the probe's rows have no images/s (no training loop): its whole-pool check still reads, with its floor
    probe = pd.DataFrame([dict(check="whole_pool", dataset="cifar10-jpg", model="probe", n=40_000, accuracy=0.7078,
                               seed=0, train_seconds=200.0, error=0.2922)])
    row = checks.whole_pool(probe).iloc[0]
    assert row["floor"] == 0.70 and row["meets floor"]
    assert checks.whole_pool_sentence(row) == "cifar10-jpg, probe: 70.8% on 40,000 images (floor 70%, met)"
    assert checks.doubling(probe).empty  # no step budget, no doubling rows, no steps column


def test_protocols_describe_networks_and_the_probe():
    net = grid_rows().assign(protocol="fixed_steps", steps=476, batch_size=1024)
    net = net[net["model"] == "airnet"]
    probe = grid_rows()[lambda f: f["model"] == "probe"].drop(columns=["protocol", "steps", "batch_size"]).assign(
        probe_centroids=800, probe_patch=6, probe_stride=1)
    frozen = probe.drop(columns=["probe_centroids", "probe_patch", "probe_stride"]).assign(
        model="pretrained", pretrained_input_size=128)
    text = report.protocols(pd.concat([net, probe, frozen], ignore_index=True)).set_index("model")["protocol"]
    assert text["airnet"] == "fixed steps, 476 steps of 1,024 images"
    assert text["probe"].startswith("k-means features (800 centroids, 6 px patches, stride 1) + ridge")
    assert text["pretrained"].startswith("frozen ImageNet EfficientNet-Lite0 features at 128 px + ridge")


def test_grid_highlights_quote_each_model_apart():
    g = grid_rows()
    h = report.grid_highlights(g).set_index("model").loc["airnet"]
    summary = report.grid_summary(g)
    c = report.corners(summary, "cifar10-jpg", "airnet")["error"].to_numpy()
    part = summary[summary["model"] == "airnet"]
    assert h["lowest error"] == pytest.approx(part["error"].min())
    assert h["compression penalty (points)"] == pytest.approx(100 * (c[3] - c[2]))
    assert h["data gain (points)"] == pytest.approx(100 * (c[0] - c[2])) and h["data gain (points)"] > 0
    assert h["runs"] == len(g[g["model"] == "airnet"])
    row = h.rename(None).to_frame().T
    network = report.highlight_sentence(row.assign(model="airnet").iloc[0])
    assert "lowest error" in network and "hours of training" in network
    assert "hours of fits and features" in report.highlight_sentence(row.assign(model="probe").iloc[0])


def test_flag_reads_booleans_written_to_csv_in_any_spelling():
    column = pd.Series([True, "True", "true", 1, "1.0", False, "False", 0, "0.0", np.nan])
    assert report.flag(column).tolist() == [True] * 5 + [False] * 5


def test_the_blog_verdict_says_whether_the_claim_is_reproduced():
    head = pd.DataFrame({"dataset": ["cifar10-jpg", "food101-64px"], "model": "probe",
                         "gain_points": [-13.5, 12.0], "gain_min": [-14.0, 11.0], "gain_max": [-13.0, 13.0],
                         "best_format": ["d=4", "d=10"], "best_gain_points": [4.1, 12.0]})
    text = report.blog_verdict_sentence(head, 10.0)
    assert text.startswith("The blog's gain of more than 10 points at d = 10 is reproduced for 1 of 2 settings")
    assert "cifar10-jpg, probe -13.5 points (seeds -14.0 to -13.0)" in text and "d=4 (+4.1 points)" in text
    assert "is not reproduced here" in report.blog_verdict_sentence(head.iloc[:1], 10.0)
    assert report.blog_verdict_sentence(head.assign(gain_points=np.nan), 10.0).startswith("pending")


def test_name_once_blanks_repeats_and_optimal_kept_reads_the_flag():
    frame = pd.DataFrame({"dataset": ["a", "a", "b", "a"], "model": ["x", "x", "x", "x"], "v": [1, 2, 3, 4]})
    shown = report.name_once(frame, ["dataset", "model"])
    assert shown["dataset"].tolist() == ["a", "", "b", "a"] and shown["v"].tolist() == [1, 2, 3, 4]
    assert report.naive_distance("naive d=2.5") == 2.5 and np.isnan(report.naive_distance("storage-optimal"))
    diff = pd.DataFrame({"optimal keeps originals": ["True", "false"]})
    assert report.optimal_kept(diff).tolist() == [True, False]
    assert report.optimal_kept(pd.DataFrame({"x": [1]})).tolist() == [False]
