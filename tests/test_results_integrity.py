"""A damaged results table is refused in one line, never read "as well as possible"; repair moves bad
lines aside and keeps every good row (no data needed: the tables are made here)."""

import json
import os

import pandas as pd
import pytest

from storage_scaling import atomic, cli, errors, results_integrity, tables
from storage_scaling.results import ResultsStore, run_key


def grid_row(n: int, seed: int, distance: float = 4.0) -> tuple[dict, dict]:
    params = {"experiment": "grid", "dataset": "toy", "model": "probe", "n": n, "codec": "jxl",
              "distance": distance, "test_distance": None, "seed": seed, "flip": True}
    accuracy = round(0.3 + 0.001 * n + 0.01 * seed, 4) + 0.0033
    metrics = {"accuracy": accuracy, "error": 1 - accuracy, "f1_macro": 0.5, "f1_weighted": 0.51,
               "n_test": 60, "test_mean_bytes": 900.5, "mean_bytes": 400.25, "total_bytes": 400.25 * n,
               "train_seconds": 1.5}
    return params, metrics


def make_table(folder, rows: int = 6, sidecar: bool = True):
    """A finished 'full' grid table of ``rows`` runs with its sidecar, as the runner leaves it."""
    path = folder / "training_grid_probe.csv"
    store = ResultsStore(path)
    for k in range(rows):
        store.append(*grid_row(10 * (k + 1), seed=k % 2))
    if sidecar:
        tables.write_table(path.stem, store.frame(), {"experiment": "grid"}, 1.0, results_dir=folder)
    return path


def refusal(path) -> str:
    with pytest.raises(ValueError) as info:
        ResultsStore(path).frame()
    message = str(info.value)
    assert "\n" not in message, "a refusal is one line"
    assert str(path) in message and "storage-scaling results repair" in message
    return message


