"""`storage-scaling compress`: outputs, manifest, resume after an interrupt (and kill -9), bad input,
and the same bytes on a local Dask cluster."""

import csv
import re
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


def shard_files(out, suffix="parquet"):
    return sorted(out.glob(f"images-*-of-*.{suffix}"))


def read_shards(out):
    """The Parquet shards of OUT as one table (in shard order)."""
    import pyarrow as pa

    files = shard_files(out)
    assert files, f"no Parquet shards in {out}"
    return pa.concat_tables([pq.read_table(f) for f in files])


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
    table = read_shards(out)
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
        assert rows[path]["output"] == "images-00000-of-00001.parquet"
    assert not (out / cf.PARTS).exists() and (out / "classes.txt").read_text().split() == ["a", "b"]
    # the same seed gives the same distances (a resume depends on it)
    again = cf.run(photo_folder, tmp_path / "pack2", cf.Options(randomized=(1.0, 10.0), fmt="parquet", seed=3),
                   processes=1, progress=False)
    second = read_shards(tmp_path / "pack2").column("distance").to_numpy()
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
    assert parts and 0 < len(first) < OK_IN_FOLDER and not shard_files(out)
    assert {r["output"] for r in first if r["status"] == "ok"} == {f"{cf.PARTS}/{p.name}" for p in parts}
    monkeypatch.setattr(cf, "encode_chunk", real)
    s = cf.run(photo_folder, out, cf.Options(distance=5.0, fmt="parquet"), processes=1, progress=False, chunk=2)
    assert s.done_before == len(first) and s.ok == OK_IN_FOLDER
    table = read_shards(out)
    paths = table.column("image").combine_chunks().field("path").to_pylist()
    assert len(paths) == len(set(paths)) == OK_IN_FOLDER and not (out / cf.PARTS).exists()
    assert {r["output"] for r in manifest_rows(out) if r["status"] == "ok"} == {"images-00000-of-00001.parquet"}


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


# ---------------------------------------------------------------- issue 33 --------------------


def low_beta_law(tmp_path):
    """A law that wants many images and little quality: at 2 kB it keeps every image of the photo
    folder at L* ~ 125 B, below what d = 15 gives these crops (~210 B)."""
    saved = laws.SavedLaw("test law (many images, little quality)", law.LawParams(A=1.0, alpha=1.0, B=1.0, beta=0.1),
                          False, (2.0, 100.0), (50.0, 5000.0), (100.0, 1e5), "test")
    return saved.save(tmp_path / "law.json")


def ok_rows(out):
    return [r for r in manifest_rows(out) if r["status"] == "ok"]


def error_lines(err):
    """The error lines of stderr (progress bars come before them)."""
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("storage-scaling: error:")]


def test_budget_beyond_the_largest_distance_keeps_fewer_images_and_fits(photo_folder, tmp_path, capsys):
    """Issue 33, item 1: the plan asked for L below what d = 15 reaches; compress kept every image
    and wrote 171 % of the budget, exit 0. When the distance is capped, n shrinks to fit."""
    law_file = low_beta_law(tmp_path)
    budget = 2_000
    saved = laws.load(str(law_file))
    assert saved.params.allocation([budget], n_max=16).iloc[0]["pool_capped"]
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--budget", "2kB", "--law", str(law_file),
                   "--processes", "1", "--distances", "4", "15"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = ok_rows(tmp_path / "out")
    assert 0 < len(rows) < OK_IN_FOLDER
    assert {float(r["distance"]) for r in rows} == {15.0}
    assert sum(int(r["bytes"]) for r in rows) <= budget
    assert "largest distance" in captured.out and "OVER" not in captured.out


def test_over_the_budget_is_an_error_unless_best_effort(photo_folder, tmp_path, capsys, monkeypatch):
    """Issue 33, item 1: exceeding the budget exited 0 and left an output that looked complete."""
    law_file = low_beta_law(tmp_path)
    real_curve = plan.SizeSample.curve

    def too_small(self, *a, **k):  # a sample that badly underestimates the sizes
        c = real_curve(self, *a, **k)
        return {**c, **{key: [v / 4 for v in c[key]] for key in ("mean", "lo", "hi")}}

    monkeypatch.setattr(plan.SizeSample, "curve", too_small)
    out = tmp_path / "pack"
    args = ["compress", str(photo_folder), str(out), "--budget", "2kB", "--law", str(law_file), "--processes", "1",
            "--distances", "4", "15", "--format", "parquet", "--chunk", "2"]
    rc = cli.main(args)
    captured = capsys.readouterr()
    assert rc == 1, captured
    err = error_lines(captured.err)
    assert len(err) == 1 and "over the budget" in err[0] and "--best-effort" in err[0]
    assert captured.err.rstrip().endswith(err[0])
    assert not shard_files(out)  # nothing that looks complete
    assert (out / cf.REPORT).read_text().startswith("# Compression report: NOT COMPLETE")
    done = len(manifest_rows(out))
    assert done < OK_IN_FOLDER + SKIPPED_IN_FOLDER  # it stopped once the budget was exceeded
    rc = cli.main(args + ["--best-effort"])  # the user accepts: finish it over the budget
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert shard_files(out) and "OVER THE BUDGET" in captured.out and "--best-effort" in captured.out
    assert f"{done:,} were done before" in captured.out
    assert not (out / cf.REPORT).read_text().startswith("# Compression report: NOT COMPLETE")


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else None


