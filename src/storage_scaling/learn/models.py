"""Networks for small images, trained from scratch: one for 32 px (CIFAR-10), one for 64 px (Food-101).

* ``airnet`` (32 px): in the spirit of airbench (Jordan 2024): a fixed 2x2 "whitening" convolution
  initialised from the training images' patch covariance, then three conv groups
  (conv, max-pool, batch norm, GELU, conv, batch norm, GELU) of widths 64/256/256, global max-pool
  and a linear head. Written here from the idea, not copied. Batch norms have a fixed scale of 1
  (only their bias learns) and a fast running-statistics momentum; convolutions start close to
  identity maps (Dirac init on the first input channels).
* ``resnet18_64`` (64 px): timm's ResNet-18 with a 3x3 stride-2 stem and no max-pool (32x32 feature
  maps after the stem), the fast variant measured on an H100 (about 45,000 images/s uncompiled);
  ``resnet18_64_s1`` keeps the stem at stride 1 (slower, a little more accurate).
* ``airnet_small`` and ``resnet10_64``: narrow / shallow variants for CPU smoke runs and tests.
* ``cnn_cpu`` (32 px): a plain CNN in airnet's layout without its tricks (three groups of two
  conv-BN-ReLU with a max-pool after the first conv), global max-pool and a linear head: the network a 2-core CPU trains end to end in
  about three minutes (the book's second CPU tier, beside the linear probe).

``create(name, num_classes, pretrained=False)`` builds any of them; an unknown name raises a
``ValueError`` listing the known ones. ``pretrained=True`` (timm models only) needs internet access
to fetch ImageNet weights; the stem is replaced afterwards, so only the later layers stay pretrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


# ---------------------------------------------------------------------------------------------
# airnet (32 px)


class _Conv(nn.Conv2d):
    """3x3 'same' convolution without bias, initialised near the identity (Dirac on shared channels)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        nn.init.dirac_(w[: min(w.size(0), w.size(1))])