def lines(path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_a_good_table_reads_as_written(tmp_path):
    path = make_table(tmp_path)
    frame = ResultsStore(path).frame()
    assert len(frame) == 6 and frame["run_key"].is_unique
    assert results_integrity.inspect(path).ok


def test_a_row_cut_in_its_numeric_fields_is_refused_not_padded(tmp_path):
    path = make_table(tmp_path)
    text = lines(path)
    last = text[-1]
    cut = last[: last.index(",400.25,")]  # the row ends inside its numbers; params_json is gone
    path.write_text("".join(text[:-1]) + cut + "\n")
    message = refusal(path)
    assert "line 7" in message and "a cut row" in message


def test_a_cut_inside_the_error_value_is_not_kept_as_a_shorter_number(tmp_path):
    path = make_table(tmp_path)
    text = lines(path)
    row = text[-1]
    fields = row.split(",")
    column = text[0].split(",").index("error")
    true_error = fields[column]
    start = len(",".join(fields[:column])) + 1  # every field before it is unquoted
    path.write_text("".join(text[:-1]) + row[: start + 3])  # "0.6" of "0.6833...": what pandas kept
    assert pd.read_csv(path)["error"].iloc[-1] != float(true_error)  # the silent failure this check prevents
    assert "line 7" in refusal(path)
    # the same wrong number inside an otherwise complete row: error and accuracy no longer add up to 1
    edited = row[:start] + row[start: start + 3] + row[start + len(true_error):]
    path.write_text("".join(text[:-1]) + edited)
    assert "do not add up to 1" in refusal(path)


def test_a_table_without_an_error_column_is_refused(tmp_path):
    path = make_table(tmp_path, sidecar=False)
    pd.read_csv(path).drop(columns=["error"]).to_csv(path, index=False)
    message = refusal(path)
    assert "'error'" in message and "lacks" in message


def test_a_duplicated_row_is_refused_and_the_sidecar_count_is_checked(tmp_path):
    path = make_table(tmp_path)
    text = lines(path)
    path.write_text("".join(text) + text[3])
    message = refusal(path)
    assert "line 8" in message and "already on line 4" in message and "1 more problem" in message
    check = results_integrity.inspect(path)
    assert any("7 rows but its sidecar" in p.reason and "records 6" in p.reason for p in check.problems)


def test_a_lost_row_disagrees_with_the_sidecar(tmp_path):
    path = make_table(tmp_path)
    text = lines(path)
    path.write_text("".join(text[:3] + text[4:]))  # a whole row gone: every line parses
    assert "5 rows but its sidecar" in refusal(path)


@pytest.mark.parametrize("content, what", [("", "empty"), ('run_key,params_json\n"abc', "header")])
def test_an_empty_or_headless_table_is_refused_naming_the_file(tmp_path, content, what):
    path = tmp_path / "training_grid_probe.csv"
    path.write_text(content)
    message = refusal(path)
    assert what in message or "lacks" in message


def test_a_row_cut_inside_its_quotes_is_refused(tmp_path):
    path = make_table(tmp_path, sidecar=False)
    text = path.read_text()
    path.write_text(text[: text.rindex('"experiment"')])  # the file ends inside the last params_json
    message = refusal(path)
    assert "line 7" in message


def test_an_edited_parameter_is_refused(tmp_path):
    path = make_table(tmp_path, sidecar=False)
    frame = pd.read_csv(path, dtype={"run_key": str})
    frame.loc[2, "n"] = 999  # the column no longer says what the run's identity says
    frame.to_csv(path, index=False)
    assert "column 'n' holds '999'" in refusal(path)


def test_append_refuses_a_damaged_table_and_drops_a_stale_sidecar(tmp_path):
    path = make_table(tmp_path)
    sidecar = path.with_suffix(".json")
    assert sidecar.is_file()
    ResultsStore(path).append(*grid_row(500, seed=0))  # the spec grew: the table is no longer finished
    assert not sidecar.exists()
    assert len(ResultsStore(path).frame()) == 7
    path.write_text(path.read_text() + lines(path)[2])
    with pytest.raises(ValueError, match="already on line"):
        ResultsStore(path).append(*grid_row(600, seed=0))


def test_repair_moves_bad_lines_aside_keeps_good_rows_and_redoes_only_those(tmp_path):
    path = make_table(tmp_path)
    good = ResultsStore(path).frame()
    text = lines(path)
    damaged = text[:3] + [text[3][:40] + "\n"] + text[4:] + [text[5]]  # line 4 cut, line 6 duplicated
    path.write_text("".join(damaged))
    report = results_integrity.repair(path)
    assert [p.line for p in report.moved_lines] == [4, 8]
    rejected = results_integrity.rejected_path(path).read_text()
    assert text[3][:40] in rejected and "line 4" in rejected and "line 8" in rejected
    after = ResultsStore(path).frame()  # readable again
    assert len(after) == 5 and set(after["run_key"]) < set(good["run_key"])
    lost = set(good["run_key"]) - set(after["run_key"])
    assert lost == {good["run_key"].iloc[2]}
    runs = [grid_row(10 * (k + 1), seed=k % 2)[0] for k in range(6)]
    assert [run_key(r) for r in ResultsStore(path).pending(runs)] == sorted(lost)  # only the lost run is redone
    assert not path.with_suffix(".json").exists() and report.stale_sidecar.is_file(), \
        "a sidecar that counts 6 rows no longer describes a 5-row table"
    assert results_integrity.repair(path).moved_to is None  # a second repair has nothing to do


def test_repair_moves_an_unusable_file_aside_whole(tmp_path):
    path = tmp_path / "training_grid_probe.csv"
    path.write_text("")
    report = results_integrity.repair(path)
    assert not path.exists() and report.moved_to.is_file()
    assert ResultsStore(path).frame().empty  # the next run starts the table afresh


def test_repair_is_refused_while_a_run_holds_the_table(tmp_path):
    path = make_table(tmp_path)
    with atomic.exclusive(path):
        with pytest.raises(atomic.Busy, match="in use by another"):
            results_integrity.repair(path)


def test_a_second_run_lock_on_a_table_is_refused_at_once(tmp_path):
    path = tmp_path / "t.csv"
    with atomic.exclusive(path):
        with pytest.raises(atomic.Busy) as info:
            with atomic.exclusive(path):
                pass
        assert f"pid {os.getpid()}" in str(info.value)
    with atomic.exclusive(path):  # released on exit
        pass


def test_results_check_and_repair_commands(tmp_path, capsys):
    path = make_table(tmp_path)
    assert cli.main(["results", "check", str(tmp_path)]) == 0
    assert "ok:" in capsys.readouterr().out
    path.write_text(path.read_text() + lines(path)[1])
    assert cli.main(["results", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "damaged" in out and "already on line 2" in out
    assert cli.main(["results", "repair", str(path)]) == 0
    assert "moved line(s) 8" in capsys.readouterr().out
    assert cli.main(["results", "check", str(path)]) == 0


def test_committed_tables_with_a_wrong_row_count_are_refused(tmp_path):
    frame = pd.DataFrame({"d": [1.0, 2.0, 4.0], "bytes": [10, 8, 6]})
    tables.write_table("sizes", frame, {"a": 1}, 0.1, results_dir=tmp_path)
    assert len(tables.load_committed("sizes", {"a": 1}, tmp_path).frame) == 3
    (tmp_path / "sizes.csv").write_text("d,bytes\n1.0,10\n")
    with pytest.raises(ValueError, match="1 rows but its sidecar records 3"):
        tables.load_committed("sizes", {"a": 1}, tmp_path)
    (tmp_path / "sizes.csv").write_text("")
    with pytest.raises(ValueError, match="sizes.csv cannot be read as CSV"):
        tables.load_committed("sizes", {"a": 1}, tmp_path)


def test_os_errors_name_the_file_and_the_fix(capsys):
    def fails(_):
        raise PermissionError(13, "Permission denied", "/x/results/t.csv")

    assert errors.run_main(fails, [], "prog") == 2
    line = capsys.readouterr().err
    assert "/x/results/t.csv: permission denied; change its permissions" in line and "[Errno" not in line

    def read_only(_):
        raise OSError(30, "Read-only file system", "/ro/t.csv")

    assert errors.run_main(read_only, [], "prog") == 2
    assert "read-only file system" in capsys.readouterr().err


def test_a_row_with_a_line_break_is_refused_before_writing(tmp_path):
    store = ResultsStore(tmp_path / "t.csv")
    params, metrics = grid_row(10, 0)
    with pytest.raises(ValueError, match="line break"):
        store.append(params, {**metrics, "note": "two\nlines"})
    assert not (tmp_path / "t.csv").exists()


def test_every_declared_kind_refuses_what_it_should():
    rk = results_integrity
    assert rk.PROBABILITY.parse("0.25") == 0.25
    for kind, bad in ((rk.PROBABILITY, "1.5"), (rk.PROBABILITY, "nan"), (rk.COUNT, "2.5"), (rk.COUNT, "-1"),
                      (rk.FLAG, "yes"), (rk.TEXT, " "), (rk.TIMESTAMP, "yesterday"), (rk.BYTES, "")):
        with pytest.raises(ValueError):
            kind.parse(bad)
    assert json.dumps(sorted(rk.EXPERIMENT_COLUMNS))  # every experiment of the program is declared
    from storage_scaling.experiments import kinds

    assert set(kinds.EXPERIMENTS) == set(rk.EXPERIMENT_COLUMNS)
