"""Accuracy under white-box attacks (FGSM, PGD), with the JPEG layer differentiated in its soft mode.

The attacks come from torchattacks (3.3.0, pinned: its later releases require ``requests~=2.25``,
which Sphinx 7.4's ``requests>=2.30`` excludes; 3.3.0 declares no requirements, and its FGSM and
PGD are the same code as in 3.5):

* FGSM (Goodfellow et al. 2015): one step ``x + eps * sign(grad_x loss)``;
* PGD (Madry et al. 2018): a uniform random start in the eps-ball, then ``steps`` signed-gradient
  steps of size ``alpha``, each projected back onto the L-infinity ball and onto [0, 1]. As in
  JPEG-DL's robustness script: 5 steps of ``alpha = 2.5 * eps / 5``, eps from 1/255 to 4/255.

Attacks act on pixels in [0, 1] (torchattacks' convention); :class:`PixelModel` maps them to the
trained network's input (x 255, the trainer's normalisation). Adversarial images stay floats (not
rounded to 8 bits).

**The JPEG layer is soft during the attack**, whatever mode it is evaluated in: hard rounding has
a zero gradient with respect to its input, so FGSM's ``sign(0) = 0`` would return the clean image
and PGD would only keep its random start; the model would look robust because the attacker is
blind, not because it is (gradient masking; Athalye et al. 2018). Attacking through the soft layer
is the paper's choice too (``attack_mode`` "soft"). The soft quantiser's slope is small on a level
(0.13 at hardness 5), so its gradient is attenuated too: ``attack_mode`` "bpda" keeps the soft
layer's forward value and differentiates the quantiser as the identity (BPDA, Athalye et al.'s
straight-through approximation; ``jpeg_layer.straight_through``). A gain that survives BPDA is not
gradient masking. The adversarial images are then scored with the layer in ``eval_mode`` ("soft"
by default, as trained; "hard" for the rounding ablation).

Clean accuracy is measured here on the same images, without test-time augmentation (the attacks
use none), so an attack's accuracy is comparable with it and never exceeds it by construction of
the attack (up to PGD's random start).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import jpeg_layer

ATTACKS = ("fgsm", "pgd")
ATTACK_MODES = ("soft", "bpda")  # gradient through the soft quantiser, or straight through it
DEFAULT_EPS = tuple(k / 255 for k in (1, 2, 3, 4))
PGD_STEPS = 5
PGD_ALPHA_FRACTION = 2.5 / 5  # alpha = 2.5 eps / steps (JPEG-DL's script; Madry et al.'s 2.5 eps / steps rule)


class PixelModel(nn.Module):
    """A trained network (``train.Trained``) as a function of [0, 1] RGB pixels (N, 3, H, W)."""

    def __init__(self, trained):
        super().__init__()
        self.net = trained.model
        self.register_buffer("mean", trained.mean.detach().reshape(1, 3, 1, 1).float().clone())
        self.register_buffer("std", trained.std.detach().reshape(1, 3, 1, 1).float().clone())

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net((x01 * 255.0 - self.mean) / self.std).float()


def _check(attack: str, eps, steps: int) -> list[float]:
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    eps = [float(e) for e in np.atleast_1d(eps)]
    if not eps or any(not 0 <= e <= 1 for e in eps):
        raise ValueError(f"eps must be in [0, 1] (pixels scaled to [0, 1]; 1/255 is one grey level), got {eps}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"PGD steps must be a positive integer, got {steps!r}")
    return eps


def make_attack(model: nn.Module, attack: str, eps: float, steps: int = PGD_STEPS):
    """A torchattacks attack on a [0, 1]-pixel model."""
    import torchattacks

    _check(attack, eps, steps)
    if attack == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    return torchattacks.PGD(model, eps=eps, alpha=PGD_ALPHA_FRACTION * eps, steps=steps, random_start=True)


def input_gradient(trained, images, labels, mode: str = "soft", straight_through: bool = False) -> torch.Tensor:
    """d(cross-entropy)/d(pixels in [0, 1]) with the JPEG layer in ``mode`` (zero in "hard" mode
    unless ``straight_through``: then the quantiser differentiates as the identity)."""
    model = PixelModel(trained).eval()
    x = _pixels(images, trained.device).requires_grad_(True)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=trained.device)
    with jpeg_layer.quantizer_mode(model, mode), jpeg_layer.straight_through(model, straight_through):
        loss = nn.functional.cross_entropy(model(x), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _pixels(images, device) -> torch.Tensor:
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    return x.to(device).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def robustness_curve(trained, images, labels, attacks=ATTACKS, eps=DEFAULT_EPS, steps: int = PGD_STEPS,
                     eval_mode="soft", attack_modes=("soft",), batch_size: int = 500, seed: int = 0,
                     progress: bool = False) -> list[dict]:
    """Accuracy of ``trained`` (a ``train.Trained``) on clean and attacked images: one row per
    (attack mode, attack, eps), plus a clean row (attack and attack mode "none", eps 0), for each
    evaluation mode.

    The attack differentiates through the JPEG layer in its soft mode, in each of ``attack_modes``:
    "soft" (the soft quantiser's gradient) and/or "bpda" (straight through it). The attacked images
    are scored with the layer in ``eval_mode``: "soft", "hard", or several, e.g. ``("soft", "hard")``,
    which scores the *same* adversarial images in each mode (one attack, rows for every mode: the
    hard-rounding ablation then differs from the soft evaluation only through the layer). Models
    without a JPEG layer are attacked once with their own gradient and give one set of rows
    (``eval_mode`` and ``attack_mode`` "none"). PGD's random start is seeded by ``seed`` (the global
    torch generator is restored afterwards).
    """
    from tqdm.auto import tqdm

    attacks = tuple(attacks)
    if not attacks:
        raise ValueError(f"name at least one attack of {ATTACKS}")
    for a in attacks:
        eps = _check(a, eps, steps)
    modes = (eval_mode,) if isinstance(eval_mode, str) else tuple(eval_mode)
    if not modes or any(m not in ("soft", "hard") for m in modes) or len(set(modes)) != len(modes):
        raise ValueError(f"eval_mode must be 'soft', 'hard' or a tuple of distinct ones, got {eval_mode!r}")
    attack_modes = (attack_modes,) if isinstance(attack_modes, str) else tuple(attack_modes)
    if not attack_modes or any(m not in ATTACK_MODES for m in attack_modes) \
            or len(set(attack_modes)) != len(attack_modes):
        raise ValueError(f"attack_modes must be distinct ones of {ATTACK_MODES}, got {attack_modes!r}")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images) or len(labels) == 0:
        raise ValueError(f"{len(images)} images but {len(labels)} labels (need the same, non-zero number)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = trained.device
    model = PixelModel(trained).to(device).eval()
    has_layer = bool(jpeg_layer.layers(model))
    if not has_layer:
        modes = modes[:1]  # no layer: every mode is the same network, every attack the same gradient
        attack_modes = ("none",)
    keys = [("none", "none", 0.0)] + [(g, a, e) for g in attack_modes for a in attacks for e in eps]
    correct = {(m, *k): 0 for m in modes for k in keys}
    n = len(labels)
    bar = tqdm(total=n * len(keys), desc="attacks", disable=not progress)

    def score(images_, y_, g, a, e):
        for m in modes:
            with torch.no_grad(), jpeg_layer.quantizer_mode(model, m):
                correct[(m, g, a, e)] += int((model(images_).argmax(1) == y_).sum())

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        for start in range(0, n, batch_size):
            x = _pixels(images[start:start + batch_size], device)
            y = torch.from_numpy(labels[start:start + batch_size]).to(device)
            score(x, y, "none", "none", 0.0)
            bar.update(len(y))
            for g, a, e in keys[1:]:
                with jpeg_layer.quantizer_mode(model, "soft"), jpeg_layer.straight_through(model, g == "bpda"):
                    adv = make_attack(model, a, e, steps)(x, y)
                score(adv, y, g, a, e)
                bar.update(len(y))
    bar.close()
    return [{"attack": a, "eps": e, "eps_255": round(e * 255, 6), "accuracy": c / n, "n": n,
             "pgd_steps": steps if a == "pgd" else 0, "attack_mode": g,
             "eval_mode": m if has_layer else "none", "seed": int(seed)}
            for (m, g, a, e), c in correct.items()]
