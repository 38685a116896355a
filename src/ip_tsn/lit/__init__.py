"""Lightning modules, optimisation, the checkpoint reader and the Lightning callbacks (teacher-cache
writer, test-score writer). Fusion, statistics and reports live in :mod:`ip_tsn.evaluation`.

The names below load on first use (PEP 562), so importing a light module of this package (its
settings, for the config check) does not import Lightning."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"TeacherCacheWriter": "cache_writer", "StreamClassifier": "classifier",
          "DistillationModule": "distillation", "kd_loss": "distillation", "SaveTestScores": "scores"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
