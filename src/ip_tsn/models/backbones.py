"""ResNet backbones (torchvision) with TSN cross-modality first-conv initialisation, and the
weights they start from: torchvision's ImageNet weights, a local file, or (only when asked, and
recorded) random init."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from ip_tsn.config import ConfigError
from ip_tsn.models.settings import NetSettings

ARCHS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}
PRETRAINED_TAG = "IMAGENET1K_V1"
_N = NetSettings()  # model.net defaults (models/settings.py), the only ones


class WeightsError(ConfigError):
    """Weights a run asked for that cannot be loaded; one line naming them and the ways out."""


def _weights_enum(arch: str, name: str | None) -> tvm.WeightsEnum:
    """torchvision weights of ``arch``: ``name`` a full name (``ResNet18_Weights.IMAGENET1K_V1``), a
    tag of ``arch``'s weights (``IMAGENET1K_V2``, ``DEFAULT``), or None (``IMAGENET1K_V1``)."""
    enum = getattr(tvm, ARCHS[arch])
    if name is None:
        return enum[PRETRAINED_TAG]
    if "." in name:
        try:
            weights = tvm.get_weight(name)
        except (ValueError, KeyError, AttributeError) as e:
            raise WeightsError(f"model.net.weights={name}: not a torchvision weights name ({e})") from None
        if type(weights) is not enum:
            raise WeightsError(f"model.net.weights={name}: weights of another architecture than {arch} ({ARCHS[arch]}.*)")
        return weights
    if name not in enum.__members__:
        raise WeightsError(f"model.net.weights={name}: {ARCHS[arch]} has {', '.join(enum.__members__)}")
    return enum[name]


def _load_file(net: tvm.ResNet, path: Path) -> None:
    """A state dict from ``path`` (plain, or under ``state_dict`` / ``model``) into ``net``, strictly."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise WeightsError(f"model.net.weights={path}: not a readable weights file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"model.net.weights={path}: holds a {type(state).__name__}, not a state dict")
    missing, unexpected = [], []
    try:
        result = net.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as e:  # shape mismatch
        raise WeightsError(f"model.net.weights={path}: does not fit {type(net).__name__} "
                           f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e})") from None
    if missing or unexpected:
        raise WeightsError(f"model.net.weights={path}: not the weights of this network ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected keys, e.g. {(missing + unexpected)[0]})")


def load_resnet(arch: str, pretrained: bool = _N.pretrained, weights: str | None = _N.weights,
                allow_random_init: bool = _N.allow_random_init) -> tuple[tvm.ResNet, str]:
    """A torchvision ResNet and what it starts from: ``"random"`` (not ``pretrained``, no
    ``weights``), the weights loaded (a file path or a torchvision name), or, when they cannot be
    loaded and ``allow_random_init``, ``"random (<what> not loaded: <why>)"`` with one warning.
    Otherwise a weights failure raises :class:`WeightsError` (one line: offline, missing file, ...).

    ``weights``: a local file (``.pth`` state dict) or a torchvision weights name; None with
    ``pretrained``: torchvision's ``IMAGENET1K_V1`` (hub cache or download)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    builder = getattr(tvm, arch)
    if not pretrained and weights is None:
        return builder(weights=None), "random"
    is_file = weights is not None and (os.sep in weights or weights.endswith((".pth", ".pt")) or Path(weights).exists())
    try:
        if is_file:
            net = builder(weights=None)
            _load_file(net, Path(weights))  # type: ignore[arg-type]
            return net, str(weights)
        enum = _weights_enum(arch, weights)
        try:
            return builder(weights=enum), f"{ARCHS[arch]}.{enum.name}"
        except Exception as e:  # noqa: BLE001 - offline, corrupt cache, hash mismatch
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise WeightsError(f"{ARCHS[arch]}.{enum.name} cannot be loaded ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else 'no detail'}); put {Path(enum.url).name} at "
                               f"{cache}, or pass a local file with model.net.weights=PATH, or "
                               "model.net.pretrained=false to train from random init") from None
    except WeightsError as e:
        if not allow_random_init:
            raise
        warnings.warn(f"{e}; training from random init (model.net.allow_random_init=true)", RuntimeWarning, stacklevel=2)
        return builder(weights=None), f"random ({e})"


def inflate_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """TSN cross-modality init: a conv taking ``in_channels`` whose kernel is the mean of
    ``conv``'s kernel over its input channels, replicated ``in_channels`` times.

    weight (O, C_rgb, kh, kw) -> (O, in_channels, kh, kw).
    """
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.expand(-1, in_channels, -1, -1))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


STEMS = ("imagenet", "small")


def small_input_stem(net: tvm.ResNet) -> None:
    """Replace the ImageNet stem (7x7 stride-2 conv, 3x3 stride-2 max-pool: /4) by a 3x3 stride-1
    conv without pooling (CIFAR-style ResNets), in place: a 64 px crop then ends in an 8x8 map
    instead of 2x2. Costs 16x the stem-and-body compute at the same input size."""
    old = net.conv1
    net.conv1 = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()


class Backbone(nn.Module):
    """ResNet without its classifier: ``(N, C, H, W) -> (N, feature_dim)`` pooled features.

    ``input_bn`` is a ``BatchNorm2d(C)`` on the raw input (CoViAR's mv/residual models) or
    identity.
    """

    def __init__(self, net: tvm.ResNet, in_channels: int, input_bn: bool) -> None:
        super().__init__()
        self.feature_dim: int = net.fc.in_features
        net.fc = nn.Identity()
        if in_channels != net.conv1.in_channels:
            net.conv1 = inflate_conv(net.conv1, in_channels)
        self.input_bn: nn.Module = nn.BatchNorm2d(in_channels) if input_bn else nn.Identity()
        self.net = net
        self.weights_from = "random"  # what build_backbone loaded (load_resnet's answer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim)."""
        return self.net(self.input_bn(x))

    def first_layer_modules(self) -> list[nn.Module]:
        """The input BN, the first conv and its BN (CoViAR's 0.1x learning-rate group)."""
        return [self.input_bn, self.net.conv1, self.net.bn1]


def build_backbone(
    arch: str, in_channels: int, pretrained: bool, input_bn: bool = _N.input_bn, stem: str = _N.stem,
    weights: str | None = _N.weights, allow_random_init: bool = _N.allow_random_init,
) -> tuple[Backbone, int]:
    """A ResNet ``arch`` taking ``in_channels`` input channels, without fc; ``stem``: ``imagenet``
    or ``small`` (:func:`small_input_stem`; ImageNet weights are kept for the rest of the net);
    ``pretrained`` / ``weights`` / ``allow_random_init``: :func:`load_resnet`'s.

    Returns ``(backbone, feature_dim)``; ``backbone((N, C, H, W)) -> (N, feature_dim)``;
    ``backbone.weights_from`` says what it started from.
    """
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")
    net, weights_from = load_resnet(arch, pretrained, weights, allow_random_init)
    if stem == "small":
        small_input_stem(net)
    backbone = Backbone(net, in_channels, input_bn)
    backbone.weights_from = weights_from
    return backbone, backbone.feature_dim
