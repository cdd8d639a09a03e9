"""The conclusions chapter's numbers on small hand-made tables whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from storage_scaling.experiments import conclusions as C
from storage_scaling.experiments import report

SEEDS = (0, 1, 2)


def rows(scheme_errors: dict[str, list[float]], budget=1e6, **extra) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "toy", "model": "probe", "budget": budget, "seed": s, "error": e, **extra}
                         for s, e in zip(SEEDS, scheme_errors)])


def frames(budget=1e6):
    """naive d=3 is best by ~2 points with little spread; storage-optimal and originals trail it."""
    naive = pd.concat([rows([0.30, 0.31, 0.29], budget).assign(distance=3.0),
                       rows([0.40, 0.41, 0.39], budget).assign(distance=13.0)])
    return {"budget": rows([0.32, 0.33, 0.31], budget, distance=1.2, n_star=900.0, n=900,
                           allocation_rule="law"),
            "original": rows([0.35, 0.36, 0.34], budget),
            "naive": naive,
            "randomized": rows([0.20, 0.20, 0.20], budget, d_min=1.0, d_max=1.0)}  # collapsed: left out


def test_best_scheme_with_its_paired_gap_and_interval():
    best = C.best_schemes(frames())
    r = best.iloc[0]
    assert r["best"] == "naive d=3" and r["best_error"] == pytest.approx(0.30)
    assert r["runner_up"] == "storage-optimal" and r["runner_up_gap"] == pytest.approx(2.0)
    assert r["runner_up_lo"] == pytest.approx(2.0) and r["sure"]  # identical gaps: a zero-width interval
    assert r["optimal_gap"] == pytest.approx(2.0) and r["seeds"] == 3
    # the collapsed randomized run (0.20, better than all) was left out: it randomized nothing
    assert "randomized" not in set(C.scheme_errors(frames())["scheme"])
    table = C.best_schemes_table(best)
    assert len(table) == 1 and table["next best, behind by (points)"].iloc[0] == "storage-optimal +2.0 [+2.0, +2.0]"
    assert table["lowest error"].iloc[0] == "naive d=3: 0.300"
    text = C.best_schemes_sentence(best)
    assert "naive d=3 lowest at 1 of 1 budgets, surely best at 1" in text


def test_a_lone_scheme_is_pending_not_lowest():
    # a second setting where only the original-format scheme has run: no comparison, named pending
    lone = rows([0.35, 0.36, 0.34]).assign(model="pretrained")
    f = frames()
    f["original"] = pd.concat([f["original"], lone])
    best = C.best_schemes(f)
    assert best["model"].tolist() == ["probe"]
    assert "pretrained" not in C.best_schemes_sentence(best)
    assert C.pending_sentence(f) == "toy, pretrained: only original format has run, so its comparison is pending."
    assert C.pending_sentence(frames()) == ""
    # original and naive but no storage-optimal run: a winner is named, storage-optimal is not judged
    f2 = {"original": lone, "naive": rows([0.30, 0.31, 0.29]).assign(model="pretrained", distance=3.0)}
    text = C.best_schemes_sentence(C.best_schemes(f2))
    assert "naive d=3 lowest at 1 of 1" in text and "storage-optimal has not run yet" in text
    claims = C.claims(report.scheme_differences(f2), C.best_schemes(f2), None)
    law_claim = claims[claims["claim"] == "the law's split is the best way to fill a budget"]
    assert law_claim["verdict"].tolist() == [C.UNTESTED]
    only = C.best_schemes({"original": lone})
    assert only.empty and "best" in only.columns and C.best_schemes_table(only).empty


def test_two_seeds_are_said_to_leave_the_winner_open():
    f = {k: v[v["seed"] < 2] for k, v in frames().items()}
    text = C.best_schemes_sentence(C.best_schemes(f))
    assert "only 2 seeds" in text and "12.7 standard errors" in text


def test_law_choice_beside_the_winner():
    f = frames()
    table = C.law_against_measured(f["budget"], C.best_schemes(f))
    assert table["law_choice"].tolist() == ["d = 1.20"] and table["best"].tolist() == ["naive d=3"]
    assert C.law_against_measured_table(table)["winning distance against the law's range"].tolist() == ["above"]
    kept = f["budget"].assign(allocation_rule="keep_originals")
    table = C.law_against_measured(kept, C.best_schemes(f))
    assert table["law_choice"].tolist() == ["keep the originals"]
    assert C.law_against_measured_table(table)["the law chose"].tolist() == ["keep the originals at 1 of 1"]


def test_savings_at_a_mild_distance_and_header_share():
    sizes = pd.DataFrame({"dataset": "toy", "split": "train",
                          "scheme": ["stored-jpeg", "jpeg-headerless", "jxl", "jxl"],
                          "distance": [np.nan, np.nan, 1.0, 2.0], "mean_bytes": [2000.0, 1500.0, 1600.0, 1200.0]})
    r = C.mild_compression_savings(sizes).iloc[0]
    assert r["saving"] == pytest.approx(0.2) and r["header_share"] == pytest.approx(0.25)


def test_cross_reading_of_a_train_test_grid():
    acc = {("original", "original"): 0.80, ("original", "d=15"): 0.40, ("d=15", "d=15"): 0.60,
           ("d=15", "original"): 0.70, ("d=2", "original"): 0.79, ("original", "d=2"): 0.78, ("d=2", "d=2"): 0.78}
    heat = pd.DataFrame([{"dataset": "toy", "model": "probe", "scheme": "fixed", "train": a, "test": b,
                          "accuracy": v} for (a, b), v in acc.items()])
    r = C.cross_reading(heat).iloc[0]
    assert r["hardest_test"] == "d=15" and r["test_only_cost"] == pytest.approx(-40.0)
    assert r["matched_gain"] == pytest.approx(20.0) and r["train_only_cost"] == pytest.approx(-10.0)
    assert C.cross_table(C.cross_reading(heat))["trained and tested on originals (%)"].tolist() == [80.0]


def test_training_cost_exponent():
    n = np.array([1000, 2000, 4000, 8000] * 2)
    grid = pd.DataFrame({"dataset": "toy", "model": "cnn", "n": n, "train_seconds": 0.01 * n})
    r = C.training_cost(grid).iloc[0]
    assert r["exponent"] == pytest.approx(1.0) and r["clock"] == "training" and r["seconds_large"] == pytest.approx(80)
    probe = grid.assign(model="probe", fit_seconds=0.5 * np.sqrt(n), train_seconds=1000.0)
    assert C.training_cost(probe).iloc[0]["exponent"] == pytest.approx(0.5)  # the fit's clock, not the cached one


def test_verdicts_follow_the_intervals():
    lo, hi = pd.Series([-3.0, -2.0, 0.5]), pd.Series([-1.0, -0.5, 2.0])
    assert C.direction_verdict(lo, hi, -1) == C.SUPPORTED
    assert C.direction_verdict(-hi, -lo, -1) == C.CONTRADICTED
    assert C.direction_verdict(pd.Series([-1.0, -1.0]), pd.Series([1.0, 1.0]), -1) == C.UNCLEAR
    assert C.direction_verdict(pd.Series([math.nan]), pd.Series([math.nan]), -1) == C.UNTESTED
    f = {k: pd.concat([frames(1e6)[k], frames(2e6)[k]]) for k in frames()}
    diff = report.scheme_differences(f)
    table = C.claims(diff, C.best_schemes(f), None)
    got = dict(zip(table["claim"], table["verdict"]))
    assert got["storage-optimal beats the original format at equal storage"] == C.SUPPORTED
    assert got["randomized compression beats storage-optimal"] == C.UNTESTED  # only collapsed runs
    assert got["the law's split is the best way to fill a budget"] == C.CONTRADICTED  # surely behind d=3
    assert "support 1, contradict 1" in C.verdict_counts_sentence(table)


def test_jpeg_dl_claims_use_the_seed_interval_of_the_paired_gain():
    h = {"seeds": 3, "diff_mean": 0.2, "diff_sd": 0.5, "fgsm_best_eps": 3.0, "fgsm_best_gain": 18.7,
         "fgsm_best_gain_sd": 1.1, "fgsm_strong_gain_mean": -0.5, "fgsm_strong_gain_sd": 2.0}
    table = C.jpeg_dl_claims(h, "CIFAR-10")
    got = dict(zip(table["claim"], table["verdict"]))
    assert got["JPEG-DL: a trainable JPEG layer raises clean accuracy"] == C.UNCLEAR
    assert got["JPEG-DL: more robust under FGSM"] == C.SUPPORTED
    assert got["JPEG-DL: more robust under FGSM, against the stronger of the soft and straight-through (BPDA) attacks"] == C.UNCLEAR
    assert got["JPEG-DL: more robust under PGD"] == C.UNTESTED  # not in the dict
    assert "+18.7 points [+16.0, +21.4] at eps 3/255" in table["our evidence"].iloc[1]
