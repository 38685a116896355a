"""A stream module's two groups of settings, as the config writes them (``model.net``,
``model.optim``): the TSN network (:class:`NetSettings`, ``ip_tsn.models.TSN``'s arguments) and
the optimiser with its schedule (:class:`OptimSettings`, ``lit.optim``'s). Frozen, typed, with the
only defaults; stored in checkpoints as plain dicts (``weights_only`` loading).

Checkpoints written before the two groups existed hold the same keys flat in their
hyperparameters; :func:`nest_flat_hparams` moves them into ``net`` / ``optim``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class NetSettings:
    """``model.net``: the TSN's backbone (``arch``, ``pretrained`` ImageNet weights, ``stem``
    ``imagenet`` or ``small``), its input BatchNorm (``input_bn``) and the head's ``dropout``."""

    arch: str = "resnet18"
    dropout: float = 0.5
    pretrained: bool = True
    input_bn: bool = False
    stem: str = "imagenet"


@dataclass(frozen=True)
class OptimSettings:
    """``model.optim``: optimizer (``sgd`` / ``adam`` / ``adamw``) and its arguments, the learning-rate
    multipliers of the backbone and first conv, the schedule (``cosine`` / ``step`` / ...) with its
    warmup (epochs), ``lr_steps`` (epochs) and ``lr_gamma``."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    adam_eps: float = 1e-3
    backbone_lr_mult: float = 0.01
    first_conv_lr_mult: float = 0.1
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    lr_steps: tuple[float, ...] = ()
    lr_gamma: float = 0.1


def settings_from(cls: type, data: Mapping[str, Any] | None, source: str) -> Any:
    """``cls`` (:class:`NetSettings` or :class:`OptimSettings`) from a mapping; missing keys take
    the defaults. Raises ``ValueError`` naming ``source`` and the unknown keys."""
    data = dict(data or {})
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if "lr_steps" in data:
        data["lr_steps"] = tuple(float(e) for e in data["lr_steps"])
    return cls(**data)


def plain(settings: NetSettings | OptimSettings) -> dict[str, Any]:
    """Plain values (lists, not tuples) for hyperparameters that ``weights_only`` loads."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


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
