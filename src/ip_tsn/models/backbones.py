"""torchvision backbones (ResNets, or any classification model by name) with TSN cross-modality
first-conv initialisation, and the
weights they start from: torchvision's ImageNet weights, a local file, or (only when asked, and
recorded) random init."""

from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from ip_tsn.config import ConfigError
from ip_tsn.models.settings import NetSettings

ARCHS: dict[str, str] = {  # the ResNets' weights enums (their default weights: IMAGENET1K_V1, as CoViAR's)
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


def classification_archs() -> list[str]:
    """Every torchvision classification model name (``resnet18``, ``mobilenet_v3_large``, ``vit_b_16``, ...)."""
    return sorted(tvm.list_models(module=tvm))


def check_arch(arch: str) -> None:
    """``ValueError`` naming the closest names unless ``arch`` is a torchvision classification model."""
    archs = classification_archs()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose one of torchvision's {len(archs)} classification models"
        raise ValueError(f"unknown arch {arch!r}; {hint}")


def _weights_enum(arch: str, name: str | None) -> tvm.WeightsEnum:
    """torchvision weights of ``arch``: ``name`` a full name (``ResNet18_Weights.IMAGENET1K_V1``), a
    tag of ``arch``'s weights (``IMAGENET1K_V2``, ``DEFAULT``), or None (ResNets: ``IMAGENET1K_V1``;
    other models: their ``DEFAULT``)."""
    enum = tvm.get_model_weights(arch)
    if name is None:
        return enum[PRETRAINED_TAG] if arch in ARCHS else enum.DEFAULT
    if "." in name:
        try:
            weights = tvm.get_weight(name)
        except (ValueError, KeyError, AttributeError) as e:
            raise WeightsError(f"model.net.weights={name}: not a torchvision weights name ({e})") from None
        if type(weights) is not enum:
            raise WeightsError(f"model.net.weights={name}: weights of another architecture than {arch} ({enum.__name__}.*)")
        return weights
    if name not in enum.__members__:
        raise WeightsError(f"model.net.weights={name}: {enum.__name__} has {', '.join(enum.__members__)}")
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
    if any(str(k).startswith("model.backbone.") for k in state):  # a run's checkpoint: said so (2026-12-08)
        raise WeightsError(f"model.net.weights={path}: an ip-tsn checkpoint, not {type(net).__name__} weights "
                           "(model.net.weights takes a torchvision state dict such as the ImageNet .pth); to go on "
                           "from a run's checkpoint, pass it as ckpt_path")
    if missing or unexpected:
        raise WeightsError(f"model.net.weights={path}: not the weights of this network ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected keys, e.g. {(missing + unexpected)[0]})")


def load_resnet(arch: str, pretrained: bool = _N.pretrained, weights: str | None = _N.weights,
                allow_random_init: bool = _N.allow_random_init) -> tuple[nn.Module, str]:
    """A torchvision classification model (a ResNet, or any other by name) and what it starts from: ``"random"`` (not ``pretrained``, no
    ``weights``), the weights loaded (a file path or a torchvision name), or, when they cannot be
    loaded and ``allow_random_init``, ``"random (<what> not loaded: <why>)"`` with one warning.
    Otherwise a weights failure raises :class:`WeightsError` (one line: offline, missing file, ...).

    ``weights``: a local file (``.pth`` state dict) or a torchvision weights name; None with
    ``pretrained``: torchvision's ``IMAGENET1K_V1`` (hub cache or download)."""
    check_arch(arch)

    def builder(weights: tvm.WeightsEnum | None = None) -> nn.Module:
        return tvm.get_model(arch, weights=weights)

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
            return builder(weights=enum), f"{type(enum).__name__}.{enum.name}"
        except Exception as e:  # noqa: BLE001 - offline, corrupt cache, hash mismatch
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
            raise WeightsError(f"{type(enum).__name__}.{enum.name} cannot be loaded ({type(e).__name__}: "
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


def _named(net: nn.Module, kind: type[nn.Module], last: bool = False) -> tuple[str, nn.Module]:
    """The first (or ``last``) submodule of type ``kind`` of ``net``: ``(dotted name, module)``."""
    found = [(n, m) for n, m in net.named_modules() if isinstance(m, kind)]
    if not found:
        raise ValueError(f"{type(net).__name__} has no {kind.__name__}: not a classification CNN ip-tsn can adapt")
    return found[-1] if last else found[0]


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


class Backbone(nn.Module):
    """A torchvision classification model without its classifier: ``(N, C, H, W) -> (N,
    feature_dim)`` pooled features. Its head (the last ``Linear``: ResNet's ``fc``, VGG's and
    MobileNet's ``classifier[-1]``, ViT's ``heads.head``, ...) becomes identity; its first ``Conv2d``
    (ResNet's ``conv1``) is inflated to ``in_channels`` (TSN's cross-modality init).

    ``input_bn`` is a ``BatchNorm2d(C)`` on the raw input (CoViAR's mv/residual models) or
    identity.
    """

    def __init__(self, net: nn.Module, in_channels: int, input_bn: bool) -> None:
        super().__init__()
        head_name, head = _named(net, nn.Linear, last=True)
        self.feature_dim: int = head.in_features
        _replace(net, head_name, nn.Identity())
        self.first_conv_name, conv = _named(net, nn.Conv2d)
        if in_channels != conv.in_channels:
            _replace(net, self.first_conv_name, inflate_conv(conv, in_channels))
        bns = [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
        self.first_bn_name = bns[0] if bns else None
        self.input_bn: nn.Module = nn.BatchNorm2d(in_channels) if input_bn else nn.Identity()
        self.net = net
        self.weights_from = "random"  # what build_backbone loaded (load_resnet's answer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim)."""
        return self.net(self.input_bn(x))

    def first_layer_modules(self) -> list[nn.Module]:
        """The input BN, the first conv and the first BN (ResNet's ``bn1``): CoViAR's 0.1x
        learning-rate group."""
        names = [self.first_conv_name, *([self.first_bn_name] if self.first_bn_name else [])]
        return [self.input_bn, *(self.net.get_submodule(n) for n in names)]


def build_backbone(
    arch: str, in_channels: int, pretrained: bool, input_bn: bool = _N.input_bn, stem: str = _N.stem,
    weights: str | None = _N.weights, allow_random_init: bool = _N.allow_random_init,
) -> tuple[Backbone, int]:
    """A torchvision classification model ``arch`` (any of :func:`classification_archs`) taking
    ``in_channels`` input channels, without its classifier; ``stem``: ``imagenet`` or ``small`` (ResNets) (:func:`small_input_stem`; ImageNet weights are kept for the rest of the net);
    ``pretrained`` / ``weights`` / ``allow_random_init``: :func:`load_resnet`'s.

    Returns ``(backbone, feature_dim)``; ``backbone((N, C, H, W)) -> (N, feature_dim)``;
    ``backbone.weights_from`` says what it started from.
    """
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")
    net, weights_from = load_resnet(arch, pretrained, weights, allow_random_init)
    if stem == "small":
        if not isinstance(net, tvm.ResNet):
            raise ValueError(f"stem='small' replaces a ResNet's stem; {arch} is a {type(net).__name__}: use stem='imagenet'")
        small_input_stem(net)
    backbone = Backbone(net, in_channels, input_bn)
    backbone.weights_from = weights_from
    return backbone, backbone.feature_dim
