import os

import pytest

from storage_scaling import atomic, results


def test_append_lookup_and_resume(tmp_path):
    store = results.ResultsStore(tmp_path / "runs.csv")
    runs = [{"n": n, "distance": d, "seed": 0} for n in (10, 20) for d in (1.0, 4.0)]
    assert store.pending(runs) == runs
    store.append(runs[0], {"error": 0.5})
    store.append(runs[1], {"error": 0.4})
    assert store.pending(runs) == runs[2:]
    row = store.get(runs[1])
    assert row["error"] == 0.4 and row["n"] == 10 and row["code_version"]
    assert store.has(runs[0]) and not store.has(runs[3])
    with pytest.raises(ValueError, match="already in"):
        store.append(runs[0], {"error": 0.1})
    assert len(store.frame()) == 2


def test_run_key_ignores_order_but_not_values():
    assert results.run_key({"a": 1, "b": 2}) == results.run_key({"b": 2, "a": 1})
    assert results.run_key({"a": 1}) != results.run_key({"a": 2})


def test_metric_clashing_with_parameter_is_refused(tmp_path):
    store = results.ResultsStore(tmp_path / "runs.csv")
    with pytest.raises(ValueError, match="clash"):
        store.append({"error": 1}, {"error": 0.3})


def test_interrupted_write_leaves_old_file_intact(tmp_path, monkeypatch):
    store = results.ResultsStore(tmp_path / "runs.csv")
    store.append({"n": 1}, {"error": 0.9})
    before = (tmp_path / "runs.csv").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.append({"n": 2}, {"error": 0.8})
    monkeypatch.undo()
    assert (tmp_path / "runs.csv").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(store.frame()) == 1


def test_atomic_write_text(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    atomic.write_text(target, "hello")
    assert target.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask, "mode must follow the umask, not mkstemp's 0600"
    atomic.write_text(target, "again")
    assert target.read_text() == "again"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"], "no temporary files left"


def test_opening_a_store_removes_temp_files_of_killed_appends(tmp_path):
    path = tmp_path / "runs.csv"
    results.ResultsStore(path).append({"n": 1}, {"error": 0.9})
    results.ResultsStore(path).append({"n": 2}, {"error": 0.8})
    before = path.read_bytes()
    # what `kill -9` during an append leaves: temp files named like atomic.write_with's, one of
    # them holding a complete-looking table with an extra row
    stale = [tmp_path / ".runs.csv.k1l2m3n4.tmp", tmp_path / ".runs.csv.x_9y8z7w.tmp"]
    stale[0].write_bytes(before + b"deadbeefdeadbeef,{},3,0.1,x,y,z\n")
    stale[1].write_bytes(before[:17])
    others = [tmp_path / ".other.csv.k1l2m3n4.tmp", tmp_path / ".runs.csv.bak.k1l2m3n4.tmp",
              tmp_path / "notes.tmp"]
    for p in others:
        p.write_text("not ours")
    store = results.ResultsStore(path)
    assert not any(p.exists() for p in stale), "stale temp files of the table must be removed on open"
    assert all(p.exists() for p in others), "temp files of other files must be left alone"
    assert path.read_bytes() == before
    assert sorted(store.frame()["n"]) == [1, 2]  # the extra row in a temp file was never read


def test_opening_a_clean_or_missing_table_writes_nothing(tmp_path):
    results.ResultsStore(tmp_path / "new" / "runs.csv")
    assert not (tmp_path / "new").exists()
    store = results.ResultsStore(tmp_path / "runs.csv")
    assert list(tmp_path.iterdir()) == []
    assert store.pending([{"n": 1}]) == [{"n": 1}]


def test_lock_holder_removes_temp_files_left_by_killed_writers(tmp_path):
    target = tmp_path / "table.csv"
    stale = tmp_path / ".table.csv.abcd1234.tmp"
    stale.write_text("half a tab")
    assert atomic.temp_files(target) == [stale]
    with atomic.locked(target):
        assert not stale.exists()
        atomic.write_text(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert atomic.temp_files(target) == []


def test_a_commit_hash_of_digits_only_stays_text(tmp_path, monkeypatch):
    """CI once ran at commit 3077286: read back as an int, the resumed frame differed from the fresh one."""
    from storage_scaling import provenance
    monkeypatch.setattr(provenance, "code_version", lambda: "3077286")
    store = results.ResultsStore(tmp_path / "runs.csv")
    store.append({"n": 10, "seed": 0}, {"error": 0.5})
    frame = store.frame()
    assert frame["code_version"].tolist() == ["3077286"]
    assert frame["code_version"].dtype != "int64"
