"""Train a classifier on device-resident uint8 images, fast on a GPU and still correct on a CPU.

The images of a run are decoded once (by the compressed store) and moved to the device as one
uint8 tensor; every optimisation step indexes a batch from it, converts and normalises it on the
device, and augments it there (random or alternating horizontal flip, random translation by up to
``translate`` pixels with reflection padding). There is no DataLoader and no decoding in the loop.
On CUDA the forward pass runs under ``precision`` autocast (bf16 by default) in channels-last layout;
on a CPU under ``cpu_precision`` (float32 by default; on a CPU with AVX-512 BF16, bf16 autocast
trains ``cnn_cpu`` about 2x faster and the ResNets faster too, while it slowed the small airnet:
``benchmarks/bench_cpu_cnn.py`` measures it), with
``threads`` intra-op threads (default: PyTorch's) and at most ``cpu_max_images`` training images
(steps x batch) when the recipe sets that cap, so a CPU recipe cannot silently become a day-long run.
Seeding is explicit: the model's initial weights come from ``torch.manual_seed(seed)`` and the data
order and augmentations from a separate generator seeded from the same seed, so the same seed
gives the same result on the same device (bit-for-bit on a CPU with one thread; on a GPU cuDNN's
autotuned kernels may differ in the last bits unless ``deterministic=True``).

Optimiser: SGD with Nesterov momentum, label smoothing, a one-cycle schedule (linear warm-up from
``lr_start`` x lr to lr over the first ``warmup`` fraction, then linear decay to ``lr_end`` x lr) or
a cosine decay, optional airbench-style lookahead EMA of the weights, optional test-time
augmentation (1 = average with the mirror image, 2 = also two one-pixel translations).
Metrics: top-1 accuracy, its complement the test error, and macro / weighted F1 (the paper's
appendix fits 1 - F1 as a second metric).

JPEG-DL (``jpeg_layer=True``): a trainable JPEG layer (``jpeg_layer.py``) sits after augmentation
and before the network, on the 0-255 pixels; its 128 quantisation steps train with their own Adam
(``jpeg_lr``, the network's schedule factor) beside the network's SGD.

Training protocol: how many steps
---------------------------------
The paper fine-tuned an ImageNet-pretrained ResNet-50 for a fixed 10 epochs at every n. Training
from scratch, a fixed number of epochs starves the small subsets: on an H100, a ResNet-18 trained
for 16 epochs on Food-101 64 px reached 4 % at n = 3,030 and 48 % at n = 30,300
(``../shared/reference/toolchain.md``), so the small-n errors would measure under-training, not
data. We therefore default to the blog's rule, **the same number of optimisation steps for every
n** (``protocol="fixed_steps"``), sized so that the largest n of a grid still sees at least 10
epochs (:func:`steps_for_pool`). The paper's rule stays available (``protocol="fixed_epochs"``,
``epochs=10``), and every result row records ``protocol``, ``steps`` and ``epochs``.

Choosing the step budget and the learning rate (on validation data, once)
-------------------------------------------------------------------------
Never on the test set. ``experiments.run_experiment("select", ...)`` runs the selection:

1. Split the official train split with ``data.paper_split`` (80 % train pool / 20 % validation,
   seed 42, stratified): train on subsets of the pool, score on the validation images.
2. Candidate budgets are multiples of the floor ``S0 = steps_for_pool(n_max, batch)`` (10 epochs
   at the largest n): ``S0 x {1, 2, 4, 8}``; candidate peak learning rates are the recipe's lr
   times ``{0.5, 1, 2}``. All at the original format, at the smallest and the largest n of the
   grid, one seed (two for the finalists if time allows).
3. For every budget, take the best learning rate (lowest validation error at the largest n).
4. Choose the **smallest budget S such that doubling it changes the validation error by at most
   one point at both the smallest and the largest n** (the same criterion the GPU quality check
   applies on the test set): past S, the grid measures data and quality, not optimisation.
   If no candidate satisfies it, take the largest and say so in the chapter.
5. Freeze (S, lr) in the ``full`` profile parameters of the grid; :func:`choose_protocol`
   implements steps 3-4 on the selection table and returns the choice with its reasons.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import threads
from . import jpeg_layer, models
from .metrics import classification_metrics

PROTOCOLS = ("fixed_steps", "fixed_epochs")
SCHEDULES = ("onecycle", "cosine")
FLIPS = ("none", "random", "alt")
EMAS = ("none", "lookahead")
PRECISIONS = ("bf16", "fp16", "fp32")
CPU_PRECISIONS = ("auto", *PRECISIONS)  # auto: bf16 where oneDNN supports it on this CPU, else fp32


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run (recorded in full in each result row).

    No field has a default of its own: :data:`ENGINE` (how the trainer runs) and a network's
    :data:`RECIPES` entry (how it learns) are the only defaults, combined by :func:`recipe`.
    """

    network: str
    protocol: str  # "fixed_steps" or "fixed_epochs"
    steps: int | None  # fixed_steps: optimisation steps for every n
    epochs: float | None  # fixed_epochs: passes over the n training images
    batch_size: int
    lr: float  # peak learning rate (mean loss over the batch)
    momentum: float
    nesterov: bool
    weight_decay: float  # PyTorch SGD convention (multiplied by the learning rate)
    bias_lr_scale: float  # lr multiplier for normalisation parameters; same decay per step
    schedule: str
    warmup: float  # fraction of the steps to reach the peak
    lr_start: float  # factor of the peak at step 0
    lr_end: float  # factor of the peak at the last step
    label_smoothing: float
    ema: str
    ema_every: int
    flip: str
    translate: int
    tta: int  # 0 none, 1 mirror, 2 mirror + translations
    whiten_bias_frac: float  # airnet: train the whitening bias for this fraction of the steps
    precision: str  # autocast dtype on CUDA ("fp16" adds a gradient scaler)
    cpu_precision: str  # autocast dtype on a CPU ("fp32": no autocast; "auto": bf16 if supported)
    threads: int | None  # PyTorch intra-op threads on a CPU (None: leave PyTorch's setting)
    cpu_max_images: int | None  # on a CPU, refuse runs of more than this many training images (steps x batch)
    channels_last: bool
    compile: bool
    pretrained: bool
    eval_batch_size: int
    deterministic: bool
    # JPEG-DL: a trainable JPEG layer in front of the network, its tables on their own Adam
    # (learn/jpeg_layer.py); the other jpeg_* fields are the layer's knobs, recorded in every row.
    jpeg_layer: bool
    jpeg_quality: int
    jpeg_hardness: float
    jpeg_max_step: float
    jpeg_lr: float

    def validate(self) -> "TrainConfig":
        models.check_network(self.network)
        checks = [
            (self.protocol in PROTOCOLS, f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.flip in FLIPS, f"flip must be one of {FLIPS}, got {self.flip!r}"),
            (self.ema in EMAS, f"ema must be one of {EMAS}, got {self.ema!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (self.cpu_precision in CPU_PRECISIONS,
             f"cpu_precision must be one of {CPU_PRECISIONS}, got {self.cpu_precision!r}"),
            (self.threads is None or (isinstance(self.threads, int) and self.threads >= 1),
             f"threads must be a positive integer or None, got {self.threads!r}"),
            (self.cpu_max_images is None or self.cpu_max_images >= 1,
             f"cpu_max_images must be positive or None, got {self.cpu_max_images!r}"),
            (self.tta in (0, 1, 2), f"tta must be 0, 1 or 2, got {self.tta}"),
            (self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (0 <= self.warmup <= 1, f"warmup must be a fraction in [0, 1], got {self.warmup}"),
            (0 <= self.translate, f"translate must be >= 0 pixels, got {self.translate}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
        ]
        if self.protocol == "fixed_steps":
            checks.append((self.steps is not None and int(self.steps) >= 1,
                           f"protocol 'fixed_steps' needs steps >= 1, got steps={self.steps}"))
        else:
            checks.append((self.epochs is not None and float(self.epochs) > 0,
                           f"protocol 'fixed_epochs' needs epochs > 0, got epochs={self.epochs}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.jpeg_layer:
            jpeg_layer.check_params(self.jpeg_quality, self.jpeg_hardness, self.jpeg_max_step, self.jpeg_lr)
        return self

    def params(self) -> dict:
        """The configuration as a flat dict of plain values (for result rows)."""
        return asdict(self)


# How the trainer runs, for every network (a recipe or a spec's `train` table may override any).
ENGINE: dict = dict(protocol="fixed_steps", steps=None, epochs=None, nesterov=True, ema_every=5, precision="bf16",
                    cpu_precision="fp32", threads=None, cpu_max_images=None, channels_last=True, compile=False,
                    pretrained=False, eval_batch_size=2000, deterministic=False,
                    jpeg_layer=False, **{f"jpeg_{k}": v for k, v in jpeg_layer.DEFAULTS.items()})

# Per-network defaults. airnet follows airbench94's recipe translated to a mean loss: its
# "lr 11.5 per 1024 examples" with momentum 0.85 is a peak lr of 11.5 / (1 + 1/0.15) = 1.5 here,
# and its decoupled weight decay 0.0153 becomes 0.0153 / 11.5 = 1.33e-3 in PyTorch's convention.
RECIPES: dict[str, dict] = {
    "airnet": dict(batch_size=1024, lr=1.5, momentum=0.85, weight_decay=1.33e-3, bias_lr_scale=64.0,
                   schedule="onecycle", warmup=0.23, lr_start=0.2, lr_end=0.07, label_smoothing=0.2,
                   ema="lookahead", flip="alt", translate=2, tta=2, whiten_bias_frac=0.3),
    "resnet18_64": dict(batch_size=512, lr=0.4, momentum=0.9, weight_decay=5e-4, bias_lr_scale=1.0,
                        schedule="onecycle", warmup=0.25, lr_start=0.04, lr_end=0.0, label_smoothing=0.1,
                        ema="none", flip="random", translate=4, tta=1, whiten_bias_frac=0.0),
}
# cnn_cpu: chosen on the validation 20 % of CIFAR-10 (one seed, whole pool) under a cap of about
# 3 minutes per run on the 2-core build machine: 1,040 steps of 512 in bf16 autocast reached 85.8 %
# (145 s), lr 0.8 84.4 %, with airbench's lookahead EMA and two-view test-time augmentation 86.0 %
# (kept). bf16 autocast in channels-last trains 2.1x faster than float32 in the same layout on this
# CPU (AVX-512 BF16), at the same validation accuracy after 520 steps (82.5 % / 81.8 %); "auto" falls
# back to float32 on CPUs without it. benchmarks/bench_cpu_cnn.py measures the options.
RECIPES["cnn_cpu"] = dict(steps=1040, batch_size=512, lr=0.4, momentum=0.9, weight_decay=5e-4, bias_lr_scale=1.0,
                          schedule="onecycle", warmup=0.2, lr_start=0.1, lr_end=0.0, label_smoothing=0.1,
                          ema="lookahead", flip="random", translate=2, tta=2, whiten_bias_frac=0.0,
                          cpu_precision="auto", threads=None, cpu_max_images=1_200_000)
RECIPES["airnet_small"] = dict(RECIPES["airnet"])
RECIPES["resnet18_64_s1"] = dict(RECIPES["resnet18_64"])
RECIPES["resnet10_64"] = dict(RECIPES["resnet18_64"])


def recipe(network: str, **overrides) -> TrainConfig:
    """The default configuration of a network, with any field overridden.

    When ``batch_size`` is overridden and ``lr`` is not, the peak learning rate is scaled linearly
    with the batch size (the recipes' rates are tuned for their own batch sizes).
    """
    models.check_network(network)
    unknown = set(overrides) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown training parameter(s) {sorted(unknown)}; "
                         f"known: {sorted(TrainConfig.__dataclass_fields__)}")
    if network not in RECIPES:
        raise ValueError(f"network {network!r} has no training recipe; add one to train.RECIPES")
    base = {"network": network, **ENGINE, **RECIPES[network]}
    if "batch_size" in overrides and "lr" not in overrides:
        default = TrainConfig(**base)
        overrides = {**overrides, "lr": default.lr * int(overrides["batch_size"]) / default.batch_size}
    return TrainConfig(**{**base, **overrides}).validate()


def steps_for_pool(n_max: int, batch_size: int, min_epochs: float = 10.0) -> int:
    """The blog's rule: one step budget for every n, so that the largest n sees ``min_epochs``."""
    if n_max < 1 or batch_size < 1:
        raise ValueError(f"n_max and batch_size must be positive, got {n_max}, {batch_size}")
    return int(math.ceil(min_epochs * n_max / batch_size))


def resolve_budget(config: TrainConfig, n: int) -> tuple[int, float]:
    """(steps, epochs) of a run on n images under the configured protocol."""
    if n < 1:
        raise ValueError(f"cannot train on {n} images")
    if config.protocol == "fixed_steps":
        steps = int(config.steps)
    else:
        steps = max(1, int(math.ceil(float(config.epochs) * n / config.batch_size)))
    return steps, steps * config.batch_size / n


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------
# Data on the device


def check_images(images, labels, what: str) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    if isinstance(images, list):
        raise ValueError(f"{what} images have different sizes; resize them to one size first")
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"{what} images must be uint8 arrays of shape (N, H, W, 3), got {shape}")
    dtype_ok = images.dtype == np.uint8 if isinstance(images, np.ndarray) else images.dtype == torch.uint8
    if not dtype_ok:
        raise ValueError(f"{what} images must be uint8 (decoded pixels), got {images.dtype}")
    if shape[0] == 0:
        raise ValueError(f"{what} set is empty")
    if len(labels) != shape[0]:
        raise ValueError(f"{what}: {shape[0]} images but {len(labels)} labels")
    return images, labels


def to_device(images, labels, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, H, W, 3) and int64 labels on ``device`` (a no-op when already there)."""
    if not isinstance(images, torch.Tensor):
        images = np.ascontiguousarray(images)
        if not images.flags.writeable:  # memory-mapped caches are read-only; torch wants to own a copy
            images = images.copy()
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(images)
    y = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return x.to(device, non_blocking=True), y.to(device=device, dtype=torch.int64, non_blocking=True)


def _normalise(batch_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool):
    x = batch_u8.permute(0, 3, 1, 2).float()  # a channels-last view of NCHW
    x = (x - mean) / std
    return x if channels_last else x.contiguous()


def _translate(x: torch.Tensor, r: int, generator: torch.Generator) -> torch.Tensor:
    """Shift every image by its own random (dy, dx) in [-r, r]^2, filling by reflection."""
    b, c, h, w = x.shape
    xp = F.pad(x, (r, r, r, r), mode="reflect")
    sy = torch.randint(0, 2 * r + 1, (b,), generator=generator, device=x.device)
    sx = torch.randint(0, 2 * r + 1, (b,), generator=generator, device=x.device)
    rows = (sy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * r)
    x = xp.gather(2, rows)
    cols = (sx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return x.gather(3, cols)


class _Sampler:
    """An endless stream of shuffled epochs; a batch may span two epochs (or more if n < batch)."""

    def __init__(self, n: int, generator: torch.Generator, device):
        self.n, self.g, self.device = n, generator, device
        self.epoch, self.pos = 0, 0
        self.perm = torch.randperm(n, generator=generator, device=device)

    def next(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        parts, epochs = [], []
        while size > 0:
            if self.pos == self.n:
                self.perm = torch.randperm(self.n, generator=self.g, device=self.device)
                self.pos, self.epoch = 0, self.epoch + 1
            take = min(size, self.n - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            epochs.append(torch.full((take,), self.epoch, device=self.device, dtype=torch.int64))
            self.pos += take
            size -= take
        if len(parts) == 1:
            return parts[0], epochs[0]
        return torch.cat(parts), torch.cat(epochs)


def _lr_factor(step: int, total: int, c: TrainConfig) -> float:
    peak = c.warmup * total
    if step < peak:
        return c.lr_start + (1 - c.lr_start) * step / peak
    frac = (step - peak) / max(total - peak, 1)
    if c.schedule == "onecycle":
        return 1 + (c.lr_end - 1) * frac
    return c.lr_end + (1 - c.lr_end) * 0.5 * (1 + math.cos(math.pi * frac))


class _Lookahead:
    """airbench's weight averaging: every few steps, pull an EMA toward the weights and reset to it."""

    def __init__(self, model: torch.nn.Module):
        self.pairs = [(v, v.detach().clone()) for v in model.state_dict().values() if v.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        for live, avg in self.pairs:
            avg.lerp_(live, 1 - decay)
            live.copy_(avg)


# ---------------------------------------------------------------------------------------------
# The network and evaluation


def build_network(config: TrainConfig, num_classes: int, mean: torch.Tensor, std: torch.Tensor, device,
                  pretrained: bool | None = None) -> torch.nn.Module:
    """``config.network`` on ``device`` as the trainer runs it: behind the JPEG layer when configured,
    in channels-last layout when set; fresh weights (``pretrained``: the config's unless given)."""
    pretrained = config.pretrained if pretrained is None else pretrained
    model = models.create(config.network, num_classes, pretrained=pretrained).to(device)
    if config.jpeg_layer:  # undoes the normalisation, so the layer sees the augmented 0-255 pixels
        layer = jpeg_layer.JpegLayer(config.jpeg_quality, config.jpeg_hardness, config.jpeg_max_step, config.jpeg_lr)
        model = jpeg_layer.JpegModel(layer, model, mean, std).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def usable_device(recorded: str) -> torch.device:
    """Where a network trained on ``recorded`` evaluates on this machine: there, or on the CPU
    when this machine has no CUDA device."""
    device = torch.device(recorded)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return device


@dataclass
class Trained:
    """A trained network with the normalisation it was trained under; evaluates any image set."""

    model: torch.nn.Module
    mean: torch.Tensor
    std: torch.Tensor
    config: TrainConfig
    device: torch.device
    num_classes: int

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """The network as CPU tensors (its weights ``model.*``, the input ``mean`` and ``std``) and
        plain JSON values that say how to rebuild it (:meth:`from_state`)."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update(mean=self.mean.detach().cpu().contiguous(), std=self.std.detach().cpu().contiguous())
        return tensors, {"train_config": self.config.params(), "num_classes": int(self.num_classes),
                         "device": str(self.device)}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], config: dict, device=None) -> "Trained":
        """The network of :meth:`to_state`, on ``device`` (default: :func:`usable_device` of the one
        it was trained on). Rebuilding it draws no numbers from the caller's torch generator."""
        train_config = TrainConfig(**config["train_config"]).validate()
        num_classes = int(config["num_classes"])
        device = torch.device(device) if device is not None else usable_device(config["device"])
        mean, std = tensors["mean"].to(device), tensors["std"].to(device)
        with torch.random.fork_rng(devices=[]):  # fresh weights, overwritten below
            model = build_network(train_config, num_classes, mean, std, device, pretrained=False)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        return cls(model, mean, std, train_config, device, num_classes)

    @torch.no_grad()
    def logits(self, images, tta: int | None = None) -> torch.Tensor:
        tta = self.config.tta if tta is None else tta
        x_all = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
        x_all = x_all.to(self.device)
        self.model.eval()
        out = []
        for start in range(0, len(x_all), self.config.eval_batch_size):
            x = _normalise(x_all[start:start + self.config.eval_batch_size], self.mean, self.std,
                           self.config.channels_last)
            with _autocast(self.device, self.config):
                y = self.model(x).float()
                if tta >= 1:
                    y = 0.5 * y + 0.5 * self.model(x.flip(-1)).float()
                if tta >= 2:
                    h, w = x.shape[-2:]
                    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
                    shifted = [xp[:, :, :h, :w], xp[:, :, 2:, 2:]]
                    t = sum(0.5 * self.model(s).float() + 0.5 * self.model(s.flip(-1)).float() for s in shifted) / 2
                    y = 0.5 * y + 0.5 * t
            out.append(y)
        return torch.cat(out)

    def evaluate(self, images, labels, tta: int | None = None) -> dict:
        check_images(images, labels, "test")
        pred = self.logits(images, tta).argmax(1).cpu().numpy()
        y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"test labels must lie in [0, {self.num_classes}), got {y.min()}..{y.max()}")
        return classification_metrics(pred, y, self.num_classes)


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_precision(device: torch.device, config: TrainConfig) -> str:
    """The autocast type a run on ``device`` uses ("fp32": none), with "auto" resolved."""
    if device.type == "cuda":
        return config.precision
    if device.type != "cpu":
        return "fp32"
    if config.cpu_precision == "auto":
        return "bf16" if cpu_autocast_problem("bf16") is None else "fp32"
    return config.cpu_precision


def _autocast(device: torch.device, config: TrainConfig):
    precision = autocast_precision(device, config)
    if device.type in ("cuda", "cpu") and precision in _DTYPES:
        return torch.autocast(device.type, dtype=_DTYPES[precision])
    return torch.autocast(device.type, enabled=False)


def cpu_autocast_problem(precision: str) -> str | None:
    """Why this CPU cannot autocast to ``precision`` (None when it can): oneDNN must support the type."""
    if precision in ("fp32", "auto"):
        return None
    check = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    try:
        supported = bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):
        supported = False
    if supported:
        return None
    return (f"cpu_precision={precision!r}: this CPU has no oneDNN {precision} support "
            f"(torch.ops.mkldnn.{check}() is False); use cpu_precision='fp32'")


def check_cpu_run(config: TrainConfig, steps: int) -> None:
    """Refuse, before any work, a CPU run that cannot run as configured (one-line reasons)."""
    if config.threads is not None:
        threads.check(config.threads)
    problem = cpu_autocast_problem(config.cpu_precision)
    if problem:
        raise ValueError(problem)
    images = steps * config.batch_size
    if config.cpu_max_images is not None and images > config.cpu_max_images:
        raise ValueError(f"{steps} steps x batch {config.batch_size} = {images:,} training images is more than "
                         f"this CPU recipe's cap of {config.cpu_max_images:,} (cpu_max_images); lower steps or "
                         f"batch_size, or raise cpu_max_images on purpose")


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    error: float
    accuracy: float
    f1_macro: float
    f1_weighted: float
    train_seconds: float
    images_per_second: float
    steps: int
    epochs: float
    n_train: int
    final_loss: float
    losses: np.ndarray = field(repr=False)
    device: str = ""
    precision: str = "fp32"  # the autocast type the run used (cpu_precision "auto" resolved)
    trained: Trained | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        """The scalar metrics of a result row (no arrays, no model)."""
        return {k: getattr(self, k) for k in ("error", "accuracy", "f1_macro", "f1_weighted", "train_seconds",
                                              "images_per_second", "final_loss")}


def train(train_images, train_labels, test_images=None, test_labels=None, config: TrainConfig | None = None,
          seed: int = 0, num_classes: int | None = None, device=None, keep_model: bool = False) -> TrainResult:
    """Train ``config.network`` from scratch on (train_images, train_labels); score on the test set.

    Images are uint8 (N, H, W, 3) numpy arrays or tensors (already on the device is best: nothing
    is copied then). Without a test set the metrics are NaN (used by timing benchmarks). All input
    checks happen before any work.
    """
    config = (config or recipe("airnet", steps=10)).validate()
    check_images(train_images, train_labels, "training")
    labels_np = train_labels.cpu().numpy() if isinstance(train_labels, torch.Tensor) else np.asarray(train_labels)
    if num_classes is None:
        num_classes = int(labels_np.max()) + 1
    if labels_np.min() < 0 or labels_np.max() >= num_classes:
        raise ValueError(f"training labels must lie in [0, {num_classes}), got {labels_np.min()}..{labels_np.max()}")
    if num_classes < 2:
        raise ValueError("training needs at least two classes")
    if (test_images is None) != (test_labels is None):
        raise ValueError("give both test_images and test_labels, or neither")
    if test_images is not None:
        check_images(test_images, test_labels, "test")
    device = torch.device(device) if device is not None else default_device()
    n = len(train_labels)
    steps, epochs = resolve_budget(config, n)
    if device.type == "cpu":
        check_cpu_run(config, steps)
    with threads.limit(torch=config.threads if device.type == "cpu" else None):
        return _train(config, train_images, train_labels, test_images, test_labels, seed, num_classes, device,
                      keep_model, n, steps, epochs)


def _train(config: TrainConfig, train_images, train_labels, test_images, test_labels, seed: int, num_classes: int,
           device: torch.device, keep_model: bool, n: int, steps: int, epochs: float) -> TrainResult:
    """The training loop of :func:`train`, after its checks."""

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    x_train, y_train = to_device(train_images, train_labels, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) * 7919 + 17)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    start = time.perf_counter()
    stats = x_train[: min(n, 10_000)].float()
    mean = stats.mean(dim=(0, 1, 2)).view(1, 3, 1, 1)
    std = stats.std(dim=(0, 1, 2)).clamp_min(1.0).view(1, 3, 1, 1)
    del stats
    torch.manual_seed(int(seed))
    model = build_network(config, num_classes, mean, std, device)
    if hasattr(model, "init_whitening"):
        model.init_whitening(_normalise(x_train[: min(n, 5000)], mean, std, False))
    step_model = torch.compile(model) if config.compile else model

    norm_types = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    table_ids = {id(p) for p in jpeg_layer.table_parameters(model)}  # the JPEG tables train with Adam
    norms = [p for p in model.parameters() if p.requires_grad and id(p) in norm_ids]
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in norm_ids | table_ids]
    groups = [dict(params=other, lr=config.lr, weight_decay=config.weight_decay)]
    if norms:  # normalisation parameters: scaled lr, the same decay per step
        groups.append(dict(params=norms, lr=config.lr * config.bias_lr_scale,
                           weight_decay=config.weight_decay / config.bias_lr_scale))
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    optimizers = [optimizer]
    if table_ids:  # the tables' Adam follows the network's schedule factor, as in the paper's code
        optimizers.append(torch.optim.Adam(jpeg_layer.param_groups(model)))
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: _lr_factor(s, steps, config)) for o in optimizers]
    lookahead = _Lookahead(model) if config.ema == "lookahead" else None
    flip_bits = torch.randint(0, 2, (n,), generator=gen, device=device) if config.flip == "alt" else None
    sampler = _Sampler(n, gen, device)
    freeze_at = int(config.whiten_bias_frac * steps) if hasattr(model, "first_bias") else None
    losses = torch.zeros(steps, device=device)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.precision == "fp16")

    model.train()
    for step in range(steps):
        if freeze_at is not None and step == freeze_at:
            model.first_bias.requires_grad_(False)
            model.first_bias.grad = None
        idx, ep = sampler.next(config.batch_size)
        x = _normalise(x_train[idx], mean, std, config.channels_last)
        if config.flip == "random":
            mask = torch.rand(len(idx), generator=gen, device=device) < 0.5
            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
        elif config.flip == "alt":  # each image alternates between mirrored and not, epoch by epoch
            mask = ((flip_bits[idx] + ep) % 2).bool()
            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
        if config.translate > 0:
            x = _translate(x, config.translate, gen)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, config):
            logits = step_model(x)
        loss = F.cross_entropy(logits.float(), y_train[idx], label_smoothing=config.label_smoothing)
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        for o in optimizers:
            scaler.step(o)
        scaler.update()
        for sch in schedulers:
            sch.step()
        losses[step] = loss.detach()
        if lookahead is not None and (step + 1) % config.ema_every == 0:
            lookahead.update(0.95 ** 5 * ((step + 1) / steps) ** 3)
    if lookahead is not None:
        lookahead.update(1.0)  # final weights = the average
    sync()
    seconds = time.perf_counter() - start

    trained = Trained(model, mean, std, config, device, num_classes)
    metrics = {"error": float("nan"), "accuracy": float("nan"), "f1_macro": float("nan"), "f1_weighted": float("nan")}
    if test_images is not None:
        metrics = trained.evaluate(test_images, test_labels)
    losses_np = losses.cpu().numpy()
    tail = losses_np[-max(1, steps // 10):]
    return TrainResult(
        error=metrics["error"], accuracy=metrics["accuracy"], f1_macro=metrics["f1_macro"],
        f1_weighted=metrics["f1_weighted"], train_seconds=seconds,
        images_per_second=steps * config.batch_size / seconds, steps=steps, epochs=epochs, n_train=n,
        final_loss=float(tail.mean()), losses=losses_np, device=str(device),
        precision=autocast_precision(device, config),
        trained=trained if keep_model else None,
    )


# ---------------------------------------------------------------------------------------------
# Protocol selection (step 3-4 of the module docstring)


def choose_protocol(frame, max_change: float = 0.01) -> dict:
    """Pick (steps, lr) from a validation sweep table with columns n, steps, lr, error.

    For each step budget the best lr is the one with the lowest mean error at the largest n; the
    chosen budget is the smallest S whose errors at the smallest and the largest n change by at
    most ``max_change`` when the budget doubles (2S must be in the table).
    """
    import pandas as pd

    df = pd.DataFrame(frame)
    need = {"n", "steps", "lr", "error"}
    if not need <= set(df.columns):
        raise ValueError(f"selection table needs columns {sorted(need)}, has {sorted(df.columns)}")
    mean = df.groupby(["steps", "lr", "n"], as_index=False)["error"].mean()
    n_small, n_large = mean["n"].min(), mean["n"].max()
    best = {}
    for s, g in mean.groupby("steps"):
        at_large = g[g["n"] == n_large].sort_values("error")
        if at_large.empty:
            continue
        lr = float(at_large.iloc[0]["lr"])
        errs = g[g["lr"] == lr].set_index("n")["error"]
        best[int(s)] = {"lr": lr, "small": float(errs.get(n_small, np.nan)), "large": float(errs.get(n_large, np.nan))}
    budgets = sorted(best)
    rows = []
    chosen = None
    for s in budgets:
        if 2 * s not in best:
            continue
        d_small = abs(best[2 * s]["small"] - best[s]["small"])
        d_large = abs(best[2 * s]["large"] - best[s]["large"])
        ok = d_small <= max_change and d_large <= max_change
        rows.append({"steps": s, "lr": best[s]["lr"], "change_small_n": d_small, "change_large_n": d_large, "stable": ok})
        if ok and chosen is None:
            chosen = s
    converged = chosen is not None
    if chosen is None:
        chosen = budgets[-1] if budgets else None
    if chosen is None:
        raise ValueError("the selection table has no complete step budget")
    return {"steps": int(chosen), "lr": best[chosen]["lr"], "converged": converged,
            "n_small": int(n_small), "n_large": int(n_large), "table": rows}

