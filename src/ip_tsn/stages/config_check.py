"""Checks of a composed config before anything runs: every key a user wrote (in a stage file or as
an override) must be one the stage's code reads, else one line naming the key, where it came from
and the closest known key (``model.lrr: unknown key; did you mean model.lr?``).

Known keys are those of the composed defaults (``experiments/base.yaml``, the stage file, the
dataset file) plus the arguments of the classes a section is passed to: ``trainer.*`` ->
``pytorch_lightning.Trainer``, ``data.*`` / ``datamodule.*`` -> ``VideoDataModule``, ``model.*``
-> ``StreamClassifier`` (and ``DistillationModule``), ``distill.*`` -> ``DistillationModule``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Sequence

from omegaconf import DictConfig

from ip_tsn.config import ConfigError

TOP_LEVEL = {"data", "seed", "run_root", "run_name", "run_dir", "name", "ckpt_path", "checkpoint", "trainer",
             "logger", "datamodule", "model", "stage", "module", "teacher", "distill", "cache", "fuse", "overwrite",
             "wandb_group"}


def _params(obj: object) -> set[str]:
    return {p for p in inspect.signature(obj).parameters if p not in ("self", "kwargs", "args")}  # type: ignore[arg-type]


def known_keys() -> dict[str, set[str]]:
    """Section -> the argument names its code accepts."""
    import pytorch_lightning as pl

    from ip_tsn.data.datamodule import VideoDataModule
    from ip_tsn.lit.classifier import StreamClassifier
    from ip_tsn.lit.distillation import DistillationModule

    dm = _params(VideoDataModule) | {"name"}
    model = _params(StreamClassifier) | _params(DistillationModule)
    return {"trainer": _params(pl.Trainer), "data": dm, "datamodule": dm, "model": model,
            "distill": _params(DistillationModule) | {"online_teacher"}, **FIXED}


FIXED: dict[str, set[str]] = {
    "checkpoint": {"monitor", "mode"}, "logger": {"csv", "wandb", "wandb_project", "wandb_mode"},
    "teacher": {"checkpoint"}, "cache": {"dir", "grid_stride", "positions", "subset", "dtype", "features"},
}


def _paths(cfg: DictConfig, prefix: str = "") -> Iterable[str]:
    for key in cfg:
        value = cfg._get_node(key)  # noqa: SLF001 - no interpolation resolution needed
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, DictConfig) and path.split(".")[0] not in ("fuse",) and path.count(".") < 1:
            yield from _paths(value, path + ".")


def check_keys(cfg: DictConfig, source: str, overrides: Sequence[str] = ()) -> None:
    """Raise :class:`ConfigError` for the first unknown key of ``cfg`` or of ``overrides``, or a
    ``stage`` / ``module`` value that names nothing."""
    check_values(cfg, source)
    sections = known_keys()
    wanted = [(o.split("=", 1)[0].lstrip("-"), "the command line") for o in overrides if "=" in o] + \
        [(p, source) for p in _paths(cfg)]
    for path, where in wanted:
        parts = path.split(".")
        if parts[0] == "data" and len(parts) == 1:
            continue
        if parts[0] not in TOP_LEVEL:
            _unknown(path, where, sorted(TOP_LEVEL))
        if len(parts) >= 2 and parts[0] in sections and parts[1] not in sections[parts[0]]:
            _unknown(path, where, [f"{parts[0]}.{k}" for k in sorted(sections[parts[0]])])


STAGES = ("teacher", "cache", "student", "pstream", "istream", "fuse")


def check_values(cfg: DictConfig, source: str) -> None:
    """Values with a closed set of choices: ``stage`` and ``module``."""
    for key, choices in (("stage", STAGES), ("module", ("classifier", "distill"))):
        value = cfg.get(key)
        if value is not None and value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; choose from {', '.join(choices)}"
            raise ConfigError(f"{key}={value}: unknown value (in {source}){hint}")
    _check_reconstruct(cfg, source)


def _check_reconstruct(cfg: DictConfig, source: str) -> None:
    """``data.reconstruct`` / ``datamodule.reconstruct``: ``cpu``, or ``device`` for a motion modality."""
    from ip_tsn.data.preprocess import Preprocess, check_reconstruct

    merged: dict = {}
    for section in ("data", "datamodule"):
        node = cfg.get(section)
        if isinstance(node, DictConfig):
            merged.update({k: node.get(k) for k in ("modality", "reconstruct") if k in node})
    if "reconstruct" not in merged:
        return
    try:
        check_reconstruct(merged["reconstruct"], merged.get("modality") or Preprocess.modality)
    except ValueError as e:
        raise ConfigError(f"data.reconstruct={merged['reconstruct']} (in {source}): {e}") from None


def _unknown(path: str, where: str, known: Sequence[str]) -> None:
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known[:12])}"
    raise ConfigError(f"{path}: unknown key (from {where}){hint}")
