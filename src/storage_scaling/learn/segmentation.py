"""A segmentation model a CPU trains in minutes: frozen ImageNet EfficientNet-Lite0 features at four
strides and a light trainable decoder (issue 32).

The paper fits its law to SegFormer-B5 on Cityscapes. The nearest a CPU gets is the pretrained
tier's backbone (:mod:`.pretrained`: the same weights, architecture and [-1, 1] inputs), kept frozen:

1. **Features.** Each image is upsampled ``scale`` times (bilinear; CamVid's 240x180 scenes give a
   stride-8 map of only 30x23 cells at 1x), passed once through the backbone in ``precision``, and
   the outputs of blocks 1, 2, 4 and 6 (strides 4, 8, 16 and 32; 24, 40, 112 and 320 channels) are
   kept in ``feature_dtype`` (:func:`extract`). They depend only on the stored bytes and the knobs,
   so a runner can cache them per store.
2. **Decoder.** Each stride is projected to ``width`` channels (1x1); strides 32 -> 16 -> 8 are fused
   by upsampling and adding, then one 3x3 convolution with batch norm at stride 8; the stride-4
   projection is added and a 1x1 convolution gives the logits at stride 4 (:class:`Decoder`).
3. **Training.** Cross-entropy at stride 4 against the mask's nearest-neighbour grid, the void label
   ignored; AdamW with a one-cycle learning rate (:func:`fit`). Scoring upsamples the logits to the
   mask (bilinear) and counts one confusion matrix over the whole set
   (:func:`metrics.pixel_confusion`): the error is 1 - mIoU, as in the paper.

The runner's plug-in (``learners.Segmenter``) caches the four strides per store as one flat
(N, D) array (:func:`flatten`; :func:`unflatten` restores them from :func:`feature_shapes`) and
keeps a fitted model as :class:`FittedSegmenter`'s tensors and plain config.

The defaults are the first trial on CamVid (``benchmarks/bench_segmentation_head.py``). The program's
knobs were chosen on CamVid's val split by ``experiments/specs/choices/segmenter*.toml``
(``results/choice_segmenter*.csv``, chapter 11): at 2x scale and width 64, val mIoU grows with the
epochs (15, 30, 60: 0.540, 0.607, 0.636) and more with lr 6e-3 (30, 60: 0.622, 0.643); width 32 or
1x inputs lose about 6 points; at 20 % of the pool a floor on the steps (``min_steps``) adds 8
points; a bf16 decoder (``decoder_precision``) matches fp32 to 4 decimals in 0.55x the time on a
Xeon with AMX. The program uses 2x, width 64, 60 epochs at lr 6e-3, at least 690 steps, bf16.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import hashlib
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import threads
from . import metrics, pretrained

STAGES = (1, 2, 4, 6)  # timm EfficientNet-Lite0 blocks ending at strides 4, 8, 16 and 32
CHANNELS = (24, 40, 112, 320)
PROGRESS_MIN = 64  # images: a tqdm bar for extractions longer than a few seconds


@dataclass(frozen=True)
class SegmentationConfig:
    """Every knob of the model; ``params()`` is recorded in every result row."""

    scale: float = 2.0
    precision: str = "auto"  # the backbone's autocast type (pretrained.PretrainedConfig's rule)
    decoder_precision: str = "fp32"  # the decoder's training autocast type (same rule; scoring stays fp32)
    feature_dtype: str = "float16"
    feature_batch: int = 16
    width: int = 64
    epochs: int = 30
    min_steps: int = 0  # a floor on the optimiser steps, for small training sets
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def validate(self) -> "SegmentationConfig":
        """Raise one ValueError naming every knob that cannot work (before any work starts)."""
        problems = []
        for name, low in (("feature_batch", 1), ("width", 1), ("epochs", 1), ("min_steps", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                problems.append(f"{name}={value!r} must be an integer >= {low}")
        for name, top in (("scale", 8.0), ("lr", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= top:
                problems.append(f"{name}={value!r} must be a number in (0, {top:g}]")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) \
                or self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay!r} must be a number >= 0")
        for name in ("precision", "decoder_precision"):
            if getattr(self, name) not in pretrained.PRECISIONS:
                problems.append(f"{name}={getattr(self, name)!r} must be one of {list(pretrained.PRECISIONS)}")
        if self.feature_dtype not in ("float16", "float32"):
            problems.append(f"feature_dtype={self.feature_dtype!r} must be 'float16' or 'float32'")
        if problems:
            raise ValueError("invalid segmentation config: " + "; ".join(problems))
        return self

    def params(self) -> dict:
        """Every knob as a flat dict of scalars, prefixed ``segmentation_`` for result rows."""
        return {f"segmentation_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_params(cls, params: dict) -> "SegmentationConfig":
        return cls(**{k[len("segmentation_"):]: v for k, v in params.items() if k.startswith("segmentation_")})

    def resolved_precision(self) -> str:
        return pretrained.PretrainedConfig(precision=self.precision).resolved_precision()

    def resolved_decoder_precision(self) -> str:
        return pretrained.PretrainedConfig(precision=self.decoder_precision).resolved_precision()

    def feature_key(self) -> str:
        """A short hash of what the features depend on (the cache key): the weights, the scale, the
        resolved precision and the stored type."""
        text = json.dumps({"weights": pretrained.WEIGHTS_SHA256, "architecture": pretrained.ARCHITECTURE,
                           "stages": STAGES, "scale": self.scale, "precision": self.resolved_precision(),
                           "feature_dtype": self.feature_dtype}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def steps(self, n: int) -> int:
        """Optimiser steps for ``n`` training images: ``epochs`` passes, at least ``min_steps``."""
        return max(self.epochs * -(-n // self.batch_size), self.min_steps)


def _check(pixels, masks=None) -> None:
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8 or not len(pixels):
        raise ValueError(f"images must be a non-empty uint8 (N, H, W, 3) array, got {pixels.dtype} {pixels.shape}")
    if masks is not None and np.shape(masks) != pixels.shape[:3]:
        raise ValueError(f"masks must be (N, H, W) label maps of the images' size {pixels.shape[:3]}, "
                         f"got {np.shape(masks)}")


def extract(pixels: np.ndarray, config: SegmentationConfig | None = None,
            progress: bool | None = None) -> list[np.ndarray]:
    """The frozen backbone's outputs at :data:`STAGES` for uint8 (N, H, W, 3) images: one
    (N, C, h, w) array per stride, in ``config.feature_dtype``. ``progress`` None shows a bar from
    :data:`PROGRESS_MIN` images on."""
    config = (config or SegmentationConfig()).validate()
    _check(pixels)
    model = pretrained.backbone(True)
    bf16 = config.resolved_precision() == "bf16"
    outs = {k: [] for k in STAGES}
    starts = range(0, len(pixels), config.feature_batch)
    if progress or (progress is None and len(pixels) >= PROGRESS_MIN):
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"segmentation features ({config.scale:g}x)", unit="batch", leave=False)
    with threads.library_cap(), torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for start in starts:
            x = torch.from_numpy(np.array(pixels[start:start + config.feature_batch])).permute(0, 3, 1, 2)
            x = x.float().div_(255)
            if config.scale != 1:
                x = F.interpolate(x, scale_factor=config.scale, mode="bilinear", align_corners=False)
            h = x.sub_(pretrained.MEAN).div_(pretrained.STD).contiguous(memory_format=torch.channels_last)
            h = model.bn1(model.conv_stem(h))
            for j, block in enumerate(model.blocks):
                h = block(h)
                if j in outs:
                    outs[j].append(h.float().numpy().astype(config.feature_dtype))
                if j == STAGES[-1]:
                    break
    return [np.concatenate(outs[k]) for k in STAGES]


def feature_shapes(height: int, width: int, config: SegmentationConfig) -> list[tuple[int, int, int]]:
    """(channels, h, w) of each stride for images of ``height`` x ``width``: the upsampled size is
    floored (as ``F.interpolate`` does) and each stride-2 "same" convolution rounds up."""
    h, w = math.floor(height * config.scale), math.floor(width * config.scale)
    return [(c, -(-h // s), -(-w // s)) for c, s in zip(CHANNELS, (4, 8, 16, 32))]


def flatten(features: list[np.ndarray]) -> np.ndarray:
    """The four strides of :func:`extract` as one (N, D) array: what a runner caches per store."""
    return np.concatenate([f.reshape(len(f), -1) for f in features], axis=1)


def unflatten(flat: np.ndarray, shapes: list[tuple[int, int, int]]) -> list[np.ndarray]:
    """:func:`flatten` undone, given :func:`feature_shapes` (views: no copy)."""
    sizes = [c * h * w for c, h, w in shapes]
    if flat.ndim != 2 or flat.shape[1] != sum(sizes):
        raise ValueError(f"flat features of shape {flat.shape} do not hold strides of shapes {shapes}; "
                         "were they extracted at another scale or image size?")
    bounds = np.cumsum([0, *sizes])
    return [flat[:, a:b].reshape(len(flat), *shape) for a, b, shape in zip(bounds[:-1], bounds[1:], shapes)]


class Decoder(nn.Module):
    """The trainable part: logits at stride 4 from the four strides' features (module docstring)."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.proj = nn.ModuleList([nn.Conv2d(c, width, 1) for c in CHANNELS])
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.cls = nn.Conv2d(width, num_classes, 1)

    def forward(self, features: list[torch.Tensor], size=None) -> torch.Tensor:
        y = None
        for f, proj in zip(reversed(features[1:]), reversed(self.proj[1:])):
            z = proj(f.float())
            y = z if y is None else z + F.interpolate(y, size=z.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse(y)
        z = self.proj[0](features[0].float())
        out = self.cls(torch.relu(z + F.interpolate(y, size=z.shape[-2:], mode="bilinear", align_corners=False)))
        return out if size is None else F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)


