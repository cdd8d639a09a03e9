"""How much an image lost: PSNR, SSIM, SSIMULACRA2, bits per pixel, and rate-distortion curves.

* PSNR and SSIM come from ``skimage.metrics`` (8-bit data range 255; SSIM on the three colour
  channels with the default 7x7 window, averaged) :cite:`wang2004ssim`.
* SSIMULACRA2 comes from the PyPI package ``ssimulacra2`` (a NumPy port of the reference
  implementation). Its score (100 = identical, ~90 visually lossless, ~70 high quality, ~50
  medium, ~30 low) is calibrated on six scales, halving the image five times down to at least
  8 px; a smaller image silently uses fewer scales and gives scores that are not comparable (a
  64 px Food-101 photo at JPEG XL distance 1 scores about 52 against about 90 at 512 px). So it
  is computed only when both sides are at least ``SSIMULACRA2_MIN_SIDE = 256`` px, and is NaN
  otherwise.
* Bits per pixel = 8 * bytes / (height * width).

:func:`rate_distortion` encodes a set of images with several codecs and settings and measures
everything; :func:`summarize` averages per codec and setting; :func:`crossovers` says at which
rate one codec overtakes another.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import codecs

SSIMULACRA2_MIN_SIDE = 256
METRICS = ("psnr", "ssim", "ssimulacra2")


def _pair(reference, distorted) -> tuple[np.ndarray, np.ndarray]:
    reference = codecs.check_image(np.asarray(reference))
    distorted = codecs.check_image(np.asarray(distorted))
    if reference.shape != distorted.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {distorted.shape}")
    return reference, distorted


def psnr(reference, distorted) -> float:
    """Peak signal-to-noise ratio in dB over all three channels (inf when identical)."""
    from skimage.metrics import peak_signal_noise_ratio

    reference, distorted = _pair(reference, distorted)
    if np.array_equal(reference, distorted):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, distorted, data_range=255))


def ssim(reference, distorted) -> float:
    """Structural similarity (Wang et al. 2004), 7x7 window, channels averaged; 1 = identical."""
    from skimage.metrics import structural_similarity

    reference, distorted = _pair(reference, distorted)
    if min(reference.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {reference.shape[:2]}")
    return float(structural_similarity(reference, distorted, channel_axis=2, data_range=255))


def ssimulacra2_supported(shape, min_side: int = SSIMULACRA2_MIN_SIDE) -> bool:
    """True when an image of this shape gets all six SSIMULACRA2 scales."""
    return min(shape[:2]) >= min_side


def ssimulacra2(reference, distorted, min_side: int = SSIMULACRA2_MIN_SIDE) -> float:
    """SSIMULACRA2 score (100 = identical); NaN for images smaller than ``min_side`` pixels."""
    import imagecodecs
    from ssimulacra2 import compute_ssimulacra2

    reference, distorted = _pair(reference, distorted)
    if not ssimulacra2_supported(reference.shape, min_side):
        return float("nan")
    # The package reads files through Pillow: hand it lossless PNGs held in memory.
    return float(compute_ssimulacra2(io.BytesIO(imagecodecs.png_encode(reference, level=1)),
                                     io.BytesIO(imagecodecs.png_encode(distorted, level=1))))


def bits_per_pixel(nbytes, shape) -> float | np.ndarray:
    """8 * bytes / (H * W): the rate of an encoded image of the given (H, W, ...) shape."""
    return 8.0 * np.asarray(nbytes, dtype=np.float64) / float(shape[0] * shape[1])


# ---------------------------------------------------------------------------------------------
# Rate-distortion on a set of images


@dataclass(frozen=True)
class _RDTask:
    source: object  # stored file bytes or a uint8 array
    image_id: str
    dataset: str | None
    plan: list  # [(codec, setting), ...]
    effort: int
    metrics: tuple


def _run_rd_task(task: _RDTask) -> list[dict]:
    if isinstance(task.source, (bytes, bytearray)):
        reference = codecs.decode_source(task.source, task.image_id, task.dataset)
    else:
        reference = task.source
    rows = []
    for codec, setting in task.plan:
        bitstream = codecs._encode_unchecked(reference, codec, float(setting), task.effort)
        decoded = codecs.decode(bitstream, codec, image_id=task.image_id, dataset=task.dataset)
        row = {"image_id": task.image_id, "codec": codec, "setting": float(setting),
               "height": reference.shape[0], "width": reference.shape[1], "bytes": len(bitstream),
               "bpp": bits_per_pixel(len(bitstream), reference.shape)}
        if "psnr" in task.metrics:
            row["psnr"] = psnr(reference, decoded)
        if "ssim" in task.metrics:
            row["ssim"] = ssim(reference, decoded)
        if "ssimulacra2" in task.metrics:
            row["ssimulacra2"] = ssimulacra2(reference, decoded)
        rows.append(row)
    return rows


def rate_distortion(images, settings: dict[str, list], *, metrics=METRICS, effort: int = codecs.DEFAULT_EFFORT,
                    workers: int | None = None, backend: str = "process", ids=None, dataset=None,
                    progress: bool = True) -> pd.DataFrame:
    """Encode every image with every (codec, setting) and measure the loss: one row per pair.

    ``images``: a :class:`data.ImageSet` (the decoded stored files are the reference), a list of
    stored files, or uint8 arrays. ``settings``: ``{"jxl": [1, 2, 4], "jpeg": [50, 75], ...}``.
    Columns: image_id, codec, setting, height, width, bytes, bpp and the chosen metrics.
    Parallel over images (one task per image); all settings are validated first.
    """
    metrics = tuple(metrics)
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(METRICS)}")
    plan = []
    for codec, values in settings.items():
        codecs.check_codec(codec, ("jxl", "jpeg", "webp", "avif"))
        checked = codecs.check_settings(codec, list(values))
        plan += [(codec, float(v)) for v in checked]
    codecs.check_effort(effort)
    items, kind, ids, dataset = codecs._as_items(images, ids, dataset)
    codecs._validate_items(items, kind, ids, dataset, "jxl")
    tasks = [_RDTask(item, str(i), dataset, plan, effort, metrics) for item, i in zip(items, ids)]
    parts = codecs.parallel_map(_run_rd_task, tasks, workers=workers, backend=backend, progress=progress,
                                desc=f"rate-distortion {dataset or ''}".strip())
    return pd.DataFrame([row for part in parts for row in part])


def summarize(frame: pd.DataFrame, metrics=METRICS) -> pd.DataFrame:
    """Mean rate and quality per codec and setting over the image set (with standard errors)."""
    metrics = [m for m in metrics if m in frame.columns]
    grouped = frame.groupby(["codec", "setting"], sort=True)
    out = grouped.agg(n_images=("image_id", "nunique"), bytes=("bytes", "mean"), bpp=("bpp", "mean"),
                      **{m: (m, "mean") for m in metrics},
                      **{f"{m}_sem": (m, "sem") for m in metrics})
    return out.reset_index()


def crossovers(summary: pd.DataFrame, metric: str, reference: str = "jxl", n_grid: int = 400) -> pd.DataFrame:
    """Rates (bpp) where ``reference`` and another codec swap places on ``metric``.

    Each codec's mean curve (metric against log bpp, sorted by bpp) is linearly interpolated on
    the overlapping bpp range; a crossover is a sign change of (reference - other). Returns one
    row per crossover: other, bpp, metric value, and which codec is better above that rate.
    """
    rows = []
    ref = summary[summary["codec"] == reference].dropna(subset=[metric]).sort_values("bpp")
    for other, cur in summary[summary["codec"] != reference].groupby("codec"):
        cur = cur.dropna(subset=[metric]).sort_values("bpp")
        if len(ref) < 2 or len(cur) < 2:
            continue
        lo = max(ref["bpp"].min(), cur["bpp"].min())
        hi = min(ref["bpp"].max(), cur["bpp"].max())
        if not lo < hi:
            continue
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), n_grid))
        a = np.interp(np.log(grid), np.log(ref["bpp"]), ref[metric])
        b = np.interp(np.log(grid), np.log(cur["bpp"]), cur[metric])
        diff = a - b
        sign = np.sign(diff)
        for k in range(1, len(sign)):  # an exact tie on a grid point keeps the previous sign
            if sign[k] == 0:
                sign[k] = sign[k - 1]
        for k in np.flatnonzero(sign[:-1] * sign[1:] < 0):
            t = diff[k] / (diff[k] - diff[k + 1])
            x = float(np.exp(np.log(grid[k]) + t * (np.log(grid[k + 1]) - np.log(grid[k]))))
            rows.append({"reference": reference, "other": other, "metric": metric, "bpp": x,
                         "value": float(np.interp(np.log(x), np.log(ref["bpp"]), ref[metric])),
                         "better_above": reference if diff[k + 1] > 0 else other,
                         "range_lo": float(lo), "range_hi": float(hi)})
    return pd.DataFrame(rows, columns=["reference", "other", "metric", "bpp", "value", "better_above",
                                       "range_lo", "range_hi"])


def value_at(summary: pd.DataFrame, metric: str, bpp: float) -> pd.Series:
    """Each codec's mean ``metric`` at rate ``bpp``, interpolated linearly in log bpp.

    Codecs whose measured range does not include ``bpp`` are left out (no extrapolation).
    """
    out = {}
    for codec, cur in summary.dropna(subset=[metric]).groupby("codec"):
        cur = cur.sort_values("bpp")
        if len(cur) >= 2 and cur["bpp"].min() <= bpp <= cur["bpp"].max():
            out[codec] = float(np.interp(np.log(bpp), np.log(cur["bpp"]), cur[metric]))
    return pd.Series(out, name=metric, dtype=float).sort_values(ascending=False)
