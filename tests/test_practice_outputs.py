"""`storage-scaling compress` for a training pipeline (issue 33): lossless JPEG transcode
(--original), Parquet and WebDataset shards of bounded size, --max-side, --keep, remote storage
through fsspec (memory:// and file:// URLs), and the PyTorch loader that reads it all back."""

import csv
import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import write_photo_folder
from storage_scaling import cli, law, paths
from storage_scaling.compress import codecs
from storage_scaling.practice import compress_folder as cf, images, laws, loader, remote, shards

OK_IN_FOLDER = 16  # the photo folder of conftest: 12 crops + CMYK + 16-bit + greyscale + RGBA


def manifest_rows(out):
    with open(out / cf.MANIFEST, newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def shard_files(out, suffix):
    return sorted(out.glob(f"images-*-of-*.{suffix}"))


def decoded_outputs(out):
    """id -> pixels of every image a --format jxl OUT holds, read as files."""
    return {i: loader.decode((out / r["output"]).read_bytes()) for i, r in manifest_rows(out).items()
            if r["status"] == "ok"}


# ---------------------------------------------------------------- --original: lossless transcode ---


def test_original_transcodes_jpegs_losslessly_and_keeps_the_rest(photo_folder, tmp_path):
    out = tmp_path / "out"
    tiny = photo_folder / "a" / "tiny.jpg"  # 8x8: the transcode's container costs more than it saves
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(tiny, quality=90)
    s = cf.run(photo_folder, out, cf.Options(original=True), processes=1, progress=False)
    rows = manifest_rows(out)
    transcoded = [r for r in rows.values() if r["notes"] == cf.TRANSCODED]
    assert transcoded and s.notes[cf.TRANSCODED] == len(transcoded)
    for r in transcoded:  # every pixel kept: the JPEG's exact bytes come back
        source = (photo_folder / r["id"]).read_bytes()
        stored = (out / r["output"]).read_bytes()
        assert r["output"].endswith(".jxl") and len(stored) < len(source)
        assert cf.restore_jpeg(stored) == source
        assert float(r["distance"]) == 0.0
    kept = rows["a/tiny.jpg"]
    assert kept["notes"] == cf.KEPT_BIGGER and kept["output"] == "a/tiny.jpg"
    assert (out / "a" / "tiny.jpg").read_bytes() == tiny.read_bytes()
    assert len(cf.transcode(tiny.read_bytes())) >= tiny.stat().st_size  # it was bigger, hence kept
    for name in ("b/alpha.png", "b/grey.png", "a/deep.png"):  # not JPEGs: the files as they are
        assert rows[name]["notes"] == cf.KEPT_OTHER
        assert (out / rows[name]["output"]).read_bytes() == (photo_folder / name).read_bytes()
    assert s.total_bytes < s.source_bytes
    report = (out / cf.REPORT).read_text()
    assert "Original format (every pixel kept)" in report and "restore_jpeg" in report


def test_original_refuses_a_transcode_that_does_not_give_the_jpeg_back(photo_folder, tmp_path, monkeypatch):
    import imagecodecs

    real = imagecodecs.jpegxl_decode_jpeg
    monkeypatch.setattr(imagecodecs, "jpegxl_decode_jpeg", lambda data, **k: bytes(real(data, **k))[:-1])
    out = tmp_path / "out"
    cf.run(photo_folder, out, cf.Options(original=True), processes=1, progress=False)
    rows = manifest_rows(out)
    assert not [r for r in rows.values() if r["notes"] == cf.TRANSCODED]
    for r in rows.values():
        if r["status"] == "ok" and r["id"].endswith(".jpg"):
            assert (out / r["output"]).read_bytes() == (photo_folder / r["id"]).read_bytes()


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data")
def test_original_on_full_size_food101_originals_is_smaller_and_reversible(tmp_path):
    table = pq.read_table(paths.data_root() / "food101-originals" / "sample.parquet").slice(0, 4)
    folder = tmp_path / "food"
    for value in table.column("image").to_pylist():
        target = folder / value["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(value["bytes"])
    s = cf.run(folder, tmp_path / "out", cf.Options(original=True), processes=1, progress=False)
    assert s.notes[cf.TRANSCODED] == 4 and s.total_bytes < 0.95 * s.source_bytes  # chapter 1: about 16 % smaller
    for r in manifest_rows(tmp_path / "out").values():
        assert cf.restore_jpeg((tmp_path / "out" / r["output"]).read_bytes()) == (folder / r["id"]).read_bytes()


# ---------------------------------------------------------------- shards -------------------------


@pytest.mark.parametrize("fmt,suffix", [("parquet", "parquet"), ("webdataset", "tar")])
def test_shards_are_bounded_ordered_labelled_and_the_same_from_any_chunking(photo_folder, tmp_path, fmt, suffix):
    limit = 30_000 if fmt == "webdataset" else 12_000
    one = cf.run(photo_folder, tmp_path / "one", cf.Options(distance=4.0, fmt=fmt, shard_size=limit),
                 processes=1, progress=False, chunk=1)
    two = cf.run(photo_folder, tmp_path / "two", cf.Options(distance=4.0, fmt=fmt, shard_size=limit),
                 processes=1, progress=False, chunk=5)
    files = shard_files(tmp_path / "one", suffix)
    assert len(files) > 1 and one.shards == [f.name for f in files] == two.shards
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in shard_files(tmp_path / "two", suffix)]
    assert all(f.stat().st_size <= limit for f in files)
    assert (tmp_path / "one" / "classes.txt").read_text().split() == ["a", "b"]
    rows = manifest_rows(tmp_path / "one")
    if fmt == "parquet":
        tables = [pq.read_table(f) for f in files]
        ids = [i for t in tables for i in t.column("image").combine_chunks().field("path").to_pylist()]
        labels = [lab for t in tables for lab in t.column("label").to_pylist()]
    else:
        ids, labels = [], []
        for f in files:
            with tarfile.open(f) as tar:
                names = tar.getnames()
                keys = [n.rsplit(".", 1)[0] for n in names[::3]]
                assert names == [f"{k}.{e}" for k in keys for e in ("jxl", "cls", "json")]  # the WebDataset layout
                assert keys == sorted(keys) and all("." not in k.rsplit("/", 1)[-1] for k in keys)
                for k in keys:
                    meta = json.loads(tar.extractfile(f"{k}.json").read())
                    assert int(tar.extractfile(f"{k}.cls").read()) == meta["label"]
                    assert meta["class"] == ["a", "b"][meta["label"]]
                    assert tar.extractfile(f"{k}.jxl").read()[:2] == b"\xff\x0a"
                    ids.append(meta["id"])
                    labels.append(meta["label"])
                assert all(m.mtime == 0 and m.uname == "" for m in tar.getmembers())
    assert ids == sorted(ids) and set(ids) == {i for i, r in rows.items() if r["status"] == "ok"}
    assert labels == [0 if i.startswith("a/") else 1 for i in ids]
    assert {rows[i]["output"] for i in ids} == {f.name for f in files}
    assert not (tmp_path / "one" / shards.PARTS).exists() and not (tmp_path / "one" / shards.SEAL).exists()
    assert shards.pattern(fmt, len(files)) in "\n".join(one.lines())
    assert one.shard_bytes == sum(f.stat().st_size for f in files) > one.total_bytes  # reported on disk


def test_an_interrupted_seal_is_finished_or_discarded_and_nothing_is_lost(photo_folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    opts = cf.Options(distance=4.0, fmt="webdataset", shard_size=30_000)
    real_apply = shards._apply

    def cut(out_, manifest):  # killed after the assignment was written, before the move
        raise KeyboardInterrupt("simulated kill during the seal")

    monkeypatch.setattr(shards, "_apply", cut)
    with pytest.raises(KeyboardInterrupt):
        cf.run(photo_folder, out, opts, processes=1, progress=False)
    assert (out / shards.SEAL / shards.ASSIGNMENT).is_file() and not shard_files(out, "tar")
    monkeypatch.setattr(shards, "_apply", real_apply)
    s = cf.run(photo_folder, out, opts, processes=1, progress=False)
    assert s.encoded_now == 0 and s.ok == OK_IN_FOLDER  # nothing encoded twice
    # cut before the assignment: the half-written seal is discarded, the parts still hold every image
    out2 = tmp_path / "out2"
    real_write = shards.write_tar
    calls = {"n": 0}

    def cut_write(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill while writing a shard")
        return real_write(*args, **kw)

    monkeypatch.setattr(shards, "write_tar", cut_write)
    with pytest.raises(KeyboardInterrupt):
        cf.run(photo_folder, out2, opts, processes=1, progress=False)
    monkeypatch.setattr(shards, "write_tar", real_write)
    s2 = cf.run(photo_folder, out2, opts, processes=1, progress=False)
    assert s2.encoded_now == 0 and s2.ok == OK_IN_FOLDER
    for a, b in zip(shard_files(out, "tar"), shard_files(out2, "tar")):
        assert a.read_bytes() == b.read_bytes()
    assert not (out2 / shards.SEAL).exists()


def test_a_resumed_run_reseals_old_shards_with_new_images(photo_folder, tmp_path):
    out = tmp_path / "out"
    big = photo_folder / "b" / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(big)
    opts = cf.Options(distance=4.0, fmt="parquet", shard_size=20_000)
    first = cf.run(photo_folder, out, opts, processes=1, progress=False, limits=images.Limits(max_pixels=15_000))
    assert "b/big.png" in dict(first.skipped)
    second = cf.run(photo_folder, out, opts, processes=1, progress=False, limits=images.Limits(max_pixels=10 ** 6))
    assert second.encoded_now == 1 and second.ok == OK_IN_FOLDER + 1
    table = pa.concat_tables([pq.read_table(f) for f in shard_files(out, "parquet")])
    ids = table.column("image").combine_chunks().field("path").to_pylist()
    assert ids == sorted(ids) and len(ids) == OK_IN_FOLDER + 1 and "b/big.png" in ids
    assert sorted(f.name for f in shard_files(out, "parquet")) == second.shards  # old names gone


def test_old_single_pack_outputs_are_resealed(photo_folder, tmp_path):
    """An OUT written by an earlier version (one images.parquet) resumes into shards."""
    out = tmp_path / "out"
    cf.run(photo_folder, out, cf.Options(distance=4.0, fmt="parquet"), processes=1, progress=False)
    (only,) = shard_files(out, "parquet")
    only.rename(out / shards.OLD_PACK)
    rows = list(manifest_rows(out).values())
    cf.Manifest(out / cf.MANIFEST).rewrite([{**r, "output": shards.OLD_PACK if r["status"] == "ok" else ""}
                                            for r in rows])
    settings = json.loads((out / cf.SETTINGS).read_text())
    settings.pop("shard_size")  # not recorded then: taken as the default
    (out / cf.SETTINGS).write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="shard_size"):  # another shard size is another setting
        cf.run(photo_folder, out, cf.Options(distance=4.0, fmt="parquet", shard_size=1e6), processes=1,
               progress=False)
    s = cf.run(photo_folder, out, cf.Options(distance=4.0, fmt="parquet"), processes=1, progress=False)
    assert s.encoded_now == 0 and not (out / shards.OLD_PACK).exists() and len(shard_files(out, "parquet")) == 1


# ---------------------------------------------------------------- --max-side ----------------------


def test_max_side_shrinks_larger_images_only_and_is_a_setting(photo_folder, tmp_path):
    out = tmp_path / "out"
    s = cf.run(photo_folder, out, cf.Options(distance=2.0, max_side=48), processes=1, progress=False)
    rows = manifest_rows(out)
    for i, pixels in decoded_outputs(out).items():
        source, _ = images.to_rgb8((photo_folder / i).read_bytes())
        h, w = source.shape[:2]
        if max(h, w) <= 48:
            assert pixels.shape == source.shape and images.RESIZED not in rows[i]["notes"]
        else:
            assert max(pixels.shape[:2]) == 48 and images.RESIZED in rows[i]["notes"]
            assert abs(pixels.shape[1] / pixels.shape[0] - w / h) < 0.05  # the aspect ratio kept
        assert pixels.shape[:2] == (int(rows[i]["height"]), int(rows[i]["width"]))
    assert s.notes[images.RESIZED] == OK_IN_FOLDER - 1  # all but deep.png, 40x40
    with pytest.raises(ValueError, match="max_side"):
        cf.run(photo_folder, out, cf.Options(distance=2.0, max_side=64), processes=1, progress=False)


def test_max_side_is_measured_by_the_plan_too(photo_folder):
    from storage_scaling.practice import plan

    found = images.open_images(photo_folder)
    task = plan.SizeTask([found.items[0].id], found.read_many(found.items[:1]), [4.0], 7, max_side=32)
    (row,) = plan.measure_chunk(task)
    assert row["pixels"] <= 32 * 32 and images.RESIZED in row["notes"]


# ---------------------------------------------------------------- --keep ---------------------------


def subset_law(tmp_path):
    truth = law.LawParams(A=0.6, alpha=0.4, B=10.0, beta=0.7, E=0.02)
    runs = law.synthetic_grid(truth, [2, 4, 8, 16, 32], [150, 300, 600, 1200, 2400], noise=0.01, seeds=2,
                              rng_seed=1)
    data = law.law_data(runs, with_floor=True)
    return laws.from_fit(law.fit_robust(data, with_floor=True), data, label="test law", source="synthetic").save(
        tmp_path / "law.json")


def budget_run(photo_folder, out, law_file, keep, capsys):
    rc = cli.main(["compress", str(photo_folder), str(out), "--budget", "6kB", "--law", str(law_file),
                   "--processes", "1", "--bootstrap", "0", "--distances", "1", "2", "4", "8", "15", "--keep", keep])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return [i for i, r in manifest_rows(out).items() if r["status"] == "ok"]


def test_keep_stratified_random_or_a_list(photo_folder, tmp_path, capsys):
    law_file = subset_law(tmp_path)
    stratified = budget_run(photo_folder, tmp_path / "s", law_file, "stratified", capsys)
    randomly = budget_run(photo_folder, tmp_path / "r", law_file, "random", capsys)
    assert len(stratified) == len(randomly) < OK_IN_FOLDER
    per_class = [sum(i.startswith(c) for i in stratified) for c in ("a/", "b/")]
    assert abs(per_class[0] - per_class[1]) <= 1  # the two classes keep their (equal) shares
    assert stratified != randomly
    wanted = ["b/rocket2.jpg", "b/rocket1.jpg", str(photo_folder / "b" / "rocket0.jpg"), "b/coffee2.jpg",
              "b/coffee1.jpg", "b/coffee0.jpg", "b/grey.png", "b/alpha.png", "a/chelsea2.jpg", "a/chelsea1.jpg",
              "a/chelsea0.jpg", "a/astronaut2.jpg", "a/astronaut1.jpg", "a/astronaut0.jpg"]
    listing = tmp_path / "keep.txt"
    listing.write_text("# most wanted first\n" + "\n".join(wanted) + "\n")
    listed = budget_run(photo_folder, tmp_path / "l", law_file, str(listing), capsys)
    n = len(listed)
    firsts = {w if "/" in w and not w.startswith("/") else "b/rocket0.jpg" for w in wanted[:n]}
    assert set(listed) == firsts  # the first n of the list, in its order of priority


def test_keep_a_list_with_a_distance_writes_only_those(photo_folder, tmp_path):
    listing = tmp_path / "keep.txt"
    listing.write_text("a/chelsea0.jpg\nb/grey.png\n")
    s = cf.run(photo_folder, tmp_path / "out", cf.Options(distance=4.0, keep=str(listing)), processes=1,
               progress=False)
    assert s.ok == 2 and set(manifest_rows(tmp_path / "out")) == {"a/chelsea0.jpg", "b/grey.png"}
    keep_ids = cf.read_keep_list(listing, images.open_images(photo_folder))
    assert cf.select(images.open_images(photo_folder), 1, 0, listed=keep_ids) == ["a/chelsea0.jpg"]


@pytest.mark.parametrize("args,message", [
    (["--distance", "4", "--keep", "stratified"], "--keep stratified chooses which images --budget keeps"),
    (["--distance", "4", "--keep", "NOFILE"], "cannot read it"),
    (["--original", "--max-side", "64"], "choose one"),
    (["--distance", "4", "--shard-size", "1MB"], "--shard-size goes with --format parquet or webdataset"),
    (["--distance", "4", "--format", "parquet", "--shard-size", "-1MB"], "--shard-size must be a positive size"),
    (["--distance", "4", "--max-side", "2"], "--max-side must be"),
    (["--distance", "4", "--staging", "x"], "--staging goes with a remote OUT"),
])
def test_bad_output_options_are_one_line_before_any_work(photo_folder, tmp_path, capsys, args, message):
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--processes", "1", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_keep_errors_name_the_problem(photo_folder, tmp_path, capsys):
    listing = tmp_path / "keep.txt"
    listing.write_text("a/chelsea0.jpg\nnot/there.jpg\n")
    rc = cli.main(["compress", str(photo_folder), str(tmp_path / "out"), "--distance", "4", "--keep", str(listing)])
    err = capsys.readouterr().err
    assert rc == 2 and "line 2: not/there.jpg" in err and len(err.strip().splitlines()) == 1
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.jpg").write_bytes((photo_folder / "a" / "chelsea0.jpg").read_bytes())
    rc = cli.main(["compress", str(flat), str(tmp_path / "out"), "--budget", "6kB", "--keep", "stratified"])
    err = capsys.readouterr().err
    assert rc == 2 and "--keep stratified needs classes" in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- remote storage (fsspec) ---------


@pytest.fixture
def memory_photos(tmp_path):
    """The photo folder (without the awkward files) copied into fsspec's memory filesystem."""
    import fsspec

    folder = write_photo_folder(tmp_path / "photos", per_class=2, bad_files=False)
    fs = fsspec.filesystem("memory")
    root = f"/photos-{tmp_path.name}"
    for f in sorted(folder.rglob("*.jpg")):
        fs.pipe(f"{root}/{f.relative_to(folder).as_posix()}", f.read_bytes())
    yield folder, f"memory://{root}", fs
    fs.rm(root, recursive=True)


def test_remote_input_and_output_through_fsspec(memory_photos, tmp_path):
    folder, url, fs = memory_photos
    out_url = url + "-out"
    local = cf.run(folder, tmp_path / "local", cf.Options(distance=4.0, fmt="webdataset"), processes=1,
                   progress=False)
    s = cf.run(url, out_url, cf.Options(distance=4.0, fmt="webdataset"), processes=1, progress=False,
               staging=tmp_path / "staging")
    assert s.ok == local.ok == 8 and s.remote == out_url and s.uploaded == 5
    remote_names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(out_url.removeprefix("memory://"), detail=False))
    assert remote_names == ["classes.txt", cf.SETTINGS, "images-00000-of-00001.tar", cf.MANIFEST, cf.REPORT]
    assert fs.cat(out_url + "/images-00000-of-00001.tar") == \
        (tmp_path / "local" / "images-00000-of-00001.tar").read_bytes()  # the same bytes as a local run
    # a re-run resumes from the staging folder: nothing encoded, only the small files copied again
    again = cf.run(url, out_url, cf.Options(distance=4.0, fmt="webdataset"), processes=1, progress=False,
                   staging=tmp_path / "staging")
    assert again.encoded_now == 0 and again.uploaded == 3
    # the loader streams it back from the URL
    labels = sorted(label for _, label in loader.ShardStream(out_url))
    assert labels == [0] * 4 + [1] * 4
    # a remote OUT that holds something else, or a compression from another staging folder: refused
    with pytest.raises(ValueError, match="another staging folder"):
        cf.run(url, out_url, cf.Options(distance=4.0, fmt="webdataset"), processes=1, progress=False,
               staging=tmp_path / "elsewhere")
    fs.pipe(url + "-other/thesis.tex", b"mine")
    with pytest.raises(ValueError, match="thesis.tex"):
        cf.run(url, url + "-other", cf.Options(distance=4.0), processes=1, progress=False,
               staging=tmp_path / "s3")
    fs.rm(url.removeprefix("memory://") + "-other", recursive=True)
    fs.rm(out_url.removeprefix("memory://"), recursive=True)


def test_lists_of_urls_and_file_urls_are_read(memory_photos, tmp_path):
    folder, url, _ = memory_photos
    listing = tmp_path / "files.txt"
    listing.write_text(f"{url}/a/astronaut0.jpg\n{url}/b/coffee1.jpg\nfile://{folder / 'a' / 'chelsea1.jpg'}\n")
    found = images.open_images(listing)
    by_id = {it.id: it for it in found.items}
    assert found.read(by_id[f"{url}/a/astronaut0.jpg"]) == (folder / "a" / "astronaut0.jpg").read_bytes()
    s = cf.run(f"file://{listing}", f"file://{tmp_path / 'out'}", cf.Options(distance=4.0), processes=1,
               progress=False)
    assert s.ok == 3 and (tmp_path / "out" / cf.MANIFEST).is_file()
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.jxl"))
    assert len(written) == 3 and not any(w.startswith("/") or ".." in w for w in written)
    listing.write_text(f"{url}/a/missing.jpg\n")
    with pytest.raises(ValueError, match="do not exist"):
        images.open_images(listing)


def test_urls_fsspec_cannot_open_are_one_clear_line(photo_folder, tmp_path, capsys):
    rc = cli.main(["compress", "nosuchproto://bucket/photos", str(tmp_path / "out"), "--distance", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "fsspec cannot open nosuchproto://" in err and len(err.strip().splitlines()) == 1
    rc = cli.main(["compress", str(photo_folder), "nosuchproto://bucket/out", "--distance", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and "OUT nosuchproto://bucket/out" in err
    with pytest.raises(ValueError, match="pip install"):
        remote.filesystem("s3://bucket/x") if not _installed("s3fs") else pytest.skip("s3fs is installed")


def _installed(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ---------------------------------------------------------------- the loader ----------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The photo folder compressed at d = 3 in the three formats (shards small enough to be several)."""
    root = tmp_path_factory.mktemp("loader")
    folder = write_photo_folder(root / "photos", bad_files=False)
    outs = {}
    for fmt in cf.FORMATS:
        size = {"jxl": None, "parquet": 6_000, "webdataset": 20_480}[fmt]
        cf.run(folder, root / fmt, cf.Options(distance=3.0, fmt=fmt, shard_size=size), processes=1, progress=False)
        outs[fmt] = root / fmt
    return folder, outs


def expected(folder):
    """Pixels (as stored) and label of every image, by id, from the jxl files."""
    return decoded_outputs(folder)


@pytest.mark.parametrize("fmt", cf.FORMATS)
def test_compressed_images_gives_every_image_and_label_once(written, fmt):
    import torch

    _, outs = written
    truth = expected(outs["jxl"])
    ds = loader.CompressedImages(outs[fmt])
    assert len(ds) == len(truth) == 12 and ds.classes == ["a", "b"]
    seen = sorted((tuple(ds[k][0].shape), ds[k][1], ds[k][0].numpy().tobytes()) for k in range(len(ds)))
    want = sorted(((3,) + p.shape[:2], 0 if i.startswith("a/") else 1, p.transpose(2, 0, 1).tobytes())
                  for i, p in truth.items())
    assert seen == want
    assert ds[0][0].dtype == torch.uint8


@pytest.mark.parametrize("fmt", cf.FORMATS)
def test_a_dataloader_with_workers_sees_each_image_once_per_epoch(written, fmt):
    import torch
    from torch.utils.data import DataLoader

    _, outs = written

    def crop(image):
        return image[:, :32, :32].to(torch.float32) / 255

    stream = loader.ShardStream(outs[fmt], transform=crop, shuffle=True, buffer=4, seed=1)
    batches = list(DataLoader(stream, batch_size=5, num_workers=2))
    images_, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert images_.shape == (12, 3, 32, 32) and sorted(labels.tolist()) == [0] * 6 + [1] * 6
    assert len({x.numpy().tobytes() for x in images_}) == 12  # each image once
    mapped = DataLoader(loader.CompressedImages(outs[fmt], transform=crop), batch_size=4, shuffle=True,
                        num_workers=0)
    assert sum(len(b[1]) for b in mapped) == 12


def test_loader_reads_single_shards_lists_and_refuses_other_things(written, tmp_path):
    _, outs = written
    tars = shard_files(outs["webdataset"], "tar")
    assert len(tars) > 1
    assert len(loader.CompressedImages([str(t) for t in tars])) == 12
    assert len(loader.CompressedImages(tars[0])) < 12
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images written by storage-scaling compress"):
        loader.CompressedImages(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        loader.CompressedImages(tmp_path / "nowhere")


def test_decode_reads_jxl_and_what_original_kept():
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    jxl = codecs.encode(pixels, "jxl", 1.0)
    assert loader.decode(jxl).shape == (20, 30, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert np.array_equal(loader.decode(buffer.getvalue()), pixels)


def test_hugging_face_datasets_example(written):
    datasets = pytest.importorskip("datasets")
    _, outs = written
    ds = datasets.load_dataset("parquet", data_files=str(outs["parquet"] / "images-*.parquet"), split="train")
    ds = ds.with_transform(lambda batch: {"pixels": [loader.decode(x["bytes"]) for x in batch["image"]],
                                          "label": batch["label"]})
    assert len(ds) == 12 and ds[0]["pixels"].ndim == 3 and ds[0]["label"] in (0, 1)


# ---------------------------------------------------------------- the tutorial's images ------------


def test_tutorial_runs_on_scikit_image_photos_without_the_data(tmp_path, monkeypatch):
    from storage_scaling.practice import tutorial

    monkeypatch.setattr(tutorial.paths, "data_root", lambda: None)
    source = tutorial.prepare_images(tmp_path / "photos")
    found = images.open_images(source.folder)
    assert not source.real and found.labelled and found.classes == sorted(tutorial.PSEUDO_CLASSES)
    assert len(found) == source.images == 18 and "../shared/data is absent" in source.note


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data")
def test_tutorial_takes_a_stratified_subset_of_the_originals(tmp_path):
    from storage_scaling.practice import tutorial

    source = tutorial.prepare_images(tmp_path / "photos", images=12)
    found = images.open_images(source.folder)
    assert source.real and len(found) == 12 and len(found.classes) == 3
    assert sorted(np.bincount([it.label for it in found.items]).tolist()) == [4, 4, 4]
    assert "smoke profile" in source.note