def stride4_targets(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """The masks' labels on the stride-4 grid (nearest neighbour: every value stays a label)."""
    t = torch.from_numpy(np.asarray(masks, dtype=np.int64))
    return F.interpolate(t[:, None].float(), size=tuple(grid), mode="nearest")[:, 0].long()


def fit(features: list[np.ndarray], masks: np.ndarray, num_classes: int, void: int | None,
        config: SegmentationConfig | None = None, info: dict | None = None) -> Decoder:
    """Train a :class:`Decoder` on :func:`extract`'s features of the training images and their masks
    for ``config.steps(n)`` steps (whole shuffled epochs; the last one cut where the steps end).
    ``info``, when given, receives the steps, seconds, images/s and the last epoch's mean loss."""
    config = (config or SegmentationConfig()).validate()
    if len(features) != len(STAGES) or any(len(f) != len(masks) for f in features):
        raise ValueError(f"features must be the {len(STAGES)} arrays of extract() for the {len(masks)} masks")
    torch.manual_seed(config.seed)
    decoder = Decoder(num_classes, config.width)
    fs = [torch.from_numpy(np.require(f, requirements=["C", "W"])) for f in features]
    target = stride4_targets(masks, fs[0].shape[-2:])
    n = len(target)
    opt = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.steps(n)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    order = torch.Generator().manual_seed(config.seed)
    ignore = -100 if void is None else int(void)
    bf16 = config.resolved_decoder_precision() == "bf16"
    done, losses, start = 0, [], time.perf_counter()
    with threads.library_cap():
        decoder.train()
        while done < steps:
            losses = []
            for idx in torch.randperm(n, generator=order).split(config.batch_size)[:steps - done]:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = decoder([f[idx] for f in fs])
                loss = F.cross_entropy(logits.float(), target[idx], ignore_index=ignore)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                done += 1
    seconds = time.perf_counter() - start
    if info is not None:
        info.update(steps=steps, decoder_seconds=seconds, images_per_second=steps * config.batch_size / max(seconds, 1e-9),
                    final_loss=float(np.mean(losses)), decoder_autocast="bf16" if bf16 else "fp32")
    return decoder.eval()


def predict(decoder: Decoder, features: list[np.ndarray], size, batch: int = 32) -> np.ndarray:
    """Labels (N, H, W) at the masks' ``size`` (H, W)."""
    n = len(features[0])
    out = np.empty((n, *size), dtype=np.uint8)
    with threads.library_cap(), torch.no_grad():
        for start in range(0, n, batch):
            logits = decoder([torch.from_numpy(np.array(f[start:start + batch])) for f in features], size)
            out[start:start + len(logits)] = logits.argmax(1).numpy()
    return out


def confusion(decoder: Decoder, features: list[np.ndarray], masks: np.ndarray, num_classes: int,
              void: int | None, batch: int = 32) -> np.ndarray:
    """One pixel confusion matrix over every image (:func:`metrics.pixel_confusion`, summed)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for start in range(0, len(masks), batch):
        part = [f[start:start + batch] for f in features]
        cm += metrics.pixel_confusion(predict(decoder, part, masks.shape[1:], batch), masks[start:start + batch],
                                      num_classes, void)
    return cm


def evaluate(decoder: Decoder, features: list[np.ndarray], masks: np.ndarray, num_classes: int,
             void: int | None, batch: int = 32) -> dict:
    """:func:`metrics.segmentation_metrics` of one confusion matrix over every image."""
    return metrics.segmentation_metrics(confusion(decoder, features, masks, num_classes, void, batch))


@dataclass
class FittedSegmenter:
    """A trained decoder with the knobs its features were extracted with: scores the features of
    any images extracted with the same config (:func:`unflatten`ed from a cache, or :func:`extract`'s)."""

    config: SegmentationConfig
    decoder: Decoder
    num_classes: int
    void: int | None
    info: dict

    def confusion(self, features: list[np.ndarray], masks: np.ndarray) -> np.ndarray:
        return confusion(self.decoder, features, masks, self.num_classes, self.void)

    def predict(self, features: list[np.ndarray], size) -> np.ndarray:
        """Labels (N, H, W) at ``size`` (H, W): the figure of predicted scenes draws them."""
        return predict(self.decoder, features, size)

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The decoder's weights as tensors and the rest as plain JSON values (:meth:`from_state`)."""
        tensors = {f"decoder.{k}": v.detach().clone() for k, v in self.decoder.state_dict().items()}
        return tensors, {"segmentation_config": asdict(self.config), "weights_sha256": pretrained.WEIGHTS_SHA256,
                         "num_classes": self.num_classes, "void": self.void, "info": dict(self.info)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], config: dict) -> "FittedSegmenter":
        if config.get("weights_sha256") != pretrained.WEIGHTS_SHA256:
            raise ValueError(f"this fitted decoder was trained on features of other weights "
                             f"(SHA256 {str(config.get('weights_sha256'))[:16]}...)")
        seg_config = SegmentationConfig(**config["segmentation_config"]).validate()
        decoder = Decoder(int(config["num_classes"]), seg_config.width)
        decoder.load_state_dict({k[len("decoder."):]: v for k, v in tensors.items() if k.startswith("decoder.")})
        return cls(seg_config, decoder.eval(), int(config["num_classes"]), config["void"], dict(config["info"]))
