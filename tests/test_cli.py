"""The command-line entry: `storage-scaling fit data.csv --budget ...`."""

import re
import subprocess
import sys

import pytest

from storage_scaling import cli, law

FOOD = law.paper_law("food101")


@pytest.fixture
def grid_csv(tmp_path):
    data = law.synthetic_grid(FOOD, law.PAPER_N_GRIDS["food101"],
                              list(law.PAPER_SIZE_TABLES["food101"].values()), noise=0.005, seeds=2,
                              rng_seed=11)
    path = tmp_path / "runs.csv"
    data.to_csv(path, index=False)
    return path


def value(out, name):
    m = re.search(rf"^\s+{name}\s+([-\d.,e+]+)", out, re.M)
    assert m, f"no line for {name} in\n{out}"
    return float(m.group(1).replace(",", ""))


def test_fit_prints_parameters_intervals_and_allocation(grid_csv, capsys):
    rc = cli.main(["fit", str(grid_csv), "--budget", "48.48e6", "--budget", "96.96e6",
                   "--bootstrap", "60", "--seed", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert value(out, "alpha") == pytest.approx(FOOD.alpha, rel=0.05)
    assert value(out, "beta") == pytest.approx(FOOD.beta, rel=0.05)
    assert "95% interval" in out and "60 resamples" in out
    lines = [ln for ln in out.splitlines() if "s = 48.480 MB" in ln]
    assert len(lines) == 1
    n_star = float(re.search(r"n\* = ([\d,]+)", lines[0]).group(1).replace(",", ""))
    assert n_star == pytest.approx(FOOD.n_star(48.48e6), rel=0.05)
    assert "[n " in lines[0]  # interval printed beside the allocation
    assert "s = 96.960 MB" in out


def test_fit_other_metric_column_paper_method(grid_csv, tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(grid_csv)
    frame = frame.assign(accuracy=1 - frame["error"]).drop(columns="error").rename(columns={"L": "mean_bytes"})
    path = tmp_path / "acc.csv"
    frame.to_csv(path, index=False)
    rc = cli.main(["fit", str(path), "--metric", "accuracy", "--one-minus", "--method", "paper",
                   "--bootstrap", "0", "--budget", "48.48e6"])
    out = capsys.readouterr().out
    assert rc == 0 and "'1 - accuracy'" in out and "interval" not in out
    assert value(out, "beta") == pytest.approx(FOOD.beta, rel=0.05)


@pytest.mark.parametrize("content,message", [
    ("n,L,error\n100,1000,0.5\n200,1000,0.4\n", "single L"),
    ("n,L,error\n100,1000,0.5\n200,2000,1.5\n300,500,0.4\n400,800,0.3\n", r"\(0, 1\]"),
    ("n,bytes,error\n100,1000,0.5\n", "lacks column"),
    ("", "cannot read"),
])
def test_bad_csv_fails_clearly(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    rc = cli.main(["fit", str(path), "--bootstrap", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(message, err), err


def test_missing_file_and_bad_budget(tmp_path, grid_csv, capsys):
    assert cli.main(["fit", str(tmp_path / "nope.csv")]) == 2
    assert "no such CSV" in capsys.readouterr().err
    assert cli.main(["fit", str(grid_csv), "--budget", "-3", "--bootstrap", "0"]) == 2
    assert "--budget" in capsys.readouterr().err
    assert cli.main([]) == 2  # a subcommand is required: one line, not a usage block
    err = capsys.readouterr().err
    assert "required" in err and "--help" in err and len(err.strip().splitlines()) == 1


def test_module_entry_point(grid_csv):
    done = subprocess.run([sys.executable, "-m", "storage_scaling.cli", "fit", str(grid_csv),
                           "--bootstrap", "0", "--budget", "1e8"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "optimal allocation" in done.stdout


# ---------------------------------------------------------------- issue 9 ---------------------

FOOD_E = law.LawParams(A=FOOD.A, alpha=FOOD.alpha, B=FOOD.B, beta=FOOD.beta, E=0.08)


def write_grid(tmp_path, params, name, **kw):
    data = law.synthetic_grid(params, law.PAPER_N_GRIDS["food101"],
                              list(law.PAPER_SIZE_TABLES["food101"].values()), noise=0.01, seeds=2, **kw)
    path = tmp_path / name
    data.to_csv(path, index=False)
    return path


NUM = r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"


def num(text):
    return float(text.replace(",", ""))


def printed_intervals(out):
    """Every (name, point, lo, hi) the fit command printed: parameter rows and allocation rows."""
    found = []
    for m in re.finditer(rf"^\s+(\w+)\s+({NUM})\s+\[({NUM}), ({NUM})\]", out, re.M):
        found.append((m.group(1), num(m.group(2)), num(m.group(3)), num(m.group(4))))
    for line in out.splitlines():
        m = re.search(rf"s = ({NUM}) MB: n\* = ({NUM}), L\* = ({NUM}) bytes, predicted error ({NUM})", line)
        if not m:
            continue
        iv = re.search(rf"\[n ({NUM})-({NUM}); L ({NUM})-({NUM}); error ({NUM})-({NUM})\]", line)
        assert iv, f"allocation line without intervals: {line}"
        s = m.group(1)
        for k, name in enumerate(("n", "L", "error")):
            found.append((f"{name}@{s}", num(m.group(2 + k)), num(iv.group(1 + 2 * k)), num(iv.group(2 + 2 * k))))
    return found


def test_n_max_every_printed_interval_contains_its_point_estimate(tmp_path, capsys):
    """Issue 9, item 3: n* = 48,000 (capped) was printed with an interval of millions."""
    path = write_grid(tmp_path, FOOD, "runs.csv", rng_seed=5)
    rc = cli.main(["fit", str(path), "--n-max", "48000", "--bootstrap", "40", "--budget", "48.48e6",
                   "--budget", "1e9", "--budget", "5e10"])
    out = capsys.readouterr().out
    assert rc == 0
    found = printed_intervals(out)
    names = [f[0] for f in found]
    assert {"alpha", "beta", "nu"} <= set(names) and sum(n.startswith("n@") for n in names) == 3
    for name, point, lo, hi in found:
        assert lo <= point <= hi, (name, lo, point, hi, out)
    assert "outside its bootstrap interval" not in out
    capped = [f for f in found if f[0] == "n@50,000.000"][0]
    assert capped[1] == capped[2] == capped[3] == 48_000


def test_default_fits_both_forms_and_keeps_the_floor_when_the_data_have_one(tmp_path, capsys):
    """Issue 9, item 4: data made with E = 0.08; the old default (no floor) put alpha 27 % low."""
    path = write_grid(tmp_path, FOOD_E, "floor.csv", rng_seed=3)
    assert cli.main(["fit", str(path), "--bootstrap", "100", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^form: with floor E$", out, re.M), out
    why = re.search(rf"BIC \(lower is better\): with floor E ({NUM}), without floor E ({NUM})", out)
    assert why and num(why.group(1)) < num(why.group(2)), out
    intervals = {f[0]: f[1:] for f in printed_intervals(out)}
    point, lo, hi = intervals["alpha"]
    assert lo <= FOOD_E.alpha <= hi, (lo, FOOD_E.alpha, hi)
    assert point == pytest.approx(FOOD_E.alpha, rel=0.1)
    assert intervals["E"][1] <= 0.08 <= intervals["E"][2]


def test_default_keeps_no_floor_when_the_data_have_none(tmp_path, capsys):
    path = write_grid(tmp_path, FOOD, "plain.csv", rng_seed=3)
    assert cli.main(["fit", str(path), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^form: without floor E$", out, re.M), out
    assert "--with-floor / --no-floor" in out and "ln N" in out
    assert not re.search(r"^\s+E\s", out, re.M)  # no floor row
    assert "note:" not in out  # a well identified fit: nothing to flag


@pytest.mark.parametrize("params,flag,form,verdict", [
    (FOOD_E, "--no-floor", "without", "would choose the form with floor E"),
    (FOOD, "--with-floor", "with", "would choose the form without floor E"),
    (FOOD_E, "--with-floor", "with", "agrees"),
])
def test_with_floor_and_no_floor_force_the_form(tmp_path, capsys, params, flag, form, verdict):
    path = write_grid(tmp_path, params, "runs.csv", rng_seed=3)
    assert cli.main(["fit", str(path), "--bootstrap", "0", flag]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^form: {form} floor E$", out, re.M), out
    assert f"forced by {flag}; BIC {verdict}" in out


def test_unidentified_parameter_is_named(tmp_path, capsys):
    # Cityscapes-like data on the paper's 5 x 6 grid: the quality amplitude B is not pinned down
    city = law.paper_law("cityscapes")
    data = law.synthetic_grid(city, law.PAPER_N_GRIDS["cityscapes"],
                              list(law.PAPER_SIZE_TABLES["cityscapes"].values()), noise=0.01, seeds=2,
                              rng_seed=1)
    path = tmp_path / "city.csv"
    data.to_csv(path, index=False)
    assert cli.main(["fit", str(path), "--bootstrap", "40"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^form: with floor E$", out, re.M)
    notes = [ln for ln in out.splitlines() if ln.strip().startswith("note:")]
    assert any("B is not identified by these data (flat likelihood)" in ln for ln in notes), out
    assert not any(ln.strip().startswith(("note: alpha", "note: beta")) for ln in notes), out


def test_user_error_is_one_line_exit_2_and_debug_shows_the_traceback(tmp_path, capsys):
    """Issue 9, items 6/7 for the fit command: no traceback for bad input."""
    bad = tmp_path / "bad.csv"
    bad.write_text("n,L,error\n100,1000,0.5\n200,1000,0.4\n")
    for argv in (["fit", str(bad)], ["fit", str(bad), "--with-floor", "--no-floor"],
                 ["fit", str(bad), "--budget", "lots"], ["fit", str(bad), "--n-max", "0"],
                 ["fit", str(bad), "--bogus-flag"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("storage-scaling: error: "), (argv, err)
        assert "Traceback" not in err
    with pytest.raises(ValueError, match="single L"):
        cli.main(["fit", str(bad), "--debug"])


def test_user_error_in_a_real_process_has_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "storage_scaling.cli", "fit", str(tmp_path / "nope.csv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"storage-scaling: error: no such CSV file: {tmp_path / 'nope.csv'} (add --debug for the traceback)"]


def test_non_convergence_still_exits_3(grid_csv, capsys, monkeypatch):
    fit_law = law.fit_law
    monkeypatch.setattr(law, "fit_law", lambda d, method, with_floor: fit_law(
        d, method=method, with_floor=with_floor, gtol_accept=0.0))
    assert cli.main(["fit", str(grid_csv), "--bootstrap", "0"]) == 3
    err = capsys.readouterr().err
    assert "did not converge" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------- a flat metric, progress -----

def write_flat(tmp_path, value=0.9):
    rows = ["n,L,error,seed"] + [f"{n},{L},{value},{s}" for n in (1000, 2000, 4000, 8000)
                                 for L in (1000, 3000, 9000) for s in (0, 1)]
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("extra", [["--budget", "48e6", "--bootstrap", "0"],  # was an OverflowError traceback
                                   ["--method", "paper", "--budget", "1e7", "--bootstrap", "5"],  # was exit 0
                                   ["--with-floor", "--bootstrap", "5"]])
def test_flat_metric_is_one_line_exit_2_naming_the_file(tmp_path, capsys, extra):
    """A model at chance (the same error in every run) is bad input: refused before any fit."""
    path = write_flat(tmp_path)
    assert cli.main(["fit", str(path), *extra]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0] == (f"storage-scaling: error: error is the same (0.9) in all 24 rows of {path}: the law "
                        "cannot be fitted to a flat metric (a model at chance?); check the runs "
                        "(add --debug for the traceback)")
    assert captured.out == ""  # nothing fitted, nothing printed


def test_fit_without_an_optimum_exits_3_in_one_line_before_the_bootstrap(grid_csv, capsys, monkeypatch):
    """A converged fit with alpha, beta ~ 0 (what the flat metric gave): C overflowed in the old code."""
    degenerate = law.LawParams(A=0.1249, alpha=4.767e-17, B=0.7751, beta=2.98e-16)
    fit = law.LawFit(params=degenerate, method="robust", with_floor=False, loss=0.0, n_points=72,
                     r2=float("nan"), grad_norm=0.0, at_bound=("alpha", "beta"))
    choice = law.FormChoice(fit=fit, forced=True, criterion="BIC", values={}, fits={False: fit},
                            problems={}, reason="forced; test")
    monkeypatch.setattr(law, "choose_form", lambda *a, **k: choice)

    def no_bootstrap(*a, **k):
        raise AssertionError("the bootstrap must not run for a law without an optimum")

    monkeypatch.setattr(law, "bootstrap", no_bootstrap)
    assert cli.main(["fit", str(grid_csv), "--budget", "48.48e6"]) == 3
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"storage-scaling fit: the law fitted to {grid_csv} has no storage-optimal "
                               "allocation: C = (beta B / (alpha A))^(1/(alpha+beta)) = e^")
    assert "alpha = 4.77e-17" in lines[0] and "drop --budget" in lines[0]
    # without --budget the same fit is printed, its exponents flagged as not identified
    assert cli.main(["fit", str(grid_csv), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+alpha\s+4\.767e-17\s+\(on its bound: not identified by these data\)", out, re.M), out


def test_bootstrap_progress_on_stderr(grid_csv, capsys):
    assert cli.main(["fit", str(grid_csv), "--bootstrap", "7", "--no-floor"]) == 0
    captured = capsys.readouterr()
    assert "bootstrap (robust fit)" in captured.err and "7/7" in captured.err, captured.err
    assert "7 resamples of the runs" in captured.out and "bootstrap (robust" not in captured.out


# ---------------------------------------------------------------- issue 33 --------------------

SPHINX = re.compile(r":(func|mod|class|meth|data|attr|exc|obj):`|``|\*\*\w")


def all_parsers(parser, name="storage-scaling"):
    import argparse

    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def test_help_texts_are_plain_text():
    """Issue 33, item 5: help texts showed raw Sphinx markup (:func:, double backticks)."""
    parser = cli.build_parser()
    seen = 0
    for name, p in all_parsers(parser):
        text = p.format_help()
        assert not SPHINX.search(text), (name, SPHINX.search(text).group(0),
                                         text[max(0, SPHINX.search(text).start() - 80):SPHINX.search(text).end() + 40])
        seen += 1
    assert seen >= 9


def test_top_level_help_starts_with_the_practitioner_commands():
    """Issue 33, item 5: fit, tables, run, book, gpu were listed before plan, compress, pilot."""
    text = cli.build_parser().format_help()
    listed = re.findall(r"^    (\w+)\s", text, re.M)
    assert listed[:3] == ["plan", "compress", "pilot"], listed
    assert re.search(r"start here", text, re.I) and "storage-scaling plan" in text


def test_negative_size_values_reach_the_size_check(capsys):
    """`--budget -5MB` is the budget's value, not an unknown option."""
    assert cli.join_negative_values(["plan", "x", "--budget", "-5MB", "--seed", "3"]) == [
        "plan", "x", "--budget=-5MB", "--seed", "3"]
    assert cli.join_negative_values(["fit", "a.csv", "--budget", "-3"]) == ["fit", "a.csv", "--budget=-3"]
    assert cli.join_negative_values(["plan", "x", "--budget", "--debug"]) == ["plan", "x", "--budget", "--debug"]
