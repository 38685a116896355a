"""``NetSettings``: the TSN network's settings (``model.net.*``), each declared once here with its
default and documentation line; ``TSN`` and ``build_backbone`` take their defaults from it."""

from __future__ import annotations

from dataclasses import dataclass

from ip_tsn.settings import setting


@dataclass(frozen=True)
class NetSettings:
    """``model.net``: the TSN network (``ip_tsn.models.TSN``'s arguments)."""

    arch: str = setting("resnet18", "any torchvision classification model (resnet18, mobilenet_v3_large, efficientnet_b0, ...)")
    dropout: float = setting(0.5, "dropout before the classifier head")
    pretrained: bool = setting(True, "start from ImageNet weights (torchvision's, or model.net.weights); a run that cannot load them stops")
    weights: str | None = setting(None, "the weights to start from: a local file (state dict) or a torchvision name (ResNet18_Weights.IMAGENET1K_V1)")
    allow_random_init: bool = setting(False, "when the weights cannot be loaded, train from random init (recorded in fit.json) instead of stopping")
    input_bn: bool = setting(False, "BatchNorm on the input (CoViAR's, for mv / residual inputs)")
    stem: str = setting("imagenet", "first layers: imagenet (7x7 conv + pool) or small (3x3, for 56-112 px inputs)")
