"""What a model receives: a run's images as stores and rows, their labels, its storage metrics and
the held-out 20 % stored the same way.

An experiment (:mod:`.kinds`) decides which images a run trains on and at which bytes; this module
is how those images reach a model (:mod:`storage_scaling.learn.learners`):

:class:`ImagesAt`       rows of one store (all rows when ``indices`` is None), with their labels;
:class:`TrainingSet`    a run's training images, its storage metrics, and a way to get the
                        held-out 20 % stored the same way (for models that choose settings on
                        validation data);
:class:`InMemory`       pixels assembled from several stores (a randomized run mixing compressed
                        and original files);
:func:`compress`        the store of a set of images at one format;
:func:`per_image_store` a set with every image at its own distance (0 = its original file);
:func:`held_out`, :func:`randomized_held_out`   the held-out 20 % stored as the run's rule says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import data
from ..compress import budget as budgets
from ..compress import codecs


@dataclass
class ImagesAt:
    """Images of a run stored one way: rows ``indices`` of the store ``entry`` (all rows when None).

    The store's path is a cache key: a model that turns pixels into features (the probe) computes
    them once per store, and a run reads its rows.
    """

    entry: object  # compress.store.StoreEntry
    labels: np.ndarray
    indices: np.ndarray | None = None

    def pixels(self) -> np.ndarray:
        px = self.entry.pixels()
        return np.asarray(px if self.indices is None else px[self.indices])


@dataclass
class TrainingSet(ImagesAt):
    """A run's training images, their storage metrics, and (for models that choose settings on
    validation data) a way to get the held-out 20 % stored the same way."""

    storage: dict = field(default_factory=dict)
    validation: Callable[[], ImagesAt] | None = None


@dataclass
class InMemory:
    """Pixels assembled from several stores (a randomized run mixing compressed and original files):
    no single store to cache features by (``path`` is None). ``ids``, ``settings`` (each image's
    distance, 0 = its original file) and ``sizes`` (stored bytes) describe the images as a store does."""

    array: np.ndarray
    ids: np.ndarray
    settings: np.ndarray
    sizes: np.ndarray
    path = None

    def pixels(self):
        return self.array


def compress(images: data.ImageSet, codec: str, setting=None, effort: int = codecs.DEFAULT_EFFORT):
    """The store of ``images`` (imported lazily: the compression stack is needed only when running).

    ``codec="original"`` is the stored files, except for a dataset of PNG originals
    (``DatasetSpec.png_originals``, CamVid): there the paper's convention for Cityscapes holds, and
    the original format is the lossless JPEG XL encode of each PNG (the same pixels, fewer bytes)."""
    from ..compress import store

    if codec == "original" and data.spec(images.dataset).png_originals:
        return store.compress(images, codec="jxl", setting=0.0, effort=codecs.DEFAULT_EFFORT, progress=False)
    if codec == "original":
        return store.compress(images, codec="original", progress=False)
    return store.compress(images, codec=codec, setting=setting, effort=effort, progress=False)


def original_sizes(images: data.ImageSet) -> np.ndarray:
    """Bytes of each image in the original format: its stored file, or for PNG originals the
    lossless JPEG XL encode (:func:`compress`)."""
    if data.spec(images.dataset).png_originals:
        return np.asarray(compress(images, "original").sizes)
    return images.stored_bytes


def per_image_store(images: data.ImageSet, distances, effort: int = codecs.DEFAULT_EFFORT):
    """``images`` each stored at its own JPEG XL distance, 0 = its original file: the one way a
    randomized run assembles its training and its held-out images (so the two cannot drift apart).

    Returns an object with ``pixels()``, ``ids``, ``settings``, ``sizes`` (stored bytes, in the
    order of ``images``) and ``path``: the store itself when one store holds every image (all
    compressed, or all kept; its path keys the probe's feature cache, and no pixels are copied),
    else an :class:`InMemory` of both stores' pixels.
    """
    distances = np.asarray(distances, dtype=np.float64)
    if distances.shape != (len(images),) or not np.all(np.isfinite(distances)) or np.any(distances < 0):
        raise ValueError(f"per-image distances must be {len(images)} finite numbers >= 0 (0 = keep the original "
                         f"file), got shape {distances.shape}")
    lossy = distances > 0
    parts = [(where, compress(images.subset(where), codec, distances[where] if codec == "jxl" else None, effort))
             for where, codec in ((np.flatnonzero(lossy), "jxl"), (np.flatnonzero(~lossy), "original"))
             if len(where)]
    if len(parts) == 1:
        return parts[0][1]
    shape = np.shape(parts[0][1].pixels())[1:]
    pixels = np.empty((len(images),) + shape, dtype=np.uint8)
    sizes = np.empty(len(images), dtype=np.int64)
    for where, entry in parts:
        pixels[where], sizes[where] = entry.pixels(), entry.sizes
    return InMemory(pixels, np.asarray(images.ids), distances, sizes)


def held_out_images(run: dict) -> data.ImageSet:
    """The paper split's held-out 20 % (never trained on, never the test set)."""
    return data.eval_set(run["dataset"], "val", run["classes"], run["test_n"], run["pool"])


def held_out(run: dict, codec: str, setting) -> ImagesAt:
    """The held-out 20 %, every image stored as given."""
    images = held_out_images(run)
    return ImagesAt(compress(images, codec, setting, run["effort"]), images.labels)


def randomized_held_out(run: dict, d_min: float, d_max: float,
                        zero_below: float | None) -> tuple[Callable[[], ImagesAt], dict]:
    """The held-out 20 % of a randomized run, stored by the run's own rule, and what it used.

    Each image gets ``budget.randomized_distances`` over the run's fitted range [d_min, d_max] from
    its rank in ``budget.validation_ranks(m, rank_seed)`` (a stream derived from the training
    ranks' seed, never equal to it), distances below ``zero_below`` keep the original file, and
    :func:`per_image_store` assembles the pixels exactly as it does the training images. The
    images are encoded only when the callable is called (models that never validate skip it);
    the distances are known at once, so the run's row records them (``val_mean_distance``).
    """
    images = held_out_images(run)
    distances = budgets.randomized_distances(budgets.validation_ranks(len(images), run["rank_seed"]),
                                             d_min, d_max, zero_below)
    info = {"val_mean_distance": float(distances.mean()), "val_n_kept_original": int((distances == 0).sum())}
    return (lambda: ImagesAt(per_image_store(images, distances, run["effort"]), images.labels)), info
