"""A stream module's settings, as the config writes them, each declared once with its default and
documentation line: the TSN network (:class:`NetSettings`, ``model.net``, declared in
``models/settings.py`` beside the network), and here the optimiser with
its schedule (:class:`OptimSettings`, ``model.optim``), the classifier's own
(:class:`ClassifierSettings`, ``model.*``) and the distillation's (:class:`DistillSettings`,
``distill.*``). Frozen, typed; stored in checkpoints as plain dicts (``weights_only`` loading).

Checkpoints written before the net / optim groups existed hold the same keys flat in their
hyperparameters; :func:`nest_flat_hparams` moves them into ``net`` / ``optim``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ip_tsn.models.settings import NetSettings
from ip_tsn.settings import from_mapping, plain, setting

__all__ = ["NetSettings", "OptimSettings", "ClassifierSettings", "DistillSettings", "settings_from", "plain",
           "nest_flat_hparams", "NET_KEYS", "OPTIM_KEYS", "OPTIMIZERS", "SCHEDULES"]


OPTIMIZERS = ("sgd", "adam", "adamw")  # lit.optim.build_optimizer's
SCHEDULES = ("cosine", "step", "constant")  # lit.optim.lr_factor's
PREDICT_MODES = ("video", "frames")  # StreamClassifier.predict_step's
# What every stream module logs once an epoch that ``checkpoint.monitor`` may name, with the better
# direction (``checkpoint.mode``): StreamClassifier's validation metrics and its training loss
MONITORS = {"val/top1": "max", "val/top5": "max", "val/mean_class_acc": "max", "val/loss": "min",
            "train/loss_epoch": "min"}


def _at_least(settings: Any, low: float, names: tuple[str, ...], strict: bool = False) -> None:
    """``ValueError`` for the first of ``names`` below ``low`` (``strict``: not above it)."""
    for name in names:
        value = getattr(settings, name)
        if value < low or (strict and value == low):
            raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")


@dataclass(frozen=True)
class OptimSettings:
    """``model.optim``: optimiser, learning-rate multipliers and schedule (``lit.optim``'s arguments)."""

    optimizer: str = setting("adam", "sgd, adam or adamw")
    lr: float = setting(1e-3, "base learning rate (the head's)")
    weight_decay: float = setting(1e-4, "weight decay")
    momentum: float = setting(0.9, "SGD momentum")
    nesterov: bool = setting(False, "SGD Nesterov momentum")
    adam_eps: float = setting(1e-3, "Adam / AdamW epsilon")
    backbone_lr_mult: float = setting(1.0, "learning-rate multiplier of the backbone")
    first_conv_lr_mult: float = setting(1.0, "learning-rate multiplier of the first conv")
    schedule: str = setting("cosine", "cosine, step or constant")
    warmup_epochs: float = setting(1.0, "linear warmup (epochs)")
    lr_steps: tuple[float, ...] = setting((), "step schedule: epochs at which the rate drops")
    lr_gamma: float = setting(0.1, "step schedule: factor of each drop")

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _at_least(self, 0, ("lr", "adam_eps", "lr_gamma"), strict=True)
        _at_least(self, 0, ("weight_decay", "momentum", "backbone_lr_mult", "first_conv_lr_mult", "warmup_epochs"))
        if self.momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum}")


@dataclass(frozen=True)
class ClassifierSettings:
    """``model.*`` besides ``net`` / ``optim``: ``StreamClassifier``'s own arguments."""

    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy")
    predict_mode: str = setting("video", "predict: video (consensus per sample) or frames (every grid position)")
    frames_chunk: int = setting(64, "frames per forward pass in frames mode")
    compile: str | None = setting(None, "torch.compile the network with this backend (inductor: the usual; null: eager)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.predict_mode not in PREDICT_MODES:
            raise ValueError(f"predict_mode must be one of {', '.join(PREDICT_MODES)}, got {self.predict_mode!r}")
        _at_least(self, 1, ("frames_chunk",))
        if self.compile is not None:  # a typo was torch's InvalidBackend traceback until 2026-12-08
            from torch._dynamo import list_backends  # only where a backend is named: the check stays light

            known = list_backends(exclude_tags=())
            if self.compile not in known:
                close = difflib.get_close_matches(self.compile, known, n=1)
                raise ValueError(f"compile must name a torch.compile backend or be null, got {self.compile!r}"
                                 f"{f'; did you mean {close[0]}?' if close else ''} (torch._dynamo.list_backends())")


@dataclass(frozen=True)
class DistillSettings:
    """``distill.*``: generalized distillation (``DistillationModule``'s own arguments) and where the
    teacher's outputs come from."""

    imitation: float = setting(0.5, "lambda in [0, 1]: weight of the soft (teacher) term against the labels'")
    temperature: float = setting(2.0, "T of the soft term (scaled by T^2)")
    feat_weight: float = setting(1.0, "weight of the feature term (L2-normalised features)")
    projection: bool = setting(True, "a linear map from the student's features to the teacher's")
    per_segment: bool = setting(True, "each segment against the teacher on the same frame and view (false: consensus)")
    teacher_feature_dim: int | None = setting(None, "the teacher's feature size (null: the student's)")
    spatial_weight: float = setting(0.0, "weight of the spatial term: MSE of the student's feature map at spatial_layer "
                                         "to the online teacher's on the same view (FitNets; MARS: 50); needs online_teacher")
    spatial_layer: str = setting("layer4", "the backbone module whose output map the spatial term matches (layer1-layer4 "
                                           "of a ResNet)")
    online_teacher: bool = setting(False, "run the teacher on each batch's flow instead of reading the cache")

    def __post_init__(self) -> None:
        if not 0.0 <= self.imitation <= 1.0:
            raise ValueError(f"imitation (lambda) must be in [0, 1], got {self.imitation}")
        _at_least(self, 0, ("temperature",), strict=True)
        _at_least(self, 0, ("feat_weight", "spatial_weight"))


settings_from = from_mapping  # the groups above from a mapping (ip_tsn.settings)


NET_KEYS = tuple(f.name for f in fields(NetSettings))
OPTIM_KEYS = tuple(f.name for f in fields(OptimSettings))


def nest_flat_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a checkpoint in the ``net`` / ``optim`` layout: those written flat
    (before the groups) get their network and optimiser keys moved into the groups; others are
    returned as they are."""
    hp = dict(hparams)
    if "net" in hp or "optim" in hp:
        return hp
    net = {k: hp.pop(k) for k in NET_KEYS if k in hp}
    optim = {k: hp.pop(k) for k in OPTIM_KEYS if k in hp}
    return {**hp, "net": net, "optim": optim}
