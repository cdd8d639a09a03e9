"""`storage-scaling compress`: outputs, manifest, resume after an interrupt (and kill -9), bad input,
and the same bytes on a local Dask cluster."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import write_photo_folder
from storage_scaling import cli, law
from storage_scaling.compress import codecs
from storage_scaling.practice import cluster, compress_folder as cf, images, laws, plan

OK_IN_FOLDER = 16  # 12 photo crops + CMYK + 16-bit + greyscale + RGBA
SKIPPED_IN_FOLDER = 2  # notes.txt, broken.jpg


def manifest_rows(out):
    with open(out / cf.MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def test_jxl_files_mirror_the_layout_and_every_output_decodes(photo_folder, tmp_path):
    out = tmp_path / "out"
    s = cf.run(photo_folder, out, cf.Options(distance=4.0), processes=1, progress=False)
    assert s.ok == OK_IN_FOLDER and len(s.skipped) == SKIPPED_IN_FOLDER
    assert dict(s.skipped).keys() == {"a/notes.txt", "b/broken.jpg"}
    assert "not an image" in dict(s.skipped)["a/notes.txt"] and "truncated" in dict(s.skipped)["b/broken.jpg"]
    assert s.notes[images.CMYK] == 1 and s.notes[images.ALPHA] == 1 and s.notes[images.DEEP] == 1
    assert s.notes[images.GREY] == 2  # the 8-bit and the 16-bit greyscale PNGs
    rows = manifest_rows(out)
    assert len(rows) == OK_IN_FOLDER + SKIPPED_IN_FOLDER and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        if r["status"] != "ok":
            assert r["output"] == "" and not (out / r["id"]).with_suffix(".jxl").exists()
            continue
        target = out / r["output"]
        assert r["output"] == r["id"].rsplit(".", 1)[0] + ".jxl"
        assert target.stat().st_size == int(r["bytes"]) and float(r["distance"]) == 4.0
        pixels = codecs.decode(target.read_bytes())
        assert pixels.shape == (int(r["height"]), int(r["width"]), 3)
        source, _ = images.to_rgb8((photo_folder / r["id"]).read_bytes())
        assert pixels.shape == source.shape
    assert s.total_bytes == sum(int(r["bytes"]) for r in rows if r["status"] == "ok")
    report = (out / cf.REPORT).read_text()
    assert "b/broken.jpg" in report and "composited over white" in report and "CMYK converted" in report
    alpha = codecs.decode((out / "b" / "alpha.jxl").read_bytes())
    assert alpha[:, :30].min() > 235  # the transparent half came out white (d = 4 moves a few levels)


def test_parquet_pack_in_the_book_schema(photo_folder, tmp_path):
    out = tmp_path / "pack"
    s = cf.run(photo_folder, out, cf.Options(randomized=(1.0, 10.0), fmt="parquet", seed=3), processes=1,
               progress=False, chunk=3)
    table = pq.read_table(out / cf.PACK)
    assert table.num_rows == s.ok == OK_IN_FOLDER
    assert table.schema.field("image").type.names == ["bytes", "path"]
    paths = table.column("image").combine_chunks().field("path").to_pylist()
    assert paths == sorted(paths)
    labels = dict(zip(paths, table.column("label").to_pylist()))
    assert labels["a/cmyk.jpg"] == 0 and labels["b/grey.png"] == 1
    distances = table.column("distance").to_numpy()
    assert distances.min() >= 1.0 and distances.max() <= 10.0 and len(np.unique(distances)) > 5
    rows = {r["id"]: r for r in manifest_rows(out)}
    for path, data, d in zip(paths, table.column("image").combine_chunks().field("bytes").to_pylist(), distances):
        assert codecs.decode(data).ndim == 3 and len(data) == int(rows[path]["bytes"])
        assert float(rows[path]["distance"]) == pytest.approx(d)
        assert rows[path]["output"] == cf.PACK
    assert not (out / cf.PARTS).exists() and (out / "classes.txt").read_text().split() == ["a", "b"]
    # the same seed gives the same distances (a resume depends on it)
    again = cf.run(photo_folder, tmp_path / "pack2", cf.Options(randomized=(1.0, 10.0), fmt="parquet", seed=3),
                   processes=1, progress=False)
    second = pq.read_table(tmp_path / "pack2" / cf.PACK).column("distance").to_numpy()
    assert again.ok == s.ok and np.array_equal(second, distances)


def test_resume_after_an_interrupt_encodes_only_what_is_missing(photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = cf.encode_chunk
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return real(task)

    monkeypatch.setattr(cf, "encode_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        cf.run(photo_folder, out, cf.Options(distance=2.0), processes=1, progress=False, chunk=2)
    first = manifest_rows(out)
    assert len(first) == 6  # three chunks of two
    monkeypatch.setattr(cf, "encode_chunk", real)
    s = cf.run(photo_folder, out, cf.Options(distance=2.0), processes=1, progress=False, chunk=2)
    assert s.done_before == 6 and s.encoded_now == OK_IN_FOLDER + SKIPPED_IN_FOLDER - 6
    rows = manifest_rows(out)
    assert len(rows) == OK_IN_FOLDER + SKIPPED_IN_FOLDER and len({r["id"] for r in rows}) == len(rows)
    # an output deleted behind our back is found missing and written again: none lost
    (out / rows[0]["output"]).unlink()
    s = cf.run(photo_folder, out, cf.Options(distance=2.0), processes=1, progress=False)
    assert s.encoded_now == 1 and (out / rows[0]["output"]).is_file()
    # nothing left: a third run encodes nothing
    assert cf.run(photo_folder, out, cf.Options(distance=2.0), processes=1, progress=False).encoded_now == 0
    with pytest.raises(ValueError, match="other settings"):
        cf.run(photo_folder, out, cf.Options(distance=3.0), processes=1, progress=False)


def test_parquet_output_resumes_from_its_parts(photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "pack"
    real = cf.encode_chunk
    calls = {"n": 0}

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return real(task)

    monkeypatch.setattr(cf, "PART_ROWS", 3)
    monkeypatch.setattr(cf, "encode_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        cf.run(photo_folder, out, cf.Options(distance=5.0, fmt="parquet"), processes=1, progress=False, chunk=2)
    parts = sorted((out / cf.PARTS).glob("part-*.parquet"))
    first = manifest_rows(out)
    assert parts and 0 < len(first) < OK_IN_FOLDER and not (out / cf.PACK).exists()
    assert {r["output"] for r in first if r["status"] == "ok"} == {f"{cf.PARTS}/{p.name}" for p in parts}
    monkeypatch.setattr(cf, "encode_chunk", real)
    s = cf.run(photo_folder, out, cf.Options(distance=5.0, fmt="parquet"), processes=1, progress=False, chunk=2)
    assert s.done_before == len(first) and s.ok == OK_IN_FOLDER
    table = pq.read_table(out / cf.PACK)
    paths = table.column("image").combine_chunks().field("path").to_pylist()
    assert len(paths) == len(set(paths)) == OK_IN_FOLDER and not (out / cf.PARTS).exists()
    assert {r["output"] for r in manifest_rows(out) if r["status"] == "ok"} == {cf.PACK}


def test_resume_after_kill_9(tmp_path):
    folder = write_photo_folder(tmp_path / "photos", per_class=4, size=(320, 240), bad_files=False)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "storage_scaling.cli", "compress", str(folder), str(out), "--distance", "1",
               "--processes", "1", "--chunk", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / cf.MANIFEST).is_file() and len(manifest_rows(out)) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "compress finished before it could be killed"
    before = {r["id"] for r in manifest_rows(out)}
    assert 3 <= len(before) < 16
    s = cf.run(folder, out, cf.Options(distance=1.0), processes=1, progress=False)
    rows = manifest_rows(out)
    assert s.ok == 16 and s.done_before == len(before) and s.encoded_now == 16 - len(before)
    assert len(rows) == 16 and len({r["id"] for r in rows}) == 16
    assert not [p for p in out.rglob("*.tmp")]  # temporary files of the killed write are gone
    for r in rows:
        assert codecs.decode((out / r["output"]).read_bytes()).shape == (240, 320, 3)


def test_local_dask_cluster_writes_the_same_bytes(photo_folder, tmp_path):
    serial = cf.run(photo_folder, tmp_path / "serial", cf.Options(distance=6.0), processes=1, progress=False)
    with cluster.open_pool(workers=2) as pool:
        spread = cf.run(photo_folder, tmp_path / "dask", cf.Options(distance=6.0), pool=pool, progress=False,
                        chunk=2)
    assert spread.ok == serial.ok and spread.total_bytes == serial.total_bytes
    for r in manifest_rows(tmp_path / "serial"):
        if r["status"] == "ok":
            assert (tmp_path / "dask" / r["output"]).read_bytes() == (tmp_path / "serial" / r["output"]).read_bytes()


@pytest.mark.parametrize("args,message", [
    (["--distance", "4", "--budget", "1MB"], "not allowed with"),
    (["--distance", "0"], "--distance must lie in"),
    (["--randomized", "9", "2"], "DMIN < DMAX"),
    (["--distance", "4", "--workers", "0"], "--workers must be a whole number"),
    (["--budget", "lots"], "is not a size"),
])
def test_bad_options_are_one_line(photo_folder, tmp_path, capsys, args, message):
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing was started


def test_bad_places_are_one_line_before_any_work(photo_folder, tmp_path, capsys):
    cases = [([str(photo_folder), str(tmp_path / "no" / "such" / "out")], "does not exist; create it first"),
             ([str(photo_folder), str(photo_folder)], "is IMAGES itself"),
             ([str(photo_folder / "a"), str(photo_folder)], "lies inside OUT"),
             ([str(tmp_path / "missing"), str(tmp_path / "out")], "does not exist")]
    (tmp_path / "empty").mkdir()
    cases.append(([str(tmp_path / "empty"), str(tmp_path / "out")], "holds no files"))
    for paths, message in cases:
        rc = cli.main(["compress", *paths, "--distance", "4"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, (paths, err)
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_one_line(photo_folder, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes anywhere: let the permission check see what a user would
        monkeypatch.setattr(plan.os, "access", lambda path, mode: False)
    try:
        rc = cli.main(["compress", str(photo_folder), str(locked / "out"), "--distance", "4"])
        err = capsys.readouterr().err
        assert rc == 2 and "not writable" in err
    finally:
        locked.chmod(0o700)


def test_unreachable_scheduler_is_one_line_within_the_timeout(photo_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2.0)
    start = time.monotonic()
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--distance", "4",
                   "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach a Dask scheduler" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out" / cf.MANIFEST).exists()


def test_budget_smaller_than_one_image_is_refused_before_the_sample(photo_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plan, "measure_chunk", lambda task: pytest.fail("the sample should not start"))
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--budget", "200B", "--extrapolate",
                   "--processes", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "smaller than one of these images at the largest distance" in err


def test_budget_mode_plans_keeps_a_subset_and_fits_the_budget(photo_folder, tmp_path, capsys):
    truth = law.LawParams(A=0.6, alpha=0.4, B=10.0, beta=0.7, E=0.02)  # errors in (0, 1) on this grid
    runs = law.synthetic_grid(truth, [2, 4, 8, 16, 32], [150, 300, 600, 1200, 2400], noise=0.01, seeds=2,
                              rng_seed=1)
    data = law.law_data(runs, with_floor=True)
    saved = laws.from_fit(law.fit_robust(data, with_floor=True), data, label="test law", source="synthetic")
    law_file = saved.save(tmp_path / "law.json")
    budget = 6_000.0
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--budget", "6kB", "--law", str(law_file),
                   "--processes", "1", "--bootstrap", "20", "--distances", "1", "2", "4", "8", "15"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, captured.err
    n_star = saved.params.n_star(budget)
    rows = [r for r in manifest_rows(tmp_path / "out") if r["status"] == "ok"]
    assert len(rows) <= round(n_star) + 1 and len(rows) < OK_IN_FOLDER  # a subset, as many as the law asks
    assert sum(int(r["bytes"]) for r in rows) <= budget  # the real bytes fit
    assert len({r["distance"] for r in rows}) == 1 and "storage-optimal" in out and "% used" in out
