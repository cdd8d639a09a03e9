"""A differentiable JPEG layer with 128 trainable quantisation steps, trained with the network (JPEG-DL).

JPEG-DL (Salamah et al., ICLR 2025) puts a JPEG "encode then decode" in front of a network and
trains its quantisation tables jointly with the network's weights. The layer here does, on RGB
images of **0-255 floats** (N, 3, H, W), what a baseline JPEG codec does without entropy coding
and without chroma subsampling:

1. level shift by 128 and RGB -> YCbCr (JFIF full-range BT.601, the conversion libjpeg uses);
2. replicate-pad to multiples of 8 (as libjpeg pads edge blocks; the paper zero-pads; CIFAR's
   32 px needs none) and cut 8x8 blocks;
3. orthonormal 2-D DCT-II of every block, ``D X D^T`` with ``D`` from ``scipy.fft.dct(eye(8),
   norm="ortho")`` (torch has no DCT); steps 1 and 3 run as one 192 x 192 matrix product per
   block, ``kron(C, kron(D, D))`` (one large GEMM is faster on a CPU than many 8x8 ones);
4. quantise each coefficient ``z`` with the step ``q`` of its frequency: one 8x8 table for luma,
   one shared by Cb and Cr, **64 + 64 = 128 trainable steps**;
5. inverse DCT, crop, YCbCr -> RGB, undo the level shift.

**Soft quantiser** (the paper's Eqs. 5-7, as in its code): with ``u = z / q`` and ``k = round(u)``
(detached), the levels ``i`` in a window of the ``WINDOW`` = 5 nearest integers ``k-2 .. k+2``
get probabilities ``softmax(-hardness * (u - i)^2)`` and the output is ``q * sum_i i P(i)``.
``hardness`` is the scale-free form ``hbar = alpha * q^2`` of the paper's ``alpha`` (its ImageNet
scripts fix hbar at 0.7-3; its CIFAR/fine-grained runs fix alpha = 5, i.e. hbar = 5 q^2): the soft
quantiser is then the same curve at every step size, ``Q(z; q) = q Q(z / q; 1)``. As hardness grows
it tends to rounding; at hbar of a few units it is a smooth staircase whose slope is non-zero
everywhere (at hbar = 5: 0.13 on a level, 2.5 between two), so gradients reach both the input
and the steps. It is computed in closed form with its analytic gradient (:class:`_SoftQuantize`),
checked against the softmax written out. The paper's code also clamps the
indices to ``num_bit`` = 8 bits; we do not (a DC coefficient reaches +-1024 when q = 1, and
clamping it would change the picture, not quantise it).

**Hard mode** (``layer.hard = True`` or :func:`quantizer_mode`): ``q * round(z / q)``, a real JPEG
quantiser for inference and the hard-rounding ablation. Its gradient with respect to the input is
exactly zero, so an attack through it sees a flat loss and fakes robustness; attacks must use the
soft mode (``robustness.py`` does) or the straight-through gradient.

**Straight-through** (:func:`straight_through`): the quantiser's forward value with the identity's
gradient (BPDA), the attack that tests whether robustness is only a small gradient.

**Steps stay positive**: ``q = softplus(raw) + MIN_STEP``. Softplus is close to the identity for
steps above a few units, so Adam's learning rate on ``raw`` is, as in the paper's code, roughly an
absolute change of the step per update.

**Initialisation**: the standard JPEG tables (ITU-T T.81 Annex K) at ``quality`` with libjpeg's
scaling (``jpeg_quality_scaling`` + ``jpeg_add_quant_table`` with ``force_baseline``: the tables
Pillow's ``quality=`` writes), then clamped at ``max_step`` (the paper scales its sensitivity-based
tables so that the largest step is ``q_max = 10``; a clamp keeps the standard table's small
low-frequency steps and caps the high frequencies).

**Optimiser**: the tables get their own Adam (``lr``, no weight decay) beside the network's SGD
(:func:`param_groups`); ``train.train`` does this when ``TrainConfig.jpeg_layer`` is true, with
the same learning-rate schedule factor as the network (the paper's code decays both together).

Every knob is recorded by :meth:`JpegLayer.params`; :data:`DEFAULTS` are our CPU defaults, not
the paper's values (which depend on its sensitivity-based initialisation).

:func:`bits_per_pixel` measures what a real encoder (Pillow / libjpeg-turbo) spends with the
learned steps, rounded and clamped to the integers 1-255 that baseline JPEG allows.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 8
WINDOW = 5  # quantisation levels in the softmax: the paper's num_non_zero_q
MIN_STEP = 1e-3  # steps are softplus(raw) + MIN_STEP > 0

# Our defaults (stated with every result through params()); the chapter sets its own.
DEFAULTS = dict(quality=75, hardness=5.0, max_step=10.0, lr=3e-3)

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
ANNEX_K_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
]).reshape(8, 8)
ANNEX_K_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
]).reshape(8, 8)

# JFIF full-range BT.601 (what libjpeg's RGB -> YCbCr converter computes, in floating point).
RGB_TO_YCBCR = np.array([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


# ---------------------------------------------------------------------------------------------
# Checks (one-line errors, before any work)


def check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be an integer from 1 to 100, got {quality!r}")
    return int(quality)


def check_params(quality, hardness, max_step, lr) -> dict:
    """The layer's knobs, checked; a ValueError names the first bad one and its valid range."""
    quality = check_quality(quality)
    for name, value in (("hardness", hardness), ("max_step", max_step), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(f"JPEG layer {name} must be a positive finite number, got {value!r}")
    if float(max_step) < 1:
        raise ValueError(f"JPEG layer max_step must be at least 1 (a step below one grey level quantises "
                         f"nothing), got {max_step!r}")
    return dict(quality=quality, hardness=float(hardness), max_step=float(max_step), lr=float(lr))


def check_rgb(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"the JPEG layer takes RGB images as a float tensor of shape (N, 3, H, W) "
                         f"with values 0-255, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"the JPEG layer takes float images (0-255), got dtype {x.dtype}; convert with .float()")


# ---------------------------------------------------------------------------------------------
# The pieces (plain functions: tested one by one)


def standard_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Annex K luma and chroma tables at ``quality`` with libjpeg's scaling (integers 1-255, 8x8)."""
    quality = check_quality(quality)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    out = []
    for base in (ANNEX_K_LUMA, ANNEX_K_CHROMA):
        table = (base * scale + 50) // 100
        out.append(np.clip(table, 1, 255).astype(np.int64))  # force_baseline: at most 255
    return out[0], out[1]


def initial_steps(quality: int, max_step: float) -> np.ndarray:
    """(2, 8, 8) float steps: the standard tables at ``quality``, clamped at ``max_step``."""
    luma, chroma = standard_tables(quality)
    return np.minimum(np.stack([luma, chroma]).astype(np.float64), float(max_step))


def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` (``D @ x`` is scipy's ``dct(x, norm="ortho")``)."""
    from scipy.fft import dct

    return dct(np.eye(n), norm="ortho", axis=0)


def to_blocks(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(N, C, H, W) -> (N, C, H8/8, W8/8, 8, 8) after replicate-padding to multiples of 8."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % BLOCK, (-w) % BLOCK
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    n, c, hp, wp = x.shape
    blocks = x.reshape(n, c, hp // BLOCK, BLOCK, wp // BLOCK, BLOCK).permute(0, 1, 2, 4, 3, 5)
    return blocks, (h, w)


def from_blocks(blocks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_blocks` (crops the padding)."""
    n, c, bh, bw = blocks.shape[:4]
    x = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, c, bh * BLOCK, bw * BLOCK)
    return x[..., : size[0], : size[1]]


class _SoftQuantize(torch.autograd.Function):
    """The soft quantiser in closed form, with its analytic gradient (the autograd of the explicit
    softmax keeps five copies of every coefficient and ran 5x slower on a CPU).

    With ``u = z / q``, ``k = round(u)``, ``r = u - k`` in [-1/2, 1/2] and window offsets
    ``o = -2..2``, ``softmax_o(-h (r - o)^2) = softmax_o(h (2 r o - o^2))`` (the ``-h r^2`` term
    cancels); every exponent ``h (2 r o - o^2)`` is <= 0, so nothing overflows at any hardness,
    offset 0 has weight 1, and the weights of +-2 are the squares of those of +-1 times exp(-2h). Then ``Q = q (k + m)`` with ``m = E[o]``, and with ``v = Var[o]``:
    ``dQ/dz = 2 h v`` and ``dQ/dq = k + m - 2 h v u``.
    """

    @staticmethod
    def forward(ctx, z, step, hardness: float):
        u = z / step
        k = torch.round(u)
        hr = (2 * hardness) * (u - k)
        a = torch.exp(hr - hardness)  # offset +1: exp(h (2r - 1)) <= 1
        b = torch.exp(-hr - hardness)  # offset -1
        far = math.exp(-2 * hardness)
        c = a * a * far  # offset +2: exp(h (4r - 4))
        d = b * b * far  # offset -2
        s0 = 1 + a + b + c + d
        m = (a - b + 2 * (c - d)) / s0
        v = ((a + b + 4 * (c + d)) / s0 - m * m).clamp_min(0)
        ctx.save_for_backward(u, k, m, v, step)
        ctx.hardness = hardness
        return step * (k + m)

    @staticmethod
    def backward(ctx, grad):
        u, k, m, v, step = ctx.saved_tensors
        slope = (2 * ctx.hardness) * v
        grad_z = grad * slope if ctx.needs_input_grad[0] else None
        grad_step = None
        if ctx.needs_input_grad[1]:
            g = grad * (k + m - slope * u)
            grad_step = g.sum_to_size(step.shape) if step.dim() else g.sum()  # undo the broadcast
        return grad_z, grad_step, None


def soft_quantize(z: torch.Tensor, step: torch.Tensor, hardness: float) -> torch.Tensor:
    """The soft quantiser: ``step * E[i]`` for ``P(i) = softmax_i(-hardness (z/step - i)^2)`` over
    the ``WINDOW`` = 5 integers nearest to ``z / step``; differentiable in ``z`` and ``step`` (which
    broadcasts against ``z``)."""
    step = torch.as_tensor(step, dtype=z.dtype, device=z.device)
    return _SoftQuantize.apply(z, step, float(hardness))


def hard_quantize(z: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Real JPEG quantisation then dequantisation: ``step * round(z / step)`` (zero input gradient)."""
    return step * torch.round(z / step)


def _inverse_softplus(y: np.ndarray) -> np.ndarray:
    return y + np.log(-np.expm1(-y))


# ---------------------------------------------------------------------------------------------
# The layer


class JpegLayer(nn.Module):
    """RGB (0-255) -> YCbCr -> 8x8 DCT -> soft (or hard) quantisation -> inverse -> RGB (0-255).

    Trainable: ``raw`` (2, 8, 8) = 128 numbers; :meth:`steps` gives the positive steps (luma, chroma).
    """

    def __init__(self, quality: int = DEFAULTS["quality"], hardness: float = DEFAULTS["hardness"],
                 max_step: float = DEFAULTS["max_step"], lr: float = DEFAULTS["lr"], hard: bool = False):
        super().__init__()
        p = check_params(quality, hardness, max_step, lr)
        self.quality, self.hardness, self.max_step, self.lr = p["quality"], p["hardness"], p["max_step"], p["lr"]
        self.hard = bool(hard)
        self.straight_through = False  # set by straight_through() for BPDA attacks; never in training
        self.initial = initial_steps(self.quality, self.max_step)
        self.raw = nn.Parameter(torch.empty(2, BLOCK, BLOCK))
        self.set_steps(self.initial)
        d2 = np.kron(dct_matrix(), dct_matrix())  # 2-D DCT on a row-major flattened block
        self.register_buffer("forward_map", torch.tensor(np.kron(RGB_TO_YCBCR, d2), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("inverse_map", torch.tensor(np.kron(YCBCR_TO_RGB, d2.T), dtype=torch.float32),
                             persistent=False)

    def params(self) -> dict:
        """Every knob of the layer as plain values (state them with every result)."""
        return dict(quality=self.quality, hardness=self.hardness, max_step=self.max_step, lr=self.lr,
                    window=WINDOW, parametrisation="softplus", padding="replicate")

    def steps(self) -> torch.Tensor:
        """The (2, 8, 8) positive steps: [luma, chroma], natural (row-major) frequency order."""
        return F.softplus(self.raw) + MIN_STEP

    @torch.no_grad()
    def set_steps(self, steps) -> None:
        """Set the (2, 8, 8) steps (each at least ``MIN_STEP``)."""
        s = np.asarray(steps.detach().cpu() if isinstance(steps, torch.Tensor) else steps, dtype=np.float64)
        if s.shape != (2, BLOCK, BLOCK):
            raise ValueError(f"JPEG steps must have shape (2, 8, 8) (luma, chroma), got {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s <= MIN_STEP):
            raise ValueError(f"JPEG steps must be finite and above {MIN_STEP}, got min {s.min()}")
        self.raw.copy_(torch.tensor(_inverse_softplus(s - MIN_STEP), dtype=self.raw.dtype))

    def param_groups(self) -> list[dict]:
        """The tables' Adam parameter group (no weight decay)."""
        return [dict(params=[self.raw], lr=self.lr, weight_decay=0.0)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rgb(x)
        # Always float32, even under autocast: in bf16 a DC coefficient near 1,000 would be
        # resolved to 4 grey levels, coarser than the steps being learned.
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float()).to(x.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # One linear map per 8x8 block and its inverse: (RGB -> YCbCr) x (2-D DCT) on the 192
        # values of a block, i.e. kron(C, kron(D, D)); a single matrix product instead of 8x8 ones.
        blocks, size = to_blocks(x - 128.0)  # N, 3, bh, bw, 8, 8
        n, _, bh, bw = blocks.shape[:4]
        flat = blocks.permute(0, 2, 3, 1, 4, 5).reshape(n, bh, bw, 3 * BLOCK * BLOCK)
        coeffs = (flat @ self.forward_map.T).view(n, bh, bw, 3, BLOCK * BLOCK)
        s = self.steps().reshape(2, BLOCK * BLOCK)
        step = torch.stack([s[0], s[1], s[1]])  # luma, chroma, chroma: (3, 64)
        quantized = hard_quantize(coeffs, step) if self.hard else soft_quantize(coeffs, step, self.hardness)
        if self.straight_through:  # BPDA: the quantiser's value, the identity's gradient
            quantized = coeffs + (quantized - coeffs).detach()
        coeffs = quantized
        flat = coeffs.reshape(n, bh, bw, 3 * BLOCK * BLOCK) @ self.inverse_map.T
        blocks = flat.view(n, bh, bw, 3, BLOCK, BLOCK).permute(0, 3, 1, 2, 4, 5)
        return from_blocks(blocks, size) + 128.0

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params().items()) + f", hard={self.hard}"


class JpegModel(nn.Module):
    """``net`` behind a JPEG layer, for a trainer that feeds normalised images ``(x - mean) / std``.

    The trainer normalises the uint8 images and then augments them (flips, reflect-padded
    translations: pixel permutations that commute with a per-channel affine map), so undoing the
    normalisation here gives exactly the augmented 0-255 pixels: the layer sits after augmentation
    and before the network's normalisation, as in the paper. The network sees the layer's output
    normalised with the same mean and std as a baseline network sees its input.
    """

    def __init__(self, layer: JpegLayer, net: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.layer, self.net = layer, net
        self.register_buffer("mean", mean.detach().reshape(1, 3, 1, 1).float().clone())
        self.register_buffer("std", std.detach().reshape(1, 3, 1, 1).float().clone())

    def jpeg(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images through the layer, normalised again."""
        return (self.layer(x * self.std + self.mean) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.jpeg(x))

    @property
    def first_bias(self):  # the trainer freezes airnet's whitening bias early; absent otherwise
        return self.net.first_bias

    @property
    def init_whitening(self):  # airnet: whiten what the network will see, the layer's output
        if not hasattr(self.net, "init_whitening"):
            raise AttributeError("init_whitening")

        @torch.no_grad()
        def init(images: torch.Tensor) -> None:
            self.net.init_whitening(self.jpeg(images))
        return init


# ---------------------------------------------------------------------------------------------
# Helpers for models that contain layers


def layers(model: nn.Module) -> list[JpegLayer]:
    return [m for m in model.modules() if isinstance(m, JpegLayer)]


def table_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The quantisation tables of every JPEG layer in ``model`` (empty without one)."""
    return [layer.raw for layer in layers(model)]


def param_groups(model: nn.Module) -> list[dict]:
    """Adam parameter groups of every JPEG layer in ``model`` (empty without one)."""
    return [g for layer in layers(model) for g in layer.param_groups()]


@contextlib.contextmanager
def quantizer_mode(model: nn.Module, mode: str):
    """Run with every JPEG layer of ``model`` in ``"soft"`` or ``"hard"`` mode; restore afterwards."""
    if mode not in ("soft", "hard"):
        raise ValueError(f"quantizer mode must be 'soft' or 'hard', got {mode!r}")
    found = layers(model)
    before = [layer.hard for layer in found]
    try:
        for layer in found:
            layer.hard = mode == "hard"
        yield found
    finally:
        for layer, hard in zip(found, before):
            layer.hard = hard


@contextlib.contextmanager
def straight_through(model: nn.Module, on: bool = True):
    """Run with every JPEG layer of ``model`` passing gradients through its quantiser unchanged.

    The forward value is the quantiser's (soft or hard, per :func:`quantizer_mode`); the backward
    pass treats quantisation as the identity, so the whole layer differentiates as the identity
    (its colour and DCT maps are inverse to each other). This is BPDA (Athalye, Carlini & Wagner
    2018): an attacker who is not slowed by the soft quantiser's small slope (0.13 on a level at
    hardness 5). If JPEG-DL's robustness gain survives this attack it is not gradient masking.
    """
    found = layers(model)
    before = [layer.straight_through for layer in found]
    try:
        for layer in found:
            layer.straight_through = bool(on)
        yield found
    finally:
        for layer, was in zip(found, before):
            layer.straight_through = was


def learned_tables(model_or_layer: nn.Module) -> dict:
    """The learned steps beside their initialisation, as (8, 8) float arrays (for heatmaps)."""
    found = layers(model_or_layer)
    if len(found) != 1:
        raise ValueError(f"expected exactly one JPEG layer in the model, found {len(found)}")
    layer = found[0]
    s = layer.steps().detach().cpu().double().numpy()
    return {"luma": s[0], "chroma": s[1], "luma_initial": layer.initial[0], "chroma_initial": layer.initial[1]}


# ---------------------------------------------------------------------------------------------
# Bits per pixel with a real encoder


def integer_tables(steps) -> tuple[np.ndarray, np.ndarray]:
    """Learned (2, 8, 8) steps (or a model/layer) rounded and clamped to baseline JPEG's 1-255."""
    if isinstance(steps, nn.Module):
        t = learned_tables(steps)
        steps = np.stack([t["luma"], t["chroma"]])
    s = np.asarray(steps.detach().cpu() if isinstance(steps, torch.Tensor) else steps, dtype=np.float64)
    if s.shape != (2, BLOCK, BLOCK) or not np.all(np.isfinite(s)):
        raise ValueError(f"steps must be a finite (2, 8, 8) array (luma, chroma), got shape {s.shape}")
    s = np.clip(np.rint(s), 1, 255).astype(np.int64)
    return s[0], s[1]


def encode(image: np.ndarray, tables: tuple[np.ndarray, np.ndarray] | None = None,
           quality: int | None = None) -> bytes:
    """One uint8 (H, W, 3) image as baseline JPEG bytes (Pillow, no chroma subsampling), with custom
    integer tables (natural order, Pillow's ``qtables`` order) or the standard ones at ``quality``."""
    from PIL import Image

    if (tables is None) == (quality is None):
        raise ValueError("give either tables (luma, chroma) or quality, not both")
    options = dict(format="JPEG", subsampling=0)
    if tables is None:
        options["quality"] = check_quality(quality)
    else:
        luma, chroma = (np.asarray(t) for t in tables)
        if luma.shape != (8, 8) or chroma.shape != (8, 8) or min(luma.min(), chroma.min()) < 1 \
                or max(luma.max(), chroma.max()) > 255:
            raise ValueError("JPEG tables must be two 8x8 integer arrays with steps 1-255; use integer_tables()")
        options["qtables"] = [[int(v) for v in luma.ravel()], [int(v) for v in chroma.ravel()]]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, **options)
    return buf.getvalue()


def scan_bytes(jpeg: bytes) -> int:
    """Bytes of a baseline JPEG file's entropy-coded data: the file less its marker segments (SOI,
    APP, DQT, SOF, DHT, SOS headers) and its EOI. Walks the segments (a table may hold any byte)."""
    if len(jpeg) < 4 or jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI marker)")
    pos = 2
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError(f"malformed JPEG: no marker at byte {pos}")
        marker = jpeg[pos + 1]
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: the entropy-coded data follows its header
            end = len(jpeg) - 2 if jpeg[-2:] == b"\xff\xd9" else len(jpeg)
            return end - pos
    raise ValueError("malformed JPEG: no SOS segment")


def bits_per_pixel(images: np.ndarray, tables: tuple[np.ndarray, np.ndarray] | None = None,
                   quality: int | None = None, headers: bool = True) -> float:
    """Mean bits per pixel of whole JPEG files (``headers=True``) or of their entropy-coded data
    alone (``headers=False``: at 32 px a file's ~600 header bytes, its tables, are ~5 bpp by
    themselves) over uint8 (N, H, W, 3) images."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"images must be a non-empty uint8 array of shape (N, H, W, 3), "
                         f"got {images.dtype} {images.shape}")
    if (tables is None) == (quality is None):
        raise ValueError("give either tables (luma, chroma) or quality, not both")
    size = len if headers else scan_bytes
    total = sum(size(encode(img, tables, quality)) for img in images)
    return 8.0 * total / (images.shape[0] * images.shape[1] * images.shape[2])