class _BatchNorm(nn.BatchNorm2d):
    """Batch norm with a frozen unit scale (only the bias learns) and fast running statistics."""

    def __init__(self, channels: int, momentum: float = 0.6, eps: float = 1e-12):
        super().__init__(channels, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad_(False)


class _ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__()
        self.conv1 = _Conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _BatchNorm(c_out, bn_momentum)
        self.conv2 = _Conv(c_out, c_out)
        self.norm2 = _BatchNorm(c_out, bn_momentum)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirNet(nn.Module):
    """Whitening conv + three conv groups + max-pool + linear head (see the module docstring)."""

    def __init__(self, num_classes: int = 10, widths=(64, 256, 256), whiten_kernel: int = 2,
                 bn_momentum: float = 0.6, logit_scale: float = 1 / 9):
        super().__init__()
        whiten_width = 2 * 3 * whiten_kernel ** 2
        self.whiten = nn.Conv2d(3, whiten_width, whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from data, never trained
        nn.init.zeros_(self.whiten.bias)
        self.act = nn.GELU()
        chans = (whiten_width, *widths)
        self.groups = nn.Sequential(*[_ConvGroup(chans[i], chans[i + 1], bn_momentum) for i in range(3)])
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale

    @property
    def first_bias(self) -> nn.Parameter:
        """The whitening layer's bias: trained only early in a run (the trainer freezes it)."""
        return self.whiten.bias

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to whiten image patches: eigenvectors / sqrt(eigenvalues), and negated.

        ``images``: normalised float batch (N, 3, H, W) of training images.
        """
        k = self.whiten.kernel_size[0]
        x = images.float()
        patches = x.unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)
        cov = (patches.T @ patches / len(patches)).double().cpu()
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.flip(0), evecs.flip(1)  # largest first
        filters = (evecs.T / torch.sqrt(evals.clamp_min(0) + eps)[:, None]).reshape(-1, 3, k, k)
        w = torch.cat([filters, -filters]).to(self.whiten.weight.device, self.whiten.weight.dtype)
        self.whiten.weight.copy_(w)

    def forward(self, x):
        x = self.act(self.whiten(x))
        x = self.groups(x)
        x = self.pool(x).flatten(1)
        return self.head(x) * self.logit_scale


# ---------------------------------------------------------------------------------------------
# cnn_cpu (32 px): small enough for a CPU


class CpuCNN(nn.Module):
    """Three groups of (conv, 2x2 max-pool, BN, ReLU, conv, BN, ReLU); global max-pool; linear head.

    airbench's layout (pool right after a group's first conv, so its second conv runs at a quarter of
    the pixels) with plain layers, so that a CPU runs it near its peak: six 3x3 convolutions for
    about the multiply-adds of three at full resolution.
    """

    def __init__(self, num_classes: int = 10, widths=(32, 64, 128)):
        super().__init__()
        layers, c_in = [], 3
        for width in widths:
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


# ---------------------------------------------------------------------------------------------
# ResNets (64 px) from timm


def _timm_resnet(variant: str, num_classes: int, pretrained: bool, stem_stride: int,
                 layers=None) -> nn.Module:
    import timm

    if layers is None:
        model = timm.create_model(variant, pretrained=pretrained, num_classes=num_classes)
    else:  # a shallower ResNet from the same building blocks (never pretrained)
        if pretrained:
            raise ValueError(f"no pretrained weights exist for the shallow variant {variant!r}; "
                             "use pretrained=False")
        from timm.models.resnet import BasicBlock, ResNet

        model = ResNet(block=BasicBlock, layers=layers, num_classes=num_classes)
    width = model.conv1.out_channels
    model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=stem_stride, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    image_size: int  # the resolution it is designed for (any size works; pooling is global)
    build: Callable[[int, bool], nn.Module]  # (num_classes, pretrained) -> module
    description: str
    timm: bool = False
    cpu_trainable: bool = False  # a full-size run is practical on a 2-core CPU (no --allow-cpu needed)


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(f"network {name!r} is our own and has no pretrained weights; use pretrained=False")


def _airnet(widths):
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        _no_pretrained("airnet", pretrained)
        return AirNet(num_classes, widths=widths)
    return build


def _cpu_cnn(widths):
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        _no_pretrained("cnn_cpu", pretrained)
        return CpuCNN(num_classes, widths=widths)
    return build


NETWORKS: dict[str, NetworkSpec] = {
    "airnet": NetworkSpec("airnet", 32, _airnet((64, 256, 256)),
                          "airbench-style CNN for 32 px, widths 64/256/256"),
    "airnet_small": NetworkSpec("airnet_small", 32, _airnet((16, 32, 32)),
                                "narrow airnet (16/32/32) for CPU smoke runs and tests"),
    "cnn_cpu": NetworkSpec("cnn_cpu", 32, _cpu_cnn((32, 64, 128)),
                           "plain CNN, 3 stages of conv-BN-ReLU + max-pool (32/64/128), for a 2-core CPU",
                           cpu_trainable=True),
    "resnet18_64": NetworkSpec("resnet18_64", 64,
                               lambda k, p: _timm_resnet("resnet18", k, p, stem_stride=2),
                               "timm ResNet-18, 3x3 stride-2 stem, no max-pool", timm=True),
    "resnet18_64_s1": NetworkSpec("resnet18_64_s1", 64,
                                  lambda k, p: _timm_resnet("resnet18", k, p, stem_stride=1),
                                  "timm ResNet-18, 3x3 stride-1 stem, no max-pool (slower)", timm=True),
    "resnet10_64": NetworkSpec("resnet10_64", 64,
                               lambda k, p: _timm_resnet("resnet10", k, p, stem_stride=2, layers=[1, 1, 1, 1]),
                               "one BasicBlock per stage (ResNet-10), stride-2 stem, for CPU smoke runs",
                               timm=True),
}


def check_network(name: str) -> NetworkSpec:
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name]


def create(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """Build a registered network with a fresh ``num_classes``-way head."""
    spec = check_network(name)
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return spec.build(int(num_classes), bool(pretrained))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
