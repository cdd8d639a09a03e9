"""Quality metrics and rate-distortion helpers."""

import numpy as np
import pandas as pd
import pytest

from storage_scaling.compress import codecs, quality


@pytest.fixture(scope="module")
def photo():
    from skimage import data as skd

    return skd.astronaut()[::2, ::2].copy()  # 256 x 256: large enough for SSIMULACRA2


def test_psnr_matches_its_definition(photo):
    rng = np.random.default_rng(0)
    noisy = np.clip(photo.astype(int) + rng.integers(-3, 4, photo.shape), 0, 255).astype(np.uint8)
    mse = np.mean((photo.astype(float) - noisy) ** 2)
    assert quality.psnr(photo, noisy) == pytest.approx(10 * np.log10(255 ** 2 / mse))
    assert quality.psnr(photo, photo) == np.inf


def test_metrics_rank_distortions(photo):
    good = codecs.decode(codecs.encode(photo, "jxl", 1.0))
    bad = codecs.decode(codecs.encode(photo, "jxl", 12.0))
    assert quality.ssim(photo, photo) == pytest.approx(1.0)
    assert quality.ssim(photo, good) > quality.ssim(photo, bad)
    assert quality.psnr(photo, good) > quality.psnr(photo, bad)
    s_good, s_bad = quality.ssimulacra2(photo, good), quality.ssimulacra2(photo, bad)
    assert quality.ssimulacra2(photo, photo) == pytest.approx(100.0)
    assert 70 < s_good < 100 and s_bad < s_good


def test_ssimulacra2_refuses_small_images(photo):
    small = photo[:64, :64]
    assert not quality.ssimulacra2_supported(small.shape)
    assert np.isnan(quality.ssimulacra2(small, small))
    assert quality.ssimulacra2_supported(photo.shape)


def test_bits_per_pixel():
    assert quality.bits_per_pixel(1024, (64, 64, 3)) == pytest.approx(2.0)
    assert np.allclose(quality.bits_per_pixel([512, 256], (32, 32)), [4.0, 2.0])


def test_metrics_refuse_mismatched_shapes(photo):
    with pytest.raises(ValueError, match="differ in shape"):
        quality.psnr(photo, photo[:10])
    with pytest.raises(ValueError, match="dtype"):
        quality.ssim(photo, photo.astype(np.float64))


def test_rate_distortion_on_a_set(photo):
    images = [photo[:64, :64].copy(), photo[64:128, 64:128].copy()]
    frame = quality.rate_distortion(images, {"jxl": [1, 4, 15], "jpeg": [30, 90]},
                                    metrics=("psnr", "ssim"), backend="serial", progress=False)
    assert len(frame) == 2 * 5 and set(frame["codec"]) == {"jxl", "jpeg"}
    assert frame["bytes"].iloc[0] == len(codecs.encode(images[0], "jxl", 1))
    summary = quality.summarize(frame, metrics=("psnr", "ssim"))
    jxl = summary[summary.codec == "jxl"].sort_values("setting")
    assert list(jxl["n_images"]) == [2, 2, 2]
    assert jxl["bpp"].is_monotonic_decreasing and jxl["psnr"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="unknown codec"):
        quality.rate_distortion(images, {"png": [1]}, progress=False)
    with pytest.raises(ValueError, match="unknown metrics"):
        quality.rate_distortion(images, {"jxl": [1]}, metrics=("vmaf",), progress=False)


def test_crossovers_find_the_swap():
    bpp = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    summary = pd.DataFrame({
        "codec": ["jxl"] * 5 + ["jpeg"] * 5, "setting": list(range(5)) * 2, "bpp": list(bpp) * 2,
        # jxl better at low rate, jpeg better at high rate; equal at 1 bpp
        "psnr": list(30 + 2 * np.log2(bpp)) + list(30 + 3 * np.log2(bpp)),
    })
    out = quality.crossovers(summary, "psnr")
    assert len(out) == 1
    assert out["bpp"].iloc[0] == pytest.approx(1.0, rel=0.02)
    assert out["better_above"].iloc[0] == "jpeg"


def test_value_at_interpolates_in_log_rate():
    summary = pd.DataFrame({"codec": ["a", "a", "b", "b"], "setting": [0, 1, 0, 1],
                            "bpp": [0.5, 2.0, 1.5, 3.0], "psnr": [30.0, 40.0, 20.0, 30.0]})
    at = quality.value_at(summary, "psnr", 1.0)
    assert list(at.index) == ["a"]  # b's range starts at 1.5 bpp: no extrapolation
    assert at["a"] == pytest.approx(35.0)
