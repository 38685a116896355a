"""What a stream checkpoint holds besides weights, so that it can run on any video on its own.

Lightning already stores the DataModule's arguments (``datamodule_hyper_parameters``: modality,
crop and scale sizes, test segments and crops, ...); :class:`SaveClassNames` adds the class names
(``checkpoint["class_names"]``), and :func:`stream_info` reads both back. Checkpoints written
before class names were stored get them from the dataset's split files when these still exist.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from ip_tsn.data.datasets import load_classes

CLASS_NAMES_KEY = "class_names"
DATAMODULE_KEY = "datamodule_hyper_parameters"
PREPROCESS_DEFAULTS: dict[str, Any] = {"modality": None, "crop_size": 224, "scale_size": 256,
                                       "test_segments": 25, "test_crops": 1, "accumulate": True,
                                       "flow_length": 5, "flip": True}


class SaveClassNames(Callback):
    """Store ``class_names`` (by 0-based label) in every checkpoint the trainer saves."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = [str(c) for c in class_names]

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CLASS_NAMES_KEY] = list(self.class_names)


def read_class_file(path: str | os.PathLike) -> list[str]:
    """Class names from ``classInd.txt`` (``1 Name``) or a file with one name per line."""
    lines = [ln.strip() for ln in open(path, encoding="utf-8-sig") if ln.strip()]
    numbered = all(ln.split(maxsplit=1)[0].isdigit() and " " in ln for ln in lines)
    return [ln.split(maxsplit=1)[1] for ln in lines] if numbered and lines else lines


def stream_info(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """``{"class_names": list[str] | None, "num_classes", "in_channels", **preprocessing}`` of a
    loaded checkpoint dict (``torch.load``); preprocessing keys as in ``PREPROCESS_DEFAULTS``.

    Raises ``ValueError`` naming ``source`` when the checkpoint has no DataModule arguments.
    """
    dm = dict(checkpoint.get(DATAMODULE_KEY) or {})
    hp = dict(checkpoint.get("hyper_parameters") or {})
    if not dm.get("modality"):
        raise ValueError(f"{source}: no DataModule arguments (modality, sizes) in the checkpoint; "
                         "was it written by `ip-tsn fit`?")
    info = {k: dm.get(k, v) for k, v in PREPROCESS_DEFAULTS.items()}
    names = checkpoint.get(CLASS_NAMES_KEY)
    if names is None and dm.get("dataset") and dm.get("root"):
        try:  # older checkpoints: the dataset's split files, if they are still there
            names = load_classes(dm["dataset"], dm["root"], int(dm.get("split", 1)),
                                 class_list=dm.get("class_list"))
        except (ValueError, OSError):
            names = None
    info.update(class_names=list(names) if names is not None else None,
                num_classes=int(hp["num_classes"]), in_channels=int(hp["in_channels"]))
    return info


def read_stream_info(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`stream_info` of the checkpoint file ``path`` (memory-mapped, weights only)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return stream_info(checkpoint, str(path))
