"""Chapter 1's compression tables: computed on tiny synthetic pools and checked by hand."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage_scaling import cli, data, paths, tables

from storage_scaling.compress import codecs
from storage_scaling.compress import compression_tables as ct

ROOT = Path(__file__).resolve().parents[1]
SIZES = {**ct.SIZE_PARAMS, "limit": ct.FULL_LIMITS}
RD = {"sets": {"food101-64px": 4, "food101-originals": 2}, "settings": {"jxl": [1, 4, 15], "jpeg": [30, 90]},
      "effort": ct.EFFORT, "seed": 0}
CAP = {**ct.CAP_FULL}


def _jpegs(side: int, n: int, seed: int) -> list[bytes]:
    """Real photo crops (scikit-image), shifted so every file differs, as JPEG quality 75."""
    import imagecodecs
    from skimage import data as skd

    photos = [skd.astronaut(), skd.chelsea(), skd.coffee()]
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        photo = photos[k % 3]
        y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        out.append(bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(photo[y:y + side, x:x + side]), level=75)))
    return out


def _pool(dataset: str, split: str, side: int, n: int, seed: int) -> data.ImageSet:
    ids = np.asarray([f"{dataset}/{k:03d}.jpg" for k in range(n)], dtype=object)
    return data.ImageSet(dataset, split, _jpegs(side, n, seed), np.arange(n) % 2, ids, ["a", "b"])


def _png_pool(dataset: str, split: str, side: int, n: int, seed: int) -> data.ImageSet:
    """Lossless PNG crops of the same photos (CamVid's stand-in), 3:4 like its scenes."""
    import imagecodecs

    pixels = [codecs.decode(b) for b in _jpegs(side, n, seed)]
    encoded = [bytes(imagecodecs.png_encode(np.ascontiguousarray(p[: side * 3 // 4]))) for p in pixels]
    ids = np.asarray([f"{dataset}/{k:03d}.png" for k in range(n)], dtype=object)
    return data.ImageSet(dataset, split, encoded, np.zeros(n, np.int64), ids, ["a", "b"])


POOLS = {"food101-64px": ("train", 64, 10), "food101-originals": ("sample", 256, 3), "cifar10-jpg": ("train", 32, 8),
         "camvid-240x180": ("train", 48, 4)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The four tables on tiny pools (encodes in a temporary cache, one worker)."""
    pools = {ds: (_png_pool if ds in ct.PNG_DATASETS else _pool)(ds, split, side, n, seed)
             for seed, (ds, (split, side, n)) in enumerate(POOLS.items())}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paths.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        mp.setattr(ct, "image_pool", lambda dataset, limit=None: pools[dataset])
        frames = {"compression_sizes": ct.compute_sizes(dict(SIZES), workers=1),
                  "compression_headers": ct.compute_headers(dict(SIZES), workers=1),
                  "compression_rd": ct.compute_rd(dict(RD), workers=1),
                  "compression_capacity": ct.compute_capacity(dict(CAP), workers=1)}
    loaded = {name: tables.ProfileTable(name, frame, "smoke", {"seconds": 1.5}) for name, frame in frames.items()}
    return pools, frames, loaded


def _jxl_sizes(images: data.ImageSet, d: float) -> np.ndarray:
    return np.asarray([len(codecs.encode(codecs.decode(b), "jxl", float(d), effort=ct.EFFORT))
                       for b in images.encoded], dtype=float)


def test_sizes_table_means_are_the_means_of_the_encoded_sizes(tiny):
    pools, frames, _ = tiny
    sizes = frames["compression_sizes"]
    for ds, images in pools.items():
        rows = sizes[sizes.dataset == ds].set_index(["scheme", "distance"], drop=False)
        side, png = POOLS[ds][1], ds in ct.PNG_DATASETS
        if png:  # a PNG original: the stored file and its lossless JPEG XL encode, the same pixels
            assert set(rows.scheme) == {"stored-png", "jxl-lossless", "jxl"}
            lossless = [len(codecs.encode(codecs.decode(b), "jxl", 0.0, effort=codecs.DEFAULT_EFFORT))
                        for b in images.encoded]
            assert rows[rows.scheme == "jxl-lossless"].iloc[0].mean_bytes == pytest.approx(np.mean(lossless))
            assert rows[rows.scheme == "stored-png"].iloc[0].mean_bytes == pytest.approx(images.stored_bytes.mean())
            assert rows.iloc[0].mean_pixels == side * (side * 3 // 4)  # read from the PNG header
            continue
        assert set(rows.scheme) == {"stored-jpeg", "jxl-transcode", "jpeg-headerless", "jxl"}
        assert sorted(rows[rows.scheme == "jxl"].distance) == SIZES["distances_by_dataset"][ds]
        stored = rows[rows.scheme == "stored-jpeg"].iloc[0]
        assert stored.mean_bytes == pytest.approx(np.mean([len(b) for b in images.encoded]))
        assert stored.split == images.split and stored.n_images == len(images)
        for d in (4.0, 15.0):
            real = _jxl_sizes(images, d)
            row = rows[(rows.scheme == "jxl") & (rows.distance == d)].iloc[0]
            assert row.mean_bytes == pytest.approx(real.mean())
            assert row.total_bytes == pytest.approx(real.sum()) and row.median_bytes == pytest.approx(np.median(real))
            assert row.bpp == pytest.approx(np.mean(8 * real / side**2))
        transcode = [len(codecs.encode(b, "jxl-transcode")) for b in images.encoded]
        assert rows[rows.scheme == "jxl-transcode"].iloc[0].mean_bytes == pytest.approx(np.mean(transcode))
        headerless = codecs.jpeg_header_accounting(images.encoded).amortized.mean()
        assert rows[rows.scheme == "jpeg-headerless"].iloc[0].mean_bytes == pytest.approx(headerless)


def test_headers_table_splits_each_file(tiny):
    pools, frames, _ = tiny
    headers = frames["compression_headers"].set_index("dataset")
    assert set(headers.index) == set(ct.JPEG_DATASETS)  # a PNG has no JPEG header to share
    for ds, images in ((ds, im) for ds, im in pools.items() if ds in ct.JPEG_DATASETS):
        h = codecs.jpeg_header_accounting(images.encoded)
        row = headers.loc[ds]
        assert row.n_images == len(images) and row.stored_mean == pytest.approx(h.stored.mean())
        assert row.shared_share == pytest.approx(np.mean(h.shared_per_image / h.stored))
        # one encoder setting at one size: the whole header is shared, the same in every file
        assert row.n_templates == 1 and 500 < row.shared_per_image_mean < row.stored_mean


def test_capacity_counts_match_a_hand_count(tiny):
    pools, frames, _ = tiny
    cap = frames["compression_capacity"]
    small, full = pools["food101-64px"], pools["food101-originals"]
    order = data.nested_order(small.labels, seed=CAP["order_seed"])
    budget = _jxl_sizes(small, 10).sum()

    def prefix(per_image, room):  # longest prefix of the order whose bytes fit
        return int(np.searchsorted(np.cumsum(np.asarray(per_image, dtype=float)[order]), room, side="right"))

    assert ct.n_fit(cap, "food101-64px", "jxl", 10.0) == len(small)  # the budget is the whole pool at d = 10
    assert ct.n_fit(cap, "food101-64px", "stored-jpeg") == prefix(small.stored_bytes, budget)
    assert ct.n_fit(cap, "food101-64px", "jxl", 2.0) == prefix(_jxl_sizes(small, 2), budget)
    h = codecs.jpeg_header_accounting(small.encoded)
    assert ct.n_fit(cap, "food101-64px", "jpeg-headerless") == prefix(h.per_image, budget - h.dictionary_bytes)
    budget_full = len(small) * _jxl_sizes(full, 10).mean()
    for scheme, mean in [("stored-jpeg", full.stored_bytes.mean()), ("jxl", _jxl_sizes(full, 4).mean())]:
        d = 4.0 if scheme == "jxl" else 0.0
        assert ct.n_fit(cap, "food101-originals", scheme, d) == min(len(small), math.floor(budget_full / mean + 1e-9))
    assert cap.budget_bytes[cap.dataset == "food101-64px"].iloc[0] == budget
    assert [n for _, n in ct.capacity_bars(cap, "food101-64px")][-1] == len(small)


def test_rd_table_has_each_codec_setting_and_ssimulacra2_only_at_full_size(tiny):
    _, frames, _ = tiny
    rd = frames["compression_rd"]
    for ds, n in RD["sets"].items():
        sub = rd[rd.dataset == ds]
        assert sorted(zip(sub.codec, sub.setting)) == sorted((c, float(s)) for c, ss in RD["settings"].items()
                                                             for s in ss)
        assert (sub.n_images == n).all()
    assert "ssimulacra2" in rd and rd[rd.dataset == "food101-64px"].ssimulacra2.isna().all()
    assert rd[rd.dataset == "food101-originals"].ssimulacra2.notna().all()
    jxl = rd[(rd.dataset == "food101-64px") & (rd.codec == "jxl")].sort_values("setting")
    assert jxl.bpp.is_monotonic_decreasing and jxl.psnr.is_monotonic_decreasing


def _chapter_keys() -> set[str]:
    text = "".join((ROOT / "book" / "chapters" / f).read_text()
                   for f in ("01_compression.md", "06_blog_fixed_budget.md"))
    return set(re.findall(r"01_compression\.ipynb::(comp_\w+)", text)) | set(
        re.findall(r"\{glue:any\} (comp_\w+)", text))


def test_chapter_numbers_cover_the_chapters_and_are_right(tiny):
    pools, frames, loaded = tiny
    numbers = ct.chapter_numbers(loaded)
    glued_by_the_notebook = {"comp_versions", "comp_photo_id", "comp_fig_sizes", "comp_fig_rd", "comp_fig_strip",
                             "comp_fig_capacity", "comp_table_compare", "comp_table_original", "comp_table_fit",
                             "comp_table_cross"}
    assert _chapter_keys() - glued_by_the_notebook <= set(numbers)
    sizes = frames["compression_sizes"]
    assert numbers["comp_L64_d4"] == pytest.approx(_jxl_sizes(pools["food101-64px"], 4).mean())
    assert numbers["comp_Lcifar_jpeg"] == pytest.approx(pools["cifar10-jpg"].stored_bytes.mean())
    assert numbers["comp_Lcamvid_png"] == pytest.approx(pools["camvid-240x180"].stored_bytes.mean())
    assert numbers["comp_losslesscamvid_ratio"] == pytest.approx(
        numbers["comp_Lcamvid_lossless"] / numbers["comp_Lcamvid_png"]) and numbers["comp_ncamvid"] == 4
    assert numbers["comp_ratio_full_d10"] == pytest.approx(
        ct.mean_bytes(sizes, "food101-originals", "jxl", 10) / 7937)  # the paper's d = 10 size, law.py
    assert numbers["comp_cap_ratio64"] == pytest.approx(
        len(pools["food101-64px"]) / ct.n_fit(frames["compression_capacity"], "food101-64px", "stored-jpeg"))
    assert numbers["comp_pixel_ratio"] == pytest.approx(256**2 / 64**2)
    assert numbers["comp_full_minutes"] == pytest.approx(4 * 1.5 / 60)
    assert numbers["comp_source"] == ct.SOURCE_TEXT["smoke"]
    fit = ct.size_fits(sizes)["food101-64px"]
    pts = sizes[(sizes.dataset == "food101-64px") & (sizes.scheme == "jxl") & sizes.distance.isin(ct.DISTANCES)]
    assert numbers["comp_fit64_err"] == pytest.approx(np.max(np.abs(fit.curve.size(pts.distance) / pts.mean_bytes - 1)))


def test_paper_fit_uses_the_papers_table():
    paper = ct.size_fits(pd.DataFrame(
        [{"dataset": ds, "scheme": "jxl", "distance": float(d), "mean_bytes": 1e4 / (0.2 * d + 1)}
         for ds in ct.DATASETS for d in ct.DISTANCES]))
    assert paper["food101-64px"].max_rel_error < 1e-6  # exact data of the curve's form
    assert 0.1 < paper[ct.PAPER_FIT].max_rel_error < 0.2  # the paper's six points are not on its curve


def test_run_tables_checks_before_work_and_writes_smoke_to_the_cache(tmp_path, monkeypatch, results_env):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(ct, "TABLES", {name: ct.TableSpec(spec.full, spec.smoke, lambda p, **k: calls.append(p)
                                                          or pd.DataFrame({"x": [1, 2]}))
                                       for name, spec in ct.TABLES.items()})
    with pytest.raises(ValueError, match="unknown compression table 'bogus'"):
        ct.run_tables(["sizes", "bogus"], "smoke")
    with pytest.raises(ValueError, match="profile must be 'full' or 'smoke'"):
        ct.run_tables(["sizes"], "publish")
    with pytest.raises(ValueError, match="workers"):
        ct.run_tables(["sizes"], "smoke", workers=0)
    assert calls == []
    written = ct.run_tables(["headers", "compression_rd"], "smoke")
    assert written == [tmp_path / "cache" / "smoke-results" / f"compression_{n}.csv" for n in ("headers", "rd")]
    meta = json.loads(written[1].with_suffix(".json").read_text())
    assert meta["params"] == json.loads(json.dumps(ct.RD_SMOKE)) and calls == [ct.SMOKE_SIZES, ct.RD_SMOKE]
    assert list(results_env.iterdir()) == []  # nothing in results/
    assert ct.run_tables(["capacity"], "full") == [results_env / "compression_capacity.csv"]
    assert json.loads((results_env / "compression_capacity.json").read_text())["params"] == json.loads(
        json.dumps(ct.CAP_FULL))


def test_cli_tables_subcommand(capsys, tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        cli.main(["tables", "--help"])
    out = capsys.readouterr().out
    assert "storage-scaling tables sizes capacity --profile full" in out and "--profile" in out
    assert cli.main(["tables", "nope", "--profile", "smoke"]) == 2
    assert "unknown compression table 'nope'" in capsys.readouterr().err
    monkeypatch.setattr(ct, "run_tables", lambda names, profile, workers=None: [tmp_path / f"{profile}-{n}.csv"
                                                                                for n in names])
    assert cli.main(["tables", "sizes", "--profile", "smoke", "--workers", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "smoke-sizes.csv")


def test_committed_params_are_the_full_params():
    """A publish build loads a committed table only when its recorded params equal these dicts."""
    for name, spec in ct.TABLES.items():
        meta = ROOT / "results" / f"{name}.json"
        assert json.loads(meta.read_text())["params"] == json.loads(json.dumps(spec.full)), name


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")
def test_pools_are_the_study_pools():
    originals = ct.image_pool("food101-originals")
    assert len(originals) == 300 and originals.split == "sample"
    assert len(ct.image_pool("food101-originals", 12)) == 12
    cifar = ct.image_pool("cifar10-jpg")
    assert len(cifar) == len(data.load_cached("cifar10-jpg", "train")) and cifar.split == "train"
    with pytest.raises(ValueError, match="no paper pool"):
        data.pool("food101-originals", "paper")
    with pytest.raises(ValueError, match="unknown dataset 'food101'"):
        ct.image_pool("food101")
