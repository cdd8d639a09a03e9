"""The practitioner's tutorial (notebook ``10_compress_for_training``): its images and figures.

:func:`prepare_images` writes the tutorial's folder of photos, one sub-folder per class, as a
practitioner's folder looks: the 300 full-size Food-101 originals of ``../shared/data`` (three
classes, the JPEG files as published), or, where that folder is absent (a host that builds the
book without the data), a handful of scikit-image's bundled photos, each saved whole and as two
crops, in two pseudo-classes. The notebook runs the commands' Python functions on it and says
which images it used (:attr:`Source.note`). :func:`size_figure` and :func:`batch_figure` draw the
page's two figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from .units import format_size

DATASET = "food101-originals"
PSEUDO_CLASSES = {"animals_and_people": ("astronaut", "chelsea", "immunohistochemistry"),
                  "objects": ("coffee", "rocket", "hubble_deep_field")}


@dataclass
class Source:
    folder: Path
    real: bool  # the Food-101 originals (False: scikit-image's photos)
    images: int
    classes: list
    note: str  # what the page says about the images it ran on


def prepare_images(folder: Path, *, images: int | None = None, seed: int = 0) -> Source:
    """The tutorial's folder (see the module docstring); ``images``: at most this many of the
    originals (a stratified, seeded choice: the smoke profile), None for all of them."""
    folder = Path(folder)
    root = paths.data_root()
    pack = root / DATASET / "sample.parquet" if root is not None else None
    if pack is not None and pack.is_file():
        return _originals(folder, pack, images, seed)
    return _photos(folder)


def _originals(folder: Path, pack: Path, images: int | None, seed: int) -> Source:
    import pyarrow.parquet as pq

    from .. import data

    table = pq.read_table(pack)
    values = table.column("image").to_pylist()
    classes = sorted({v["path"].split("/", 1)[0] for v in values})
    labels = np.asarray([classes.index(v["path"].split("/", 1)[0]) for v in values])
    keep = range(len(values)) if images is None or images >= len(values) else data.nested_subset(labels, images, seed)
    for i in keep:
        target = folder / values[i]["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(values[i]["bytes"])
    n = len(keep)
    what = (f"the {n:,} full-size Food-101 originals of ../shared/data" if images is None or n == len(values)
            else f"{n:,} of the 300 full-size Food-101 originals (smoke profile: a toy-size run)")
    note = f"This page ran on {what}, in {len(classes)} classes ({', '.join(c.replace('_', ' ') for c in classes)})."
    return Source(folder, True, n, classes, note)


def _photos(folder: Path) -> Source:
    import skimage.data
    from PIL import Image

    count = 0
    for cls, names in PSEUDO_CLASSES.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for name in names:
            photo = Image.fromarray(getattr(skimage.data, name)())
            w, h = photo.size
            crops = {"whole": (0, 0, w, h), "left": (0, 0, w * 2 // 3, h), "top": (0, 0, w, h * 2 // 3)}
            for part, box in crops.items():
                photo.crop(box).convert("RGB").save(folder / cls / f"{name}-{part}.jpg", quality=90)
                count += 1
    note = (f"../shared/data is absent on the host that built this page, so it ran on {count} photos that "
            f"scikit-image ships ({', '.join(n for ns in PSEUDO_CLASSES.values() for n in ns)}; each whole and as "
            f"two crops), in two pseudo-classes ({', '.join(PSEUDO_CLASSES)}). With the data, it runs on the 300 "
            "full-size Food-101 originals.")
    return Source(folder, False, count, list(PSEUDO_CLASSES), note)


def size_figure(sample, distance: float, L_star: float, real_mean: float | None, max_side: int | None):
    """Mean bytes per image against distance at the distances the adaptive sample measured, with
    their 95 % intervals; the law's L* and the planned distance; the real mean of the compression."""
    from matplotlib.ticker import FuncFormatter

    from .. import plots

    curve = sample.curve()
    d = np.asarray(curve["distance"])
    mean, lo, hi = (np.asarray(curve[k]) for k in ("mean", "lo", "hi"))
    fig, ax = plots.subplots(1, 1, figsize=(6.8, 3.8))
    ax.errorbar(d, mean, yerr=[mean - lo, hi - mean], fmt="o-", color="C0", capsize=3,
                label=f"sample mean, 95% interval ({len(sample.ids)} images)")
    ax.axhline(L_star, color="C1", ls="--", lw=1.2, label=f"the law's L* = {format_size(L_star)}")
    ax.axvline(distance, color="0.3", ls=":", lw=1.2, label=f"planned distance d = {distance:.2f}")
    if real_mean is not None:
        ax.plot([distance], [real_mean], "s", color="C2", ms=8, label=f"compressed: {format_size(real_mean)} per image")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: format_size(y)))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: ""))
    ax.set_xlabel("Butteraugli distance d")
    ax.set_ylabel("bytes per image")
    side = f", longer side at most {max_side} px" if max_side else ""
    ax.set_title(f"Size curve measured by the adaptive sample{side}", fontsize=10)
    ax.legend(fontsize=9, loc="upper right")
    return fig


def batch_figure(batch, labels, classes: list, count: int = 8):
    """The first ``count`` images of a DataLoader batch (float tensors in [0, 1]) in two rows,
    each titled with its class."""
    from .. import plots

    count = min(count, len(batch))
    cols = (count + 1) // 2
    fig, axes = plots.subplots(1, 1, figsize=(6.8, 3.9))
    tiles = [np.clip(batch[k].permute(1, 2, 0).numpy(), 0, 1) for k in range(count)]
    size = tiles[0].shape[0]
    gap = size // 10
    mosaic = np.ones((2 * size + gap + size // 4, cols * (size + gap) - gap, 3))
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        top = r * (size + gap + size // 4)
        mosaic[top:top + size, c * (size + gap):c * (size + gap) + size] = tile
    axes.imshow(mosaic)
    for k in range(count):
        r, c = divmod(k, cols)
        name = classes[int(labels[k])] if 0 <= int(labels[k]) < len(classes) else "no class"
        axes.text(c * (size + gap) + size / 2, r * (size + gap + size // 4) + size + size // 16,
                  name.replace("_", " "), ha="center", va="top", fontsize=9)
    axes.set_axis_off()
    axes.set_title("A batch from the DataLoader (decoded JPEG XL, resized and cropped)", fontsize=10)
    return fig
