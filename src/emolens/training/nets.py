"""Network architectures, registered by name (``create_net("vgg_compact")``).

Every net maps a ``(N, 1, 48, 48)`` normalised grey face to two heads:

* ``logits``: 7-way classification (softmax at inference),
* ``intensity_logits``: 7 independent intensities (sigmoid at inference), trained with
  sigmoid cross-entropy on FER+ vote fractions (the Xu et al. regression head).

The four seed architectures follow their papers, adapted to 48x48 grey input; ``emonet``
is ours, designed for the 2-core CPU training budget.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from emolens.emotions import EMOTIONS

N_EMOTIONS = len(EMOTIONS)
_REGISTRY: dict[str, Callable[..., "EmotionNet"]] = {}


def register_net(fn: Callable[..., "EmotionNet"]) -> Callable[..., "EmotionNet"]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_nets() -> list[str]:
    return sorted(_REGISTRY)


def create_net(name: str, **kwargs) -> "EmotionNet":
    if name not in _REGISTRY:
        raise ValueError(f"unknown network {name!r}; choose one of: {', '.join(list_nets())}")
    net = _REGISTRY[name](**kwargs)
    net.arch = name
    net.arch_kwargs = dict(kwargs)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class EmotionNet(nn.Module):
    """A feature extractor ending in a flat vector, and the two heads on top of it."""

    arch: str = ""
    arch_kwargs: dict = {}

    def __init__(self, features: nn.Module, n_features: int, head_dropout: float = 0.0):
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(n_features, N_EMOTIONS)
        self.intensity = nn.Linear(n_features, N_EMOTIONS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(self.features(x))
        return self.classifier(h), self.intensity(h)


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, se: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
            SqueezeExcite(c_out) if se else nn.Identity(),
        )
        self.shortcut = (
            nn.Identity() if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def _gap() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register_net
def baseline_cnn() -> EmotionNet:
    """Santhapalli et al.: 3 stages of 2 convs (64, 128, 256), BN, max-pool, dropout
    0.25 -> 0.45, global average pooling, dense 128."""
    layers: list[nn.Module] = []
    c_in = 1
    for c, p in zip((64, 128, 256), (0.25, 0.35, 0.45)):
        layers += [conv_bn(c_in, c), conv_bn(c, c), nn.MaxPool2d(2), nn.Dropout(p)]
        c_in = c
    layers += [_gap(), nn.Linear(256, 128), nn.ReLU(inplace=True)]
    return EmotionNet(nn.Sequential(*layers), 128, head_dropout=0.45)


@register_net
def resemotenet() -> EmotionNet:
    """Santhapalli et al.'s ResEmoteNet: 3 convs, squeeze-excitation, 3 residual blocks,
    dense 1024/512/256 with dropout 0.5 (residual widths reduced for 48x48)."""
    features = nn.Sequential(
        conv_bn(1, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2),
        conv_bn(128, 256), nn.MaxPool2d(2),
        SqueezeExcite(256),
        ResidualBlock(256, 256), ResidualBlock(256, 384, stride=2), ResidualBlock(384, 512),
        _gap(),
        nn.Linear(512, 1024), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(1024, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, 256), nn.ReLU(inplace=True),
    )
    return EmotionNet(features, 256, head_dropout=0.5)


@register_net
def residual_cnn() -> EmotionNet:
    """Liu: a 4-layer CNN with batch norm and ReLU, residual blocks and dropout."""
    features = nn.Sequential(
        conv_bn(1, 32),
        ResidualBlock(32, 64, stride=2),
        ResidualBlock(64, 128, stride=2),
        ResidualBlock(128, 256, stride=2),
        nn.Dropout(0.3),
        _gap(),
    )
    return EmotionNet(features, 256, head_dropout=0.3)


@register_net
def vgg_compact() -> EmotionNet:
    """Xu et al.'s reduced VGG-S (5 convs, 2 dense layers), adapted to 48x48 grey faces."""
    features = nn.Sequential(
        conv_bn(1, 64, 5), nn.MaxPool2d(2),
        conv_bn(64, 128, 5), nn.MaxPool2d(2),
        conv_bn(128, 256), conv_bn(256, 256), conv_bn(256, 256), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, 512), nn.ReLU(inplace=True),
    )
    return EmotionNet(features, 512, head_dropout=0.5)


@register_net
def emonet(width: int = 32, blocks: tuple[int, ...] = (1, 2, 2, 2), se: bool = True, dropout: float = 0.3) -> EmotionNet:
    """Ours: a compact ResNet with squeeze-excitation, shaped for the CPU training budget.

    One 3x3 conv at full 48x48 resolution keeps fine detail (mouth corners, brows), a
    strided conv halves the grid early (where convs cost most), then residual stages of
    widths ``w, 2w, 4w, 8w`` at 24, 12, 6, 3 px and global pooling. Measured on the 2-core
    CPU (fp32, batch 128) this trains at ~280 img/s, twice the speed of the same widths
    without the early stride.
    """
    layers: list[nn.Module] = [conv_bn(1, width), conv_bn(width, width, stride=2)]
    c_in = width
    for stage, n in enumerate(blocks):
        c_out = width * 2 ** stage
        for i in range(n):
            layers.append(ResidualBlock(c_in, c_out, stride=2 if (i == 0 and stage > 0) else 1, se=se))
            c_in = c_out
    layers.append(_gap())
    return EmotionNet(nn.Sequential(*layers), c_in, head_dropout=dropout)
