"""Compressed stores: written once, reused, exact bytes, pixels cached, size tables, no partial files."""

import numpy as np
import pytest

from storage_scaling import data, paths

from storage_scaling.compress import budget, codecs, store


def _imageset(n=6, dataset="toy"):
    import imagecodecs
    from skimage import data as skd

    base = [skd.astronaut()[::8, ::8], skd.chelsea()[::5, ::5][:56, :56], skd.coffee()[::6, ::6][:56, :56]]
    images = [np.ascontiguousarray(np.roll(base[k % 3][:48, :48], 7 * k, axis=1)) for k in range(n)]
    encoded = [bytes(imagecodecs.jpeg8_encode(im, level=85)) for im in images]
    ids = np.asarray([f"cls/{k:03d}.jpg" for k in range(n)], dtype=object)
    return data.ImageSet(dataset, "train", encoded, np.arange(n) % 3, ids, ["a", "b", "c"])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(folder))
    return folder


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_store_bytes_are_the_encoded_bytes_and_are_reused(cache, monkeypatch):
    s = _imageset()
    entry = store.compress(s, "jxl", 4.0, workers=2, backend="thread", progress=False)
    direct = [codecs.encode(codecs.decode(b), "jxl", 4.0) for b in s.encoded]
    assert entry.bitstreams == direct
    assert np.array_equal(entry.sizes, [len(b) for b in direct])
    assert entry.total_bytes == sum(len(b) for b in direct)
    assert entry.path.is_file() and entry.path.parent.is_relative_to(cache)
    with np.load(entry.path) as z:  # the bytes counted equal the bytes stored
        assert z["offsets"][-1] == entry.total_bytes == z["data"].size
    assert list(entry.ids) == list(s.ids) and np.array_equal(entry.labels, s.labels)

    def boom(*a, **k):
        raise AssertionError("re-encoded a store that exists")

    monkeypatch.setattr(codecs, "encode_many", boom)
    again = store.compress(s, "jxl", 4.0, progress=False)
    assert again.bitstreams == entry.bitstreams and again.path == entry.path
    with pytest.raises(AssertionError):  # a different setting is a different store
        store.compress(s, "jxl", 5.0, progress=False)


