"""ResNet backbones (torchvision) with TSN cross-modality first-conv initialisation."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchvision import models as tvm

ARCHS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}
PRETRAINED_TAG = "IMAGENET1K_V1"
_unavailable: set[str] = set()  # archs whose weights failed to load in this process
_warned: list[bool] = [False]  # one warning per process


def load_resnet(arch: str, pretrained: bool) -> tvm.ResNet:
    """A torchvision ResNet; ImageNet weights if ``pretrained`` and loadable, else random init.

    Loading goes through torchvision (``weights=IMAGENET1K_V1``: local hub cache or download).
    A failure (offline, missing file) falls back to random init with one warning per process.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    builder = getattr(tvm, arch)
    if not pretrained or arch in _unavailable:
        return builder(weights=None)
    weights = getattr(tvm, ARCHS[arch])[PRETRAINED_TAG]
    try:
        return builder(weights=weights)
    except Exception as err:  # offline, corrupt cache, hash mismatch: never crash
        _unavailable.add(arch)
        if not _warned[0]:
            _warned[0] = True
            warnings.warn(
                f"ImageNet weights for {arch} ({weights.url}) could not be loaded "
                f"({type(err).__name__}: {err}); using random initialisation instead. "
                "Put the file in torch.hub's checkpoint cache to use them. "
                "(Reported once per process.)",
                RuntimeWarning,
                stacklevel=2,
            )
        return builder(weights=None)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, feature_dim)."""
        return self.net(self.input_bn(x))

    def first_layer_modules(self) -> list[nn.Module]:
        """The input BN, the first conv and its BN (CoViAR's 0.1x learning-rate group)."""
        return [self.input_bn, self.net.conv1, self.net.bn1]


def build_backbone(
    arch: str, in_channels: int, pretrained: bool, input_bn: bool = False, stem: str = "imagenet"
) -> tuple[Backbone, int]:
    """A ResNet ``arch`` taking ``in_channels`` input channels, without fc; ``stem``: ``imagenet``
    or ``small`` (:func:`small_input_stem`; ImageNet weights are kept for the rest of the net).

    Returns ``(backbone, feature_dim)``; ``backbone((N, C, H, W)) -> (N, feature_dim)``.
    """
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")
    net = load_resnet(arch, pretrained)
    if stem == "small":
        small_input_stem(net)
    backbone = Backbone(net, in_channels, input_bn)
    return backbone, backbone.feature_dim
