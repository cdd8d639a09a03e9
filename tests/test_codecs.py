"""Codecs: round trips, parallel == serial, per-image settings, validation, header accounting."""

import numpy as np
import pytest

from storage_scaling import data, paths

from storage_scaling.compress import codecs, quality


def _photos():
    from skimage import data as skd

    # three real photos, downscaled by striding and cropped, so tests stay fast
    return [skd.astronaut()[::8, ::8].copy(), skd.chelsea()[::5, ::5][:48, :64].copy(),
            skd.coffee()[::6, ::6][:64, :80].copy()]


@pytest.fixture(scope="module")
def photos():
    return _photos()


def _imageset(images, dataset="toy", quality_=80):
    import imagecodecs

    encoded = [bytes(imagecodecs.jpeg8_encode(im, level=quality_)) for im in images]
    ids = np.asarray([f"img{k}.jpg" for k in range(len(images))], dtype=object)
    return data.ImageSet(dataset, "train", encoded, np.arange(len(images)) % 2, ids, ["a", "b"])


def test_lossless_jxl_is_bit_exact(photos):
    for im in photos:
        out = codecs.decode(codecs.encode(im, "jxl", 0))
        assert out.dtype == np.uint8 and np.array_equal(out, im)


@pytest.mark.parametrize("codec,settings", [("jxl", [15, 4, 1]), ("jpeg", [10, 50, 90]),
                                            ("webp", [10, 50, 90]), ("avif", [10, 50, 90])])
def test_lossy_error_shrinks_as_quality_rises(photos, codec, settings):
    im = photos[0]
    psnrs, sizes = [], []
    for s in settings:
        b = codecs.encode(im, codec, s)
        assert codecs.sniff(b) == codec
        out = codecs.decode(b)
        assert out.shape == im.shape
        psnrs.append(quality.psnr(im, out))
        sizes.append(len(b))
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnrs[-1] < np.inf  # lossy really is lossy


def test_jxl_distance_zero_differs_from_libjxl_distance_zero(photos):
    import imagecodecs

    im = photos[1]
    # our d=0 is lossless=True; libjxl's distance=0 alone is not lossless
    assert np.array_equal(codecs.decode(codecs.encode(im, "jxl", 0)), im)
    plain = imagecodecs.jpegxl_decode(imagecodecs.jpegxl_encode(im, distance=0))
    assert not np.array_equal(plain, im)


