"""CNN models: ResNet backbones and the Temporal Segment Network."""

from ip_tsn.models.backbones import ARCHS, Backbone, build_backbone, inflate_conv, load_resnet
from ip_tsn.models.tsn import TSN

__all__ = ["ARCHS", "Backbone", "TSN", "build_backbone", "inflate_conv", "load_resnet"]
