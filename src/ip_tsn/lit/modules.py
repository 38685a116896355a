"""The LightningModule kinds by name (``MODULES``, the ``module`` config key and the kind a
checkpoint records), and :func:`load_module`: a trained one from its checkpoint. Used by the stage
runner (:mod:`ip_tsn.stages`) and by deployment (:mod:`ip_tsn.deploy`) alike."""

from __future__ import annotations

import io
import os
import warnings

import pytorch_lightning as pl
import torch

from ip_tsn.lit.checkpoint_info import checkpoint_kind, read_checkpoint
from ip_tsn.lit.classifier import StreamClassifier
from ip_tsn.lit.distillation import DistillationModule
from ip_tsn.lit.model_settings import nest_flat_hparams

MODULES: dict[str, type[pl.LightningModule]] = {"classifier": StreamClassifier, "distill": DistillationModule}


def load_module(path: str | os.PathLike, use: str = "", modality: str | None = None,
                stage: str | None = None) -> pl.LightningModule:
    """A trained StreamClassifier or DistillationModule from its checkpoint (weights only); the
    kind is the one the checkpoint records (``ip_tsn_module``; older checkpoints: guessed from their
    hyperparameters), and checkpoints with flat hyperparameters (before ``model.net`` / ``model.optim``) load too.
    A broken checkpoint, or one of another ``modality`` / ``stage`` than ``use`` expects, is refused
    (``CheckpointError``, :func:`ip_tsn.lit.checkpoint_info.read_checkpoint`)."""
    raw = read_checkpoint(path, use, modality=modality, stage=stage)
    cls = MODULES[str(checkpoint_kind(raw)["module"])]
    stored = raw.get("hyper_parameters") or {}
    hp = nest_flat_hparams(stored)  # flat: written before model.net / model.optim
    groups = {"net": {**hp.get("net", {}), "pretrained": False, "weights": None}, "optim": hp.get("optim", {})}
    source: str | os.PathLike | io.BytesIO = path
    if hp.keys() != dict(stored).keys():  # the flat layout: load it as the nested one (no stale arguments)
        source = io.BytesIO()
        torch.save({**raw, "hyper_parameters": hp}, source)
        source.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checkpoint holds the weights: none are loaded first
        # the groups given here win over the stored hyperparameters; a loaded network runs eagerly
        return cls.load_from_checkpoint(source, map_location="cpu", weights_only=True, compile=None, **groups)