def test_transcode_is_lossless_for_the_jpeg(photos):
    import imagecodecs

    s = _imageset(photos)
    for jpeg in s.encoded:
        jxl = codecs.encode(jpeg, "jxl-transcode")
        assert codecs.sniff(jxl) == "jxl"
        assert imagecodecs.jpegxl_decode_jpeg(jxl, numthreads=1) == jpeg  # the file comes back
        diff = np.abs(codecs.decode(jxl).astype(int) - codecs.decode(jpeg).astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 16  # same DCT coefficients, another upsampler


def test_parallel_equals_serial_and_per_image_settings(photos):
    s = _imageset(photos * 3)
    dist = np.array([1.0, 2.5, 4.0, 7.0, 10.0, 15.0, 0.5, 3.0, 25.0])
    serial = codecs.encode_many(s, "jxl", dist, backend="serial", progress=False)
    threads = codecs.encode_many(s, "jxl", dist, workers=2, backend="thread", progress=False, chunk_size=2)
    procs = codecs.encode_many(s, "jxl", dist, workers=2, backend="process", progress=False, chunk_size=3)
    assert serial == threads == procs
    pixels = [codecs.decode(b) for b in s.encoded]
    assert serial == [codecs.encode(p, "jxl", d) for p, d in zip(pixels, dist)]
    sizes = codecs.encode_sizes(s.subset([0, 1]), [1.0, 2.5, 4.0], backend="serial", progress=False)
    assert sizes.shape == (2, 3) and sizes[1, 1] == len(serial[1]) and sizes[1, 0] == len(
        codecs.encode(pixels[1], "jxl", 1.0))


def test_arrays_as_input(photos):
    out = codecs.encode_many(photos, "webp", 60, backend="thread", workers=2, progress=False)
    assert out == [codecs.encode(p, "webp", 60) for p in photos]


@pytest.mark.parametrize("kwargs,match", [
    ({"codec": "jpegxl"}, "unknown codec 'jpegxl'"),
    ({"setting": -0.5}, r"distance -0.5 is outside \[0.0, 25.0\]"),
    ({"setting": 25.5}, "distance 25.5 is outside"),
    ({"setting": float("nan")}, "outside"),
    ({"codec": "jpeg", "setting": 0}, "quality 0 is outside"),
    ({"effort": 11}, "effort must be an integer"),
])
def test_bad_parameters(photos, kwargs, match):
    with pytest.raises(ValueError, match=match):
        codecs.encode(photos[0], **kwargs)
    with pytest.raises(ValueError, match=match):
        codecs.encode_many(photos, **kwargs, progress=False)


def test_bad_arrays_are_named(photos):
    im = photos[0]
    for bad, what in [(im.astype(np.float32), "dtype float32"), (im[:, :, 0], "shape"),
                      (np.dstack([im, im[:, :, :1]]), "shape"), (im[:0], "shape")]:
        with pytest.raises(ValueError, match=what):
            codecs.encode(bad, "jxl", 1.0)
    with pytest.raises(ValueError, match=r"image 'b' of dataset 'mine' has shape"):
        codecs.encode_many([im, im[:, :, 0]], "jxl", 1.0, ids=["a", "b"], dataset="mine", progress=False)
    with pytest.raises(ValueError, match="per-image distance array has 2 entries but there are 3"):
        codecs.encode_many(photos, "jxl", [1.0, 2.0], progress=False)


def test_corrupt_and_truncated_files_are_named(photos):
    s = _imageset(photos, dataset="toyset")
    truncated = list(s.encoded)
    truncated[1] = truncated[1][: len(truncated[1]) // 2]
    bad = data.ImageSet("toyset", "train", truncated, s.labels, s.ids, s.classes)
    with pytest.raises(ValueError, match=r"image 'img1.jpg' of dataset 'toyset' is a truncated"):
        codecs.encode_many(bad, "jxl", 1.0, progress=False)
    garbage = list(s.encoded)
    garbage[2] = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"
    bad = data.ImageSet("toyset", "train", garbage, s.labels, s.ids, s.classes)
    with pytest.raises(ValueError, match=r"image 'img2.jpg' of dataset 'toyset' could not be decoded"):
        codecs.encode_many(bad, "jxl", 1.0, backend="serial", progress=False)
    with pytest.raises(ValueError, match="neither a JPEG nor a PNG"):
        codecs.check_source(b"GIF89a....", "x", "toyset")


def test_header_accounting_counts_every_byte(photos):
    s = _imageset(photos * 2)
    h = codecs.jpeg_header_accounting(s.encoded)
    # every byte is either the file's own or covered by the shared dictionary
    assert np.array_equal(h.per_image - h.reference_bytes + h.shared_per_image, s.stored_bytes)
    # one encoder setting: DQT + DHT + APP0 + SOS are shared; SOF differs between image sizes
    assert h.n_templates == 3 and h.reference_bytes == 1
    assert np.all(h.shared_per_image >= 400) and h.common_prefix >= 150
    assert h.amortized.mean() < s.stored_bytes.mean()
    # a segment seen once is never 'shared'
    single = codecs.jpeg_header_accounting(s.encoded[:1])
    assert single.per_image[0] == s.stored_bytes[0] - 4 and single.n_shared_segments == 0


def test_segments_rebuild_the_file(photos):
    s = _imageset(photos)
    for jpeg in s.encoded:
        parts = codecs.jpeg_segments(jpeg)
        assert b"".join(seg for _, seg in parts) == jpeg
        assert [m for m, _ in parts].count(-1) == 1  # baseline: one scan


@pytest.mark.skipif(paths.data_root() is None, reason="needs ../shared/data (offline data packs)")
def test_real_cifar_header_and_sizes():
    s = data.load("cifar10-jpg", "train").subset(np.arange(40))
    h = codecs.jpeg_header_accounting(s.encoded)
    assert 600 <= h.shared_per_image.mean() <= 650 and h.n_templates == 1
    sizes = [len(b) for b in codecs.encode_many(s, "jxl", 4.0, backend="serial", progress=False)]
    assert np.mean(sizes) < s.stored_bytes.mean()


def test_one_decoder_pillow_fallback_gives_the_same_pixels(photos, monkeypatch):
    """Stored files decode through codecs.decode; without imagecodecs Pillow reads JPEG/PNG identically."""
    import imagecodecs

    s = _imageset(photos)
    expected = [imagecodecs.jpeg8_decode(b) for b in s.encoded]
    assert all(np.array_equal(a, b) for a, b in zip(s.decode(), expected))
    jxl = codecs.encode(photos[0], "jxl", 2.0)
    monkeypatch.setattr(codecs, "_imagecodecs", lambda: None)  # a lean GPU host
    assert all(np.array_equal(codecs.decode(b), e) for b, e in zip(s.encoded, expected))
    png = imagecodecs.png_encode(photos[1])
    assert np.array_equal(codecs.decode(png), photos[1])
    with pytest.raises(ImportError, match="decoding jxl needs imagecodecs"):
        codecs.decode(jxl)
