"""The runner under faults: random kills, truncations and duplicated lines end either in the exact
uninterrupted table or in a one-line refusal (then ``results repair`` and a re-run give that table);
and what would fail after hours of training is refused before the first one."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from storage_scaling import atomic, data, experiments, paths, results_integrity
from storage_scaling.learn import learners
from storage_scaling.results import ResultsStore

from test_experiments import TINY, pytestmark  # noqa: F401 (the toy block; needs data, private cache)


SPEC = {"datasets": [dict(TINY, ns=[20, 40], distances=[4.0, 15.0], seeds=[0])]}
# what must be the same in a table however it was reached (timings and stamps differ run to run)
SAME = ["run_key", "n", "distance", "seed", "mean_bytes", "total_bytes", "accuracy", "error", "f1_macro",
        "f1_weighted", "n_test", "params_json"]


def same_rows(path) -> list[tuple]:
    frame = ResultsStore(path).frame()
    return sorted(map(tuple, frame[SAME].astype(str).itertuples(index=False)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted table (it also warms the stores the runs below read)."""
    path = tmp_path_factory.mktemp("reference") / "grid.csv"
    experiments.run_experiment("grid", "smoke", results_path=path, spec=SPEC, progress=False)
    return same_rows(path)


def refused_in_one_line(call) -> str | None:
    """The one-line message when ``call`` is refused, None when it ran; anything else fails the test."""
    try:
        call()
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message, f"not one line: {message!r}"
        return message
    return None


def test_random_kills_truncations_and_duplicated_lines_give_the_table_or_a_refusal(tmp_path, reference):
    rng = random.Random(20261203)
    table = tmp_path / "grid.csv"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    command = [sys.executable, "-m", "storage_scaling.cli", "run", "grid", "--profile", "smoke",
               "--spec", str(spec_file), "--results", str(table)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    kills = 0
    for delay in [rng.uniform(1.0, 6.0) for _ in range(4)] + [None]:  # kill -9 at random moments, then finish
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            if table.exists():
                assert refused_in_one_line(lambda: ResultsStore(table).frame()) is None, "a kill damaged the table"
            continue
        assert child.returncode == 0, child.stderr.read().decode()[-2000:]
    assert kills >= 1, "no kill landed: every run ended before its delay"
    assert same_rows(table) == reference
    complete = table.read_bytes()
    for trial in range(6):  # damage the finished table, then run again
        text = complete.decode()
        damage = rng.choice(["truncate", "duplicate", "truncate", "duplicate+truncate"])
        if "duplicate" in damage:
            rows = text.splitlines(keepends=True)
            text += rows[rng.randrange(1, len(rows))]
        if "truncate" in damage:
            text = text[: rng.randrange(len(text.splitlines(keepends=True)[0]), len(text))]
        table.write_text(text)

        def run():
            experiments.run_experiment("grid", "smoke", results_path=table, spec=SPEC, progress=False)

        message = refused_in_one_line(run)
        if message is not None:
            assert str(table) in message and "storage-scaling results repair" in message
            results_integrity.repair(table)
            assert refused_in_one_line(run) is None
        assert same_rows(table) == reference, f"trial {trial} ({damage}) did not give the uninterrupted table"


def test_a_second_run_into_the_same_table_is_refused_before_any_training(tmp_path, monkeypatch):
    table = tmp_path / "grid.csv"
    monkeypatch.setattr(learners.Network, "fit", lambda *a, **k: pytest.fail("trained although refused"))
    with atomic.exclusive(table):
        message = refused_in_one_line(
            lambda: experiments.run_experiment("grid", "smoke", results_path=table, spec=SPEC, progress=False))
    assert message is not None and "in use by another run" in message and f"pid {os.getpid()}" in message


def test_a_damaged_data_file_is_found_before_the_first_training(tmp_path, monkeypatch):
    root = paths.data_root()
    copy = tmp_path / "data"
    (copy / "cifar10-jpg").mkdir(parents=True)
    shutil.copy(root / "SHA256SUMS", copy / "SHA256SUMS")
    for name in ("train.parquet", "classes.txt"):
        os.symlink(root / "cifar10-jpg" / name, copy / "cifar10-jpg" / name)
    test = bytearray((root / "cifar10-jpg" / "test.parquet").read_bytes())
    test[len(test) // 2] ^= 0xFF  # one flipped byte in the middle of the test split
    (copy / "cifar10-jpg" / "test.parquet").write_bytes(bytes(test))
    monkeypatch.setenv(paths.DATA_ENV, str(copy))
    monkeypatch.setattr(learners.Network, "fit", lambda *a, **k: pytest.fail("trained before checking the data"))
    with pytest.raises(data.DataUnavailableError, match="checksum mismatch for .*test.parquet"):
        experiments.run_experiment("grid", "smoke", results_path=tmp_path / "g.csv", spec=SPEC, progress=False)


def test_a_results_folder_that_takes_no_files_is_refused_before_training(tmp_path, monkeypatch):
    folder = tmp_path / "read-only"
    folder.mkdir()
    real = tempfile.mkstemp

    def refuse_in_folder(*args, dir=None, **kwargs):  # root ignores chmod, so deny the way a read-only folder does
        if dir is not None and Path(dir) == folder:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse_in_folder)
    monkeypatch.setattr(learners.Network, "fit", lambda *a, **k: pytest.fail("trained before checking the folder"))
    with pytest.raises(PermissionError, match=r"results folder .*read-only is not writable \(Permission denied\); make"):
        experiments.run_experiment("grid", "smoke", results_path=folder / "g.csv", spec=SPEC, progress=False)
    assert not list(folder.iterdir())
