"""CNN models: ResNet backbones and the Temporal Segment Network (their settings: ``settings.py``).

The names below load on first use (PEP 562), so importing ``ip_tsn.models.settings`` (for the
config check) does not import torch."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"ARCHS": "backbones", "Backbone": "backbones", "build_backbone": "backbones",
          "inflate_conv": "backbones", "load_resnet": "backbones", "TSN": "tsn"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
