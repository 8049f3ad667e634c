"""Network architectures, registered by name (``create_net("vgg_compact")``).

Every net maps a ``(N, 1, 48, 48)`` normalised grey face to two heads:

* ``logits``: 7-way classification (softmax at inference),
* ``intensity_logits``: 7 independent intensities (sigmoid at inference), trained with
  sigmoid cross-entropy on FER+ vote fractions (the Xu et al. regression head).

The four seed architectures follow their papers, adapted to 48x48 grey input (``liu_cnn`` is
Liu's 4-layer CNN with the switches of the paper's ablation grid); ``emonet`` is ours, designed
for the 2-core CPU training budget. A net's arguments carry their ranges in their annotations
(``Annotated[int, Field(ge=1)]``): ``check_net`` validates a recipe's ``[net] args`` against
them and builds the net on the meta device before any data loads.
"""

from __future__ import annotations

import difflib
import inspect
import typing
import warnings
from typing import Annotated, Callable, Literal

import torch
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
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


MAX_PARAMETERS = 100_000_000  # ~1.6 GB with gradients, optimizer state and the weight average
_BUILDABLE: set[str] = set()  # (name, args) already checked by check_net: building is deterministic


def _as_tuples(value):
    """TOML arrays are lists; the nets' signatures say tuples."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def check_net(name: str, args: dict) -> None:
    """Raise ``ValueError`` (one line: the argument and the fix) unless ``create_net(name, **args)`` builds
    a net that maps a 48x48 face to the two heads.

    Names and types are checked against the net function's signature and the ranges its
    annotations carry; then the net is built on the meta device (no memory, no time) and run once.
    """
    key = repr((name, sorted(args.items()) if isinstance(args, dict) else args))
    if key in _BUILDABLE:
        return
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list_nets(), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown network {name!r}{hint}; choose one of: {', '.join(list_nets())}")
    fn = _REGISTRY[name]
    params = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn, include_extras=True)
    for key, value in args.items():
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]}?)" if close else ""
            takes = f"it takes {', '.join(params)}" if params else "it takes no arguments: use args = {}"
            raise ValueError(f"unknown argument {key!r} for {name}{hint}; {takes}")
        try:
            TypeAdapter(hints.get(key, typing.Any), config=ConfigDict(strict=True, allow_inf_nan=False)) \
                .validate_python(_as_tuples(value))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = "".join(f"[{i}]" for i in err["loc"])
            raise ValueError(f"{key}{where} = {err['input']!r} for {name}: {err['msg'].lower()}") from None
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
            net = create_net(name, **{k: _as_tuples(v) for k, v in args.items()})
            n = count_parameters(net)
            if n > MAX_PARAMETERS:
                raise ValueError(f"{n / 1e6:.0f} M parameters, more than the {MAX_PARAMETERS // 1_000_000} M "
                                 "this CPU trainer allows; use a smaller width or fewer blocks")
            net(torch.empty(2, 1, 48, 48))
    except Exception as exc:  # noqa: BLE001 - any failure to build is the recipe's
        shown = ", ".join(f"{k} = {v!r}" for k, v in args.items()) or "its defaults"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{name} with {shown} cannot be built: {reason[:200]}") from None
    _BUILDABLE.add(key)


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


# the nonlinearities a net can be built with (none has parameters: a checkpoint's keys do not depend on it)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
}


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, act: str = "relu") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), ACTIVATIONS[act]()
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

    def __init__(self, c_in: int, c_out: int, stride: int = 1, se: bool = False, act: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), ACTIVATIONS[act](),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
            SqueezeExcite(c_out) if se else nn.Identity(),
        )
        self.shortcut = (
            nn.Identity() if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = ACTIVATIONS[act]()

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
    """Liu's network as the seed comparison trained it: a stem conv and 3 strided residual blocks
    (7 convs, ReLU, dropout 0.3). Not the paper's plain 4-layer CNN with its ablation switches:
    that is ``liu_cnn``; this one stays as it is for its seed runs' checkpoints."""
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
def liu_cnn(activation: Literal["relu", "elu", "tanh"] = "relu",
            dropout: Annotated[float, Field(ge=0, le=0.9)] = 0.5,
            residual: bool = True) -> EmotionNet:
    """Liu's 4-layer CNN with the switches of the paper's ablation grid.

    Four conv layers (3x3 conv, batch norm, activation) of 32, 64, 128 and 256 channels, each
    followed by 2x2 max-pooling (48 -> 24 -> 12 -> 6 -> 3 px), then flatten, dense 256 and the
    two heads. ``residual`` adds one residual block after each layer's pooling (two 3x3 convs
    of the same width around an identity shortcut), so "on" also means 8 more convs; "off" is
    the plain 4-layer CNN. ``dropout`` is the rate before the heads; each conv layer drops half
    of it after its pooling (0.5 gives the common 0.25 / 0.5 pattern); 0 turns both off.
    ``activation`` is every nonlinearity of the net (conv layers, residual blocks, dense layer).
    """
    layers: list[nn.Module] = []
    c_in = 1
    for c in (32, 64, 128, 256):
        layers += [conv_bn(c_in, c, act=activation), nn.MaxPool2d(2)]
        if residual:
            layers.append(ResidualBlock(c, c, act=activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout / 2))
        c_in = c
    layers += [nn.Flatten(), nn.Linear(256 * 3 * 3, 256), ACTIVATIONS[activation]()]
    return EmotionNet(nn.Sequential(*layers), 256, head_dropout=dropout)


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
def emonet(width: Annotated[int, Field(ge=1, le=512)] = 32,
           blocks: Annotated[tuple[Annotated[int, Field(ge=0, le=16)], ...], Field(min_length=1, max_length=6)] = (1, 2, 2, 2),
           se: bool = True, dropout: Annotated[float, Field(ge=0, lt=1)] = 0.3) -> EmotionNet:
    """Ours: a compact ResNet with squeeze-excitation, shaped for the CPU training budget.

    One 3x3 conv at full 48x48 resolution keeps fine detail (mouth corners, brows), a
    strided conv halves the grid early (where convs cost most), then residual stages of
    widths ``w, 2w, 4w, 8w`` at 24, 12, 6, 3 px and global pooling. Measured on the 2-core
    CPU (fp32, batch 128) this trains at ~280 img/s, twice the speed of the same widths
    without the early stride.
    """
    if se and width < 16:  # the excitation bottleneck has width // 16 channels
        raise ValueError(f"width = {width} is too narrow for squeeze-excitation (se = true): use width >= 16 or se = false")
    layers: list[nn.Module] = [conv_bn(1, width), conv_bn(width, width, stride=2)]
    c_in = width
    for stage, n in enumerate(blocks):
        c_out = width * 2 ** stage
        for i in range(n):
            layers.append(ResidualBlock(c_in, c_out, stride=2 if (i == 0 and stage > 0) else 1, se=se))
            c_in = c_out
    layers.append(_gap())
    return EmotionNet(nn.Sequential(*layers), c_in, head_dropout=dropout)
