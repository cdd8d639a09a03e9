"""The GPU session: bad input stops before any work, staging is checked byte for byte, and the
very same entry point rehearses the whole session at smoke size on the CPU."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import pytest

from storage_scaling import gpu_session, paths

needs_data = pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")


@pytest.fixture
def carry(tmp_path, monkeypatch):
    """An empty carried folder in a private cache (the session's env changes are undone after)."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    for var in (paths.DATA_ENV, "PYTHONPATH"):
        monkeypatch.setenv(var, os.environ.get(var, ""))
    folder = gpu_session.carry_dir()
    (folder / "whl").mkdir(parents=True)
    return folder


def test_no_cuda_device_is_one_clear_error(carry):
    with pytest.raises(ValueError, match="no CUDA device.*--dry-run"):
        gpu_session.preflight("cifar10-jpg", ["grid"], dry_run=False, cuda_available=False)


def test_a_missing_wheel_is_named_before_any_work(carry, tmp_path):
    # airbench is not installed in the book's environment, and no wheel was carried
    with pytest.raises(ValueError, match=r"lacks airbench.*airbench-\*\.whl.*prepare"):
        gpu_session.install_wheels(["airbench"], carry / "whl", tmp_path / "site")
    assert not (tmp_path / "site").exists()  # nothing was installed


def test_the_benchmark_needs_airbench_only_on_a_gpu():
    assert gpu_session.needed_packages(["bench"], dry_run=False) == ["imagecodecs", "airbench"]
    assert gpu_session.needed_packages(["bench"], dry_run=True) == ["imagecodecs"]
    assert gpu_session.needed_packages(["grid"], dry_run=False) == ["imagecodecs"]


def test_a_damaged_data_pack_stops_the_session(carry):
    folder = carry / "data" / "cifar10-jpg"
    folder.mkdir(parents=True)
    for name in ("train.parquet", "test.parquet"):
        (folder / name).write_bytes(b"not the real pack")
    good = hashlib.sha256(b"not the real pack").hexdigest()
    (carry / "data" / "SHA256SUMS").write_text(f"{good}  cifar10-jpg/train.parquet\n{'0' * 64}  cifar10-jpg/test.parquet\n")
    with pytest.raises(ValueError, match="checksum mismatch.*test.parquet"):
        gpu_session.verify_data("cifar10-jpg", carry)


def test_staged_bytes_must_equal_the_manifest():
    digest = {"n": 3, "total_bytes": 300, "sizes_sha256": "ab"}
    gpu_session.check_staged({"k": digest}, {"k": dict(digest)})  # equal: passes
    with pytest.raises(ValueError, match=r"store k differs.*300 B here against 3, 301 B.*imagecodecs"):
        gpu_session.check_staged({"k": digest}, {"k": {**digest, "total_bytes": 301}})
    with pytest.raises(ValueError, match="differs"):  # same totals, different per-image sizes
        gpu_session.check_staged({"k": digest}, {"k": {**digest, "sizes_sha256": "cd"}})
    with pytest.raises(ValueError, match="no committed byte counts for store k.*manifest"):
        gpu_session.check_staged({"k": digest}, {})


def test_the_digest_sees_every_image():
    import numpy as np

    class Entry:
        def __init__(self, sizes, ids):
            self.sizes, self.ids = np.asarray(sizes), ids

    a = gpu_session._digest(Entry([10, 20], ["x", "y"]))
    assert a == {"n": 2, "total_bytes": 30, "sizes_sha256": a["sizes_sha256"]}
    assert gpu_session._digest(Entry([20, 10], ["x", "y"]))["sizes_sha256"] != a["sizes_sha256"]  # same total
    assert gpu_session._digest(Entry([10, 20], ["x", "z"]))["sizes_sha256"] != a["sizes_sha256"]


def test_command_line_errors_are_one_line(capsys):
    assert gpu_session.main(["run", "--dry-run", "--stages", "grid,typo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown stage(s) ['typo']" in err[0] and "Traceback" not in err[0]
    assert gpu_session.main(["run", "--dry-run", "--budget-s", "0", "--stages", "grid"]) == 2
    assert "--budget-s must be a positive" in capsys.readouterr().err


def test_pack_and_unpack_round_trip(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "training_grid_airnet.csv").write_text("n,error\n1,0.5\n")
    (results / "gpu_session_cifar10-jpg.json").write_text("[]\n")
    (results / "unrelated.csv").write_text("x\n")
    archive = gpu_session.pack(tmp_path / "out", results, "cifar10-jpg")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["gpu_session_cifar10-jpg.json", "training_grid_airnet.csv"]
    assert not (tmp_path / "out" / "results.tgz.partial").exists()
    back = tmp_path / "back"
    back.mkdir()
    assert sorted(gpu_session.unpack(archive, back)) == ["gpu_session_cifar10-jpg.json", "training_grid_airnet.csv"]
    assert (back / "training_grid_airnet.csv").read_text() == "n,error\n1,0.5\n"


def test_unpack_refuses_paths(tmp_path):
    bad = tmp_path / "bad.tgz"
    (tmp_path / "x.csv").write_text("x\n")
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(tmp_path / "x.csv", arcname="../x.csv")
    with pytest.raises(ValueError, match="unexpected entry '../x.csv'"):
        gpu_session.unpack(bad, tmp_path / "results")


@needs_data
def test_the_committed_manifest_covers_both_profiles():
    stores = gpu_session.load_manifest()
    for profile in ("smoke", "full"):
        keys = [k for k in stores if k.startswith(f"cifar10-jpg|{profile}|")]
        labels = {k.split("|")[2] for k in keys}
        assert labels == {"pool", "test"}, profile
    full_pool = stores["cifar10-jpg|full|pool|original|-"]
    assert full_pool["n"] == 40_000  # the paper's 80 % of CIFAR-10's train split


@pytest.mark.slow
@needs_data
def test_dry_run_rehearses_the_whole_session(tmp_path, monkeypatch):
    """The GPU command itself, at smoke size on the CPU: staging checked, rows written, packed."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    for var in (paths.DATA_ENV, "PYTHONPATH"):
        monkeypatch.setenv(var, os.environ.get(var, ""))
    out, results = tmp_path / "out", tmp_path / "results"
    assert gpu_session.main(["run", "--dry-run", "--budget-s", "900", "--out", str(out), "--results", str(results)]) == 0
    record = json.loads((results / "gpu_session_cifar10-jpg.json").read_text())[-1]
    assert record["profile"] == "smoke" and record["staging_s"] >= 0
    by_stage = {r["stage"]: r for r in record["stage_results"]}
    assert list(by_stage) == list(gpu_session.DEFAULT_STAGES)
    for name in ("quality", "grid", "cross", "original", "naive"):
        assert by_stage[name]["status"] == "complete" and by_stage[name]["rows"] == by_stage[name]["runs"] > 0
    assert by_stage["bench"]["status"] == "ok"
    with tarfile.open(out / "results.tgz") as tar:
        names = set(tar.getnames())
    assert {"training_grid_airnet_small.csv", "training_quality_airnet_small.csv",
            "gpu_session_cifar10-jpg.json"} <= names
    import pandas as pd

    grid = pd.read_csv(results / "training_grid_airnet_small.csv")
    assert set(grid["codec"]) == {"original", "jxl"}  # the original format is a cell of the grid
    original = grid[grid["codec"] == "original"]
    assert (original["mean_bytes"] > grid[grid["codec"] == "jxl"]["mean_bytes"].max()).all()


# ---------------------------------------------------------------------------------------------
# Carrying more than one call holds


def test_split_receive_assemble_round_trip(tmp_path):
    files = {}
    for name, size in (("whl/a.whl", 2500), ("data/x/train.parquet", 7000), ("CODE_VERSION", 13)):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
        files[name] = path
    parts = gpu_session.split(files, tmp_path / "gpu", part_bytes=4000)
    assert len(parts) == 3  # 9,513 bytes in parts of 4,000
    assert all(sum(p.stat().st_size for p in part.glob("piece-*")) <= 4000 for part in parts)
    into = tmp_path / "received"
    into.mkdir()
    # the parts arrive one call at a time; the session refuses to start until all are there
    only_first = tmp_path / "call1"
    (only_first).mkdir()
    import shutil

    shutil.copytree(parts[0], only_first / "part-1")
    assert gpu_session.receive(only_first, into) == [1]
    with pytest.raises(ValueError, match=r"part\(s\) \[2, 3\] of 3 have not arrived"):
        gpu_session.assemble(into)
    assert gpu_session.receive(tmp_path / "gpu", into) == [1, 2, 3]
    stage = gpu_session.assemble(into)
    for name, path in files.items():
        assert (stage / name).read_bytes() == path.read_bytes()
    # a damaged piece is caught by the checksum, not trained on
    (into / "part-2" / "piece-000.bin").write_bytes(b"\0" * 10)
    (stage / "data/x/train.parquet").unlink()
    with pytest.raises(ValueError, match="does not match its checksum"):
        gpu_session.assemble(into)


def test_parts_of_an_older_prepare_are_dropped(tmp_path):
    one = tmp_path / "one.bin"
    one.write_bytes(b"first" * 100)
    old = gpu_session.split({"f": one}, tmp_path / "old", part_bytes=100)
    into = tmp_path / "received"
    into.mkdir()
    gpu_session.receive(tmp_path / "old", into)
    one.write_bytes(b"second")
    gpu_session.split({"f": one}, tmp_path / "new", part_bytes=100)
    assert len(old) == 5 and gpu_session.receive(tmp_path / "new", into) == [1]
    assert (gpu_session.assemble(into) / "f").read_bytes() == b"second"


@needs_data
def test_food_needs_three_calls_and_each_fits_one(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "gpu-wheels"
    wheels.mkdir(parents=True)
    (wheels / "imagecodecs-2026.3.6-cp311-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"\0" * 26_468_592)
    (wheels / "airbench-0.1.8-py3-none-any.whl").write_bytes(b"\0" * 12_000)
    parts = gpu_session.prepare("food101-64px")
    sizes = [sum(f.stat().st_size for f in p.iterdir()) for p in parts]
    assert len(parts) == 3 and max(sizes) <= gpu_session.PART_BYTES + 100_000  # + the small index
    assert len(gpu_session.prepare("cifar10-jpg")) == 1


@pytest.mark.slow
@needs_data
def test_dry_run_of_the_food101_session(tmp_path, monkeypatch):
    """Issue 16's session, rehearsed: Food-101 64 px staging checked against the manifest, the grid
    at toy size with the 64 px network, the stages without a Food-101 block skipped by name."""
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    for var in (paths.DATA_ENV, "PYTHONPATH"):
        monkeypatch.setenv(var, os.environ.get(var, ""))
    results = tmp_path / "results"
    assert gpu_session.main(["run", "--dry-run", "--dataset", "food101-64px", "--budget-s", "600",
                             "--out", str(tmp_path / "out"), "--results", str(results)]) == 0
    record = json.loads((results / "gpu_session_food101-64px.json").read_text())[-1]
    by_stage = {r["stage"]: r for r in record["stage_results"]}
    assert by_stage["grid"]["status"] == "complete" and by_stage["grid"]["files"] == ["training_grid_resnet10_64.csv"]
    assert by_stage["bench"]["status"].startswith("skipped")
    import pandas as pd

    grid = pd.read_csv(results / "training_grid_resnet10_64.csv")
    assert set(grid["dataset"]) == {"food101-64px"} and set(grid["codec"]) == {"original", "jxl"}
