"""Temporal Segment Network: a 2D CNN per segment and average consensus over segments."""

from __future__ import annotations

import torch
from torch import nn

from ip_tsn.models.backbones import build_backbone
from ip_tsn.models.settings import NetSettings

_N = NetSettings()  # model.net defaults (models/settings.py), the only ones


class TSN(nn.Module):
    """TSN over ``in_channels``-channel inputs (3 rgb/iframe, 2 mv, 3 residual, 5 p, 10 flow).

    ``stem``: ``imagenet`` (7x7 stride-2 conv + max-pool: /4) or ``small`` (3x3 stride-1 conv, no
    pool: for crops of 32-64 px, whose ImageNet-stem maps end at 1x1-2x2; 16x the compute).
    ``forward((B, K, C, H, W)) -> (logits (B, num_classes), features (B, D))``: the average over
    the K segments (any K, e.g. 25 segments x 10 crops at test) of per-frame logits and pooled
    features. ``num_segments`` is the training K, kept for reference only. ``pretrained`` /
    ``weights`` / ``allow_random_init``: what the backbone starts from (``backbone.weights_from``
    says what it did; :func:`~ip_tsn.models.backbones.load_resnet`).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        arch: str = _N.arch,
        num_segments: int = 3,
        dropout: float = _N.dropout,
        pretrained: bool = _N.pretrained,
        input_bn: bool = _N.input_bn,
        stem: str = _N.stem,
        weights: str | None = _N.weights,
        allow_random_init: bool = _N.allow_random_init,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_segments = num_segments
        self.backbone, self.feature_dim = build_backbone(arch, in_channels, pretrained, input_bn, stem, weights,
                                                         allow_random_init)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.feature_dim, num_classes)
        nn.init.normal_(self.fc.weight, std=0.001)  # TSN's head init
        nn.init.zeros_(self.fc.bias)

    def forward_frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (logits (N, num_classes), features (N, D)), one per frame."""
        features = self.backbone(x)
        return self.fc(self.dropout(features)), features

    def forward_segments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, C, H, W) -> (logits (B, K, num_classes), features (B, K, D)), no consensus."""
        b, k = x.shape[:2]
        logits, features = self.forward_frames(x.flatten(0, 1))
        return logits.view(b, k, -1), features.view(b, k, -1)

    def map_module(self, layer: str) -> nn.Module:
        """The backbone's module named ``layer`` (``layer1``-``layer4`` of a ResNet; any dotted
        submodule name), whose output (N, C, h, w) the spatial distillation term matches."""
        try:
            return self.backbone.net.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in self.backbone.net.named_children()]
            raise ValueError(f"spatial_layer={layer!r}: no such module in the backbone; its top-level modules: "
                             f"{', '.join(names)}") from None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, C, H, W) -> (logits (B, num_classes), features (B, D)), averaged over K."""
        logits, features = self.forward_segments(x)
        return logits.mean(dim=1), features.mean(dim=1)

    def parameter_groups(self, backbone_lr_mult: float, first_conv_lr_mult: float) -> list[dict]:
        """CoViAR learning-rate groups: ``[{"name", "params", "lr_mult"}, ...]``.

        ``first_conv``: input BN, the first conv and BN at ``first_conv_lr_mult`` (CoViAR uses 0.1
        for mv/residual); ``backbone``: the rest of the network; ``head``: fc at 1. The values come
        from ``model.optim`` (``OptimSettings``, whose defaults are the only ones).
        """
        first = [p for m in self.backbone.first_layer_modules() for p in m.parameters()]
        first_ids = {id(p) for p in first}
        rest = [p for p in self.backbone.parameters() if id(p) not in first_ids]
        return [
            {"name": "first_conv", "params": first, "lr_mult": first_conv_lr_mult},
            {"name": "backbone", "params": rest, "lr_mult": backbone_lr_mult},
            {"name": "head", "params": list(self.fc.parameters()), "lr_mult": 1.0},
        ]