def test_pixels_are_decoded_once_and_cached(cache, monkeypatch):
    s = _imageset(4)
    entry = store.compress(s, "jxl", 2.0, backend="serial", progress=False)
    pixels = entry.pixels()
    assert pixels.shape == (4, 48, 48, 3) and pixels.dtype == np.uint8
    assert np.array_equal(pixels[1], codecs.decode(entry.bitstreams[1]))
    assert entry.pixels_path.is_file()
    monkeypatch.setattr(codecs, "decode_many", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    fresh = store.compress(s, "jxl", 2.0, progress=False)
    assert np.array_equal(fresh.pixels(), pixels)


def test_original_and_transcode(cache):
    s = _imageset(3)
    orig = store.compress(s, "original", progress=False)
    assert orig.bitstreams == s.encoded and orig.total_bytes == int(s.stored_bytes.sum())
    assert np.array_equal(orig.pixels(), s.decode())
    tr = store.compress(s, "jxl-transcode", backend="serial", progress=False)
    assert tr.setting is None and all(codecs.sniff(b) == "jxl" for b in tr.bitstreams)


def test_per_image_distances(cache):
    s = _imageset(6)
    d = np.array([0.5, 1.0, 3.0, 6.5, 12.0, 25.0])
    entry = store.compress(s, "jxl", d, backend="serial", progress=False)
    assert np.array_equal(entry.setting, d) and "img" in entry.path.name
    pixels = [codecs.decode(b) for b in s.encoded]
    assert entry.bitstreams == [codecs.encode(p, "jxl", x) for p, x in zip(pixels, d)]
    same = store.compress(s, "jxl", np.full(6, 3.0), backend="serial", progress=False)
    scalar = store.compress(s, "jxl", 3.0, progress=False)
    assert same.path == scalar.path  # a constant array is the scalar store
    with pytest.raises(ValueError, match="has 5 entries but there are 6 images"):
        store.compress(s, "jxl", d[:5], progress=False)


def test_bad_inputs_raise_before_work_and_leave_no_store(cache):
    s = _imageset(4, dataset="toyset")
    with pytest.raises(ValueError, match="unknown codec 'jxll'"):
        store.compress(s, "jxll", 1.0)
    with pytest.raises(ValueError, match="distance 30 is outside"):
        store.compress(s, "jxl", 30.0)
    with pytest.raises(ValueError, match="distance -1 is outside"):
        store.compress(s, "jxl", np.array([1.0, -1.0, 2.0, 3.0]))
    truncated = list(s.encoded)
    truncated[3] = truncated[3][:-40]
    bad = data.ImageSet("toyset", "train", truncated, s.labels, s.ids, s.classes)
    with pytest.raises(ValueError, match=r"image 'cls/003.jpg' of dataset 'toyset' is a truncated"):
        store.compress(bad, "jxl", 1.0, progress=False)
    with pytest.raises(ValueError, match=r"image 'cls/003.jpg' of dataset 'toyset' is a truncated"):
        store.size_table(bad, progress=False)
    corrupt = list(s.encoded)
    corrupt[2] = b"\xff\xd8" + b"\x12" * 300 + b"\xff\xd9"
    bad = data.ImageSet("toyset", "train", corrupt, s.labels, s.ids, s.classes)
    with pytest.raises(ValueError, match=r"image 'cls/002.jpg' of dataset 'toyset' could not be decoded"):
        store.compress(bad, "jxl", 1.0, workers=2, backend="process", progress=False)
    assert _files(cache) == []  # no partial store, no temp file


def test_size_table_is_lazy_exact_and_interpolates(cache, monkeypatch):
    s = _imageset(6)
    grid = np.arange(0.5, 8.001, 0.5)
    calls = []
    real = codecs.encode_sizes_at

    def spy(images, *a, **k):
        calls.append(list(images.ids))
        return real(images, *a, **k)

    monkeypatch.setattr(codecs, "encode_sizes_at", spy)
    first, g = store.size_table(s.subset([0, 1, 2]), grid, backend="serial", progress=False)
    assert first.shape == (3, len(grid)) and first.dtype == np.int64 and np.array_equal(g, grid)
    table, _ = store.size_table(s.subset([4, 2, 0, 5]), grid, backend="serial", progress=False)
    assert calls == [list(s.ids[[0, 1, 2]]), list(s.ids[[4, 5]])]  # only the missing images
    assert np.array_equal(table[1], first[2]) and np.array_equal(table[2], first[0])
    store.size_table(s.subset([5, 4]), grid, progress=False)
    assert len(calls) == 2  # nothing new to encode

    pixels = codecs.decode(s.encoded[4])
    assert table[0, 3] == len(codecs.encode(pixels, "jxl", grid[3]))  # exact at grid points
    est = budget.interpolate_sizes(table, grid, grid[3])
    assert est[0] == pytest.approx(table[0, 3])
    d = np.array([1.3, 2.6, 3.9, 6.7])  # between grid points: close to the real sizes
    est = budget.interpolate_sizes(table, grid, d)
    real_sizes = [len(codecs.encode(codecs.decode(s.encoded[k]), "jxl", x)) for k, x in zip([4, 2, 0, 5], d)]
    assert np.allclose(est, real_sizes, rtol=0.06)
    with pytest.raises(ValueError, match="outside the size table's grid"):
        budget.interpolate_sizes(table, grid, 9.0)
    with pytest.raises(ValueError, match="one distance per image"):
        budget.interpolate_sizes(table, grid, np.ones(3))


def _crops(n: int, size: int = 32, seed: int = 0) -> data.ImageSet:
    """``n`` JPEG crops of scikit-image's photos: sizes that differ from image to image."""
    import imagecodecs
    from skimage import data as skd

    rng = np.random.default_rng(seed)
    photos = [skd.astronaut(), skd.chelsea(), skd.coffee()]
    images = []
    for k in range(n):
        p = photos[k % 3]
        y, x = rng.integers(0, p.shape[0] - 4 * size), rng.integers(0, p.shape[1] - 4 * size)
        images.append(np.ascontiguousarray(p[y:y + 4 * size:4, x:x + 4 * size:4, :3]))
    encoded = [bytes(imagecodecs.jpeg8_encode(im, level=90)) for im in images]
    ids = np.asarray([f"crop/{k:03d}.jpg" for k in range(n)], dtype=object)
    return data.ImageSet("crops", "train", encoded, np.arange(n) % 3, ids, ["a", "b", "c"])


def test_a_lazy_table_reads_the_full_tables_entries_and_encodes_only_those(cache):
    s = _crops(8)
    grid = np.arange(0.5, 6.001, 0.5)
    lazy = store.lazy_size_table(s, grid, backend="serial", progress=False)
    picked = lazy.take([0, 3, 3, 7], [2, 5, 5, 11])
    assert lazy.encoded == 3  # (3, 5) once, though read twice
    full, _ = store.size_table(s, grid, backend="serial", progress=False)  # fills the rest: 8 x 12 - 3 entries
    assert np.array_equal(picked, full[[0, 3, 3, 7], [2, 5, 5, 11]])
    assert full[3, 5] == len(codecs.encode(codecs.decode(s.encoded[3]), "jxl", grid[5]))
    again = store.lazy_size_table(s.subset([7, 3]), grid, backend="serial", progress=False)
    assert np.array_equal(again.take([0, 1], [11, 2]), full[[7, 3], [11, 2]]) and again.encoded == 0
    # pickled for a worker: without a source it carries its images, with one it rebuilds them
    import pickle
    from functools import partial

    kept = pickle.loads(pickle.dumps(store.lazy_size_table(s, grid, backend="serial", progress=False)))
    assert kept.imageset is not None and np.array_equal(kept.full(), full)
    light = store.lazy_size_table(s, grid, backend="serial", progress=False, source=partial(_crops, 8))
    sent = pickle.loads(pickle.dumps(light))
    assert sent.imageset is None and np.array_equal(sent.full(), full) and sent.encoded == 0


def test_budget_searches_give_the_same_answers_on_a_lazy_table_for_a_fraction_of_the_encodes(cache):
    s = _crops(30)
    grid = store.DEFAULT_GRID
    full, _ = store.size_table(s, grid, backend="serial", progress=False, cache_dir=cache / "full")
    originals = s.stored_bytes.astype(float)
    lazy = lambda: store.lazy_size_table(s, grid, backend="serial", progress=False,  # noqa: E731
                                         cache_dir=cache / "lazy")
    for share in (0.2, 0.5):
        target = share * full[:, 0].sum()
        table = lazy()
        assert budget.distance_for_budget(table, grid, target) == budget.distance_for_budget(full, grid, target)
        assert 0 < table.encoded < 0.4 * full.size
    table = lazy()
    assert budget.zero_gain_distance(table, grid, originals) == budget.zero_gain_distance(full, grid, originals)
    ranks = budget.permutation_ranks(len(s), 2024)
    for share in (0.3, 0.6):
        target = share * full[:, 0].sum()
        on_full = budget.randomized_range_for_budget(full, grid, target, ranks, (0.5, 15.0), 1.0, originals)
        on_lazy = budget.randomized_range_for_budget(lazy(), grid, target, ranks, (0.5, 15.0), 1.0, originals)
        assert (on_lazy.d_min, on_lazy.d_max, on_lazy.estimated_bytes) == (on_full.d_min, on_full.d_max,
                                                                           on_full.estimated_bytes)
        assert np.array_equal(on_lazy.distances, on_full.distances)
    assert len(list((cache / "lazy").rglob("part-*.npz"))) > 0


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")
def test_real_food101_store(cache):
    s = data.load("food101-64px", "train").subset(np.arange(24))
    entry = store.compress(s, "jxl", 10.0, backend="serial", progress=False)
    assert entry.pixels().shape == (24, 64, 64, 3)
    assert 100 < entry.mean_bytes < s.stored_bytes.mean()


def test_setting_tags_are_exact():
    assert store.setting_tag("jxl", np.array([4.0])) == "d4"
    a = store.setting_tag("jxl", np.array([2.3788812]))
    b = store.setting_tag("jxl", np.array([2.3788814]))
    assert a != b and float(a[1:]) == 2.3788812
    assert store.setting_tag("jpeg", np.array([75.0])) == "q75"
    assert store.setting_tag("jxl", np.array([1.0, 2.0])).startswith("img")
