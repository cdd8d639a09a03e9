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