def test_a_refused_budget_run_leaves_out_as_it_found_it(photo_folder, tmp_path, capsys):
    """Issue 33, item 3: a refused --budget run left .compress.lock and compress.json, and the
    corrected retry was refused ('holds a compression with other settings')."""
    law_file = low_beta_law(tmp_path)
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for out in (new, empty):
        before = listing(out)
        for budget in ("1GB", "20B"):  # outside the law's range; smaller than one image
            extra = ["--extrapolate"] if budget == "20B" else []
            rc = cli.main(["compress", str(photo_folder), str(out), "--budget", budget, "--law", str(law_file),
                           "--processes", "1", "--distances", "4", "15", *extra])
            err = capsys.readouterr().err
            assert rc == 2 and len(err.strip().splitlines()) == 1, err
            assert listing(out) == before, (out, budget, listing(out))
        rc = cli.main(["compress", str(photo_folder), str(out), "--budget", "2kB", "--law", str(law_file),
                       "--processes", "1", "--distances", "4", "15"])
        assert rc == 0, capsys.readouterr().err
        capsys.readouterr()


def test_an_interrupt_before_any_image_leaves_out_as_it_found_it(photo_folder, tmp_path, monkeypatch):
    def stop(task):
        raise KeyboardInterrupt("simulated Ctrl-C")

    monkeypatch.setattr(cf, "encode_chunk", stop)
    with pytest.raises(KeyboardInterrupt):
        cf.run(photo_folder, tmp_path / "out", cf.Options(distance=4.0), processes=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_compress_negative_budget_and_proc_out_are_one_line(photo_folder, tmp_path, capsys):
    """Issue 33, item 5: `--budget -5MB` got 'expected one argument'; an OUT under /proc a raw [Errno 2]."""
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--budget", "-5MB"])
    err = capsys.readouterr().err
    assert rc == 2 and "must be a positive size" in err and len(err.strip().splitlines()) == 1
    if os.path.isdir("/proc/self"):
        rc = cli.main(["compress", str(photo_folder), "/proc/compressed", "--distance", "4"])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "Errno" not in err
        assert "OUT /proc/compressed cannot be written" in err


def test_out_holding_unrelated_files_is_refused(photo_folder, tmp_path, capsys):
    """Issue 33, item 5: an OUT that held unrelated files was used silently."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    rc = cli.main(["compress", str(photo_folder), str(out), "--distance", "4", "--processes", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "thesis.tex" in err and "empty" in err and len(err.strip().splitlines()) == 1
    assert listing(out) == ["thesis.tex"]


def test_path_list_writes_relative_names_and_refuses_urls_fsspec_cannot_open(photo_folder, tmp_path, capsys):
    """Issue 33, item 5: a path list mirrored absolute paths into OUT; a URL was 'empty file' and
    s3://bucket/x became s3:/bucket/x. URLs fsspec serves are read now (test_practice_outputs);
    one it cannot open is one clear line, naming the URL as written."""
    files = sorted(photo_folder.rglob("*0.jpg"))
    paths = tmp_path / "files.txt"
    paths.write_text("\n".join(str(p) for p in files) + "\n")
    s = cf.run(paths, tmp_path / "out", cf.Options(distance=4.0), processes=1, progress=False)
    assert s.ok == len(files)
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.jxl"))
    assert written == sorted(str(f.relative_to(photo_folder).with_suffix(".jxl")) for f in files)
    listed = paths.read_text()
    paths.write_text(listed + "nosuchproto://example.com/x.jpg\n")
    rc = cli.main(["compress", str(paths), str(tmp_path / "out2"), "--distance", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()
    assert "nosuchproto://example.com/x.jpg" in err and "fsspec cannot open nosuchproto://" in err
    try:
        import s3fs  # noqa: F401
    except ImportError:
        paths.write_text(listed + "s3://bucket/x.jpg\n")
        rc = cli.main(["compress", str(paths), str(tmp_path / "out2"), "--distance", "4"])
        err = capsys.readouterr().err
        assert rc == 2 and "s3://bucket/x.jpg" in err and "pip install s3fs" in err, err
        assert not (tmp_path / "out2").exists()


def test_a_file_gone_after_listing_keeps_its_reason(photo_folder, tmp_path, monkeypatch):
    real_open = images.open_images

    def open_then_delete(*a, **k):
        found = real_open(*a, **k)
        (photo_folder / "a" / "chelsea0.jpg").unlink()
        return found

    monkeypatch.setattr(images, "open_images", open_then_delete)
    s = cf.run(photo_folder, tmp_path / "out", cf.Options(distance=4.0), processes=1, progress=False)
    reason = dict(s.skipped)["a/chelsea0.jpg"]
    assert "cannot read" in reason and "empty" not in reason


def test_pixel_and_memory_limits_skip_say_how_and_nothing_written_is_an_error(photo_folder, tmp_path, capsys):
    """Issue 33, item 5: a too-large image was skipped with no way to raise the limit, then the run
    exited 0 with '0 images written'; nothing guarded memory per worker."""
    out = tmp_path / "out"
    base = ["compress", str(photo_folder), str(out), "--distance", "4", "--processes", "1"]
    rc = cli.main(base + ["--max-pixels", "1000"])
    captured = capsys.readouterr()
    err = error_lines(captured.err)
    assert rc == 1 and len(err) == 1 and "no image was written" in err[0]
    reasons = {r["id"]: r["notes"] for r in manifest_rows(out)}
    assert "--max-pixels" in reasons["a/chelsea0.jpg"] and "96x80" in reasons["a/chelsea0.jpg"]
    rc = cli.main(base + ["--worker-memory", "1MB"])  # a re-run with a raised pixel limit retries them...
    captured = capsys.readouterr()
    assert rc == 1, captured.err
    reasons = {r["id"]: r["notes"] for r in manifest_rows(out)}
    assert "--worker-memory" in reasons["a/chelsea0.jpg"] and "needs about" in reasons["a/chelsea0.jpg"]
    rc = cli.main(base)  # ... and with the default limits they are written
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert len(ok_rows(out)) == OK_IN_FOLDER


def test_dry_run_says_what_would_be_kept_and_writes_nothing(photo_folder, tmp_path, capsys):
    """Issue 33, compress --dry-run: what would be kept, at what distance, the predicted bytes."""
    out = tmp_path / "out"
    rc = cli.main(["compress", str(photo_folder), str(out), "--distance", "4", "--processes", "1", "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert not out.exists()
    text = captured.out
    assert "dry run" in text and "would keep 18 files" in text and "d = 4" in text
    predicted = float(re.search(r"predicted bytes: ([\d.]+) kB", text).group(1)) * 1e3
    s = cf.run(photo_folder, out, cf.Options(distance=4.0), processes=1, progress=False)
    assert predicted == pytest.approx(s.total_bytes, rel=0.02)  # the sample is every image here
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    rc = cli.main(["compress", str(photo_folder), str(out), "--distance", "4", "--processes", "1", "--dry-run"])
    captured = capsys.readouterr()
    assert rc == 0 and "18 of them are already in OUT" in captured.out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_dry_run_of_a_budget_matches_the_real_run(photo_folder, tmp_path, capsys):
    law_file = low_beta_law(tmp_path)
    out = tmp_path / "out"
    args = ["compress", str(photo_folder), str(out), "--budget", "2kB", "--law", str(law_file), "--processes", "1",
            "--distances", "4", "15"]
    rc = cli.main(args + ["--dry-run"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert not out.exists()
    m = re.search(r"would keep ([\d,]+) files of .* at d = ([\d.]+)", captured.out)
    assert m, captured.out
    assert "predicted bytes" in captured.out and "budget 2 kB" in captured.out
    assert cli.main(args) == 0
    capsys.readouterr()
    rows = manifest_rows(out)
    assert len(rows) == int(m.group(1).replace(",", ""))
    assert {float(r["distance"]) for r in rows} == {float(m.group(2))}


def test_a_busy_out_is_refused_before_the_plan(photo_folder, tmp_path, monkeypatch, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / cf.LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another compress at work
        monkeypatch.setattr(plan, "measure_chunk", lambda task: pytest.fail("the plan should not start"))
        rc = cli.main(["compress", str(photo_folder), str(out), "--budget", "2kB", "--law",
                       str(low_beta_law(tmp_path)), "--processes", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "another storage-scaling compress is writing" in err
    assert listing(out) == [cf.LOCK]
