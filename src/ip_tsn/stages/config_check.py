"""The config check before anything runs: every piece of a stage config (each stage file, the
dataset file, the overrides) and the composed config are merged into the schema
(:mod:`ip_tsn.stages.config_schema`, ``OmegaConf.structured``), so OmegaConf refuses unknown keys
and wrong types; its error becomes one line naming the key, where it came from and the closest
known key or the expected type::

    model.lrr: unknown key (command-line override of experiments/pstream.yaml); did you mean model.optim.lr?
    model.optim.lr: expected a number, got 'fast' (from experiments/pstream.yaml)
    stage=istrem: unknown value (from the command line ...); did you mean istream?

``trainer`` is open (any ``pytorch_lightning.Trainer`` argument), but its key names are checked
against the Trainer's signature, and the ones ``ip-tsn`` sets itself are refused. The one change the
check makes: a number or boolean given where the schema declares a string becomes that string.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import types
import typing
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ip_tsn.config import ConfigError, Source, config_sources, load_config
from ip_tsn.lit.model_settings import MONITORS, ClassifierSettings, DistillSettings, OptimSettings
from ip_tsn.settings import from_mapping
from ip_tsn.stages.config_schema import (OPEN, STAGES, WANDB_ALIASES, WANDB_MODES, WANDB_PROJECT_BANNED, DatasetFile,
                                         LoggerConfig, StageConfig, TrainerConfig, complete, filled)

#: Trainer arguments the runner passes itself (``build_trainer``)
RUNNER_TRAINER_ARGS = {"default_root_dir": "set run_dir instead", "callbacks": "not configurable",
                       "logger": "use logger.csv / logger.wandb", "plugins": "not configurable"}
_ABSENT = object()
STAGE_SECTIONS = ("all", *STAGES)  # the sections of a dataset file's `stages`


# Trainer arguments Lightning takes unchecked: a 0 it divides by deep inside a fit (a ZeroDivisionError
# traceback until 2026-12-08), a negative value it trains on without a word (gradient_clip_val < 0: no clipping)
TRAINER_RANGES = {"accumulate_grad_batches": (1, False, ""), "check_val_every_n_epoch": (1, False, " (null: by val_check_interval)"),
                  "val_check_interval": (0, True, " (a fraction of an epoch or a number of batches)"),
                  "gradient_clip_val": (0, False, " (0 or null: no clipping)")}  # key: (bound, strictly above, note)
REQUIRED = ("stage", "seed", "run_dir", "trainer")  # what every command reads of a composed config
VALUE_GROUPS = (("model", ClassifierSettings), ("model.optim", OptimSettings),  # settings that check their values
                ("distill", DistillSettings))


def check_config(cfg: DictConfig, path: str | os.PathLike, overrides: Sequence[str] = (),
                 sources: Sequence[Source] | None = None) -> None:
    """Raise :class:`ConfigError` (one line) for the first unknown key, wrong type or unknown
    ``stage`` / ``module`` value of the config ``cfg`` composed from ``path`` and ``overrides``
    (``sources``: their pieces, when already read)."""
    for source in config_sources(path, overrides) if sources is None else sources:
        piece, label = source.cfg, _label(source)
        if source.kind == "dataset":
            _check(piece, DatasetFile, label)
            for name in piece.get("stages") or {}:  # each stage's section, checked as a stage config
                if name not in STAGE_SECTIONS:
                    raise ConfigError(_unknown_text(f"stages.{name}", label, [f"stages.{s}" for s in STAGE_SECTIONS]))
                _check(piece.stages[name], StageConfig, label, prefix=f"stages.{name}.")
            continue
        if isinstance(piece.get("data"), str):  # the dataset's name
            piece = OmegaConf.masked_copy(piece, [k for k in piece if k != "data"])
        _check(piece, StageConfig, label)
    missing = [key for key in REQUIRED if key not in cfg]
    if missing:
        raise ConfigError(f"{path}: no {', '.join(missing)}: a stage config names its stage and starts from "
                          f"experiments/base.yaml (`_base_: base.yaml`, or `_base_: pstream.yaml` and the like), "
                          "which sets the run's folder, seed and trainer")
    typed = _check(cfg, StageConfig, f"in {path} as composed and resolved")
    _as_declared(cfg, typed)
    check_reconstruct_value(cfg, str(path))
    seed = cfg.seed  # an interpolation (${oc.env:SEED}) gives a string
    if not (str(seed).isdigit() and int(seed) < 2**32):  # NumPy's range (a ValueError traceback until 2026-12-08)
        raise ConfigError(f"seed must be an integer in 0..{2**32 - 1}, got {seed} (in {path} as composed)")
    chunk = OmegaConf.select(cfg, "cache.chunk_videos")
    if isinstance(chunk, int) and chunk < 1:  # until 2026-12-08 taken as 1: a shard (4 files) per video
        raise ConfigError(f"cache.chunk_videos must be >= 1 (videos per finished shard), got {chunk} (in {path} as composed)")
    for key, (bound, strict, note) in TRAINER_RANGES.items():
        value = cfg.trainer.get(key)
        if isinstance(value, (int, float)) and (value <= bound if strict else value < bound):
            raise ConfigError(f"trainer.{key} must be {'>' if strict else '>='} {bound}{note}, got {value} "
                              f"(in {path} as composed)")
    max_time = cfg.trainer.get("max_time")
    if isinstance(max_time, (int, float)) and not isinstance(max_time, bool):  # Lightning's AttributeError traceback
        raise ConfigError(f"trainer.max_time={max_time}: a duration is a string DD:HH:MM:SS (quoted in YAML, which reads "
                          f"an unquoted 1:00 as the number 60) or a mapping such as {{hours: 12}} (in {path} as composed)")
    _check_monitor(cfg, path)
    _check_wandb(cfg, path)
    _check_nodes(cfg, path)
    for key, value in _leaves(OmegaConf.to_container(complete(typed), resolve=True)):  # nan trained until 2026-12-08
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value}: not a number a setting can take (in {path} as composed)")
    for section, settings in VALUE_GROUPS:  # values out of range, before any data or model is touched
        given = OmegaConf.select(cfg, section)
        if given is not None:
            own = {f.name for f in dataclasses.fields(settings)}  # `model` also holds net and optim
            try:
                from_mapping(settings, {k: v for k, v in OmegaConf.to_container(given).items() if k in own}, section)
            except ValueError as e:
                raise ConfigError(f"{section}.{e} (in {path} as composed)") from None


def _leaves(node: Any, prefix: str = "") -> typing.Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of a plain config container."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else None
    if items is None:
        yield prefix, node
        return
    for k, v in items:
        key = f"{prefix}[{k}]" if isinstance(k, int) else f"{prefix}.{k}" if prefix else str(k)
        yield from _leaves(v, key)


def _check_monitor(cfg: DictConfig, path: str | os.PathLike) -> None:
    """``checkpoint.monitor``: a key the module logs each epoch (:data:`MONITORS`), in its better
    direction, and a validated one only where validation runs. Until 2026-12-08 a typo was
    Lightning's traceback at the first validation (epoch 10 of the student), and ``val/loss`` under
    the default ``mode: max`` kept the worst epoch as ``best.ckpt``."""
    monitor, mode = OmegaConf.select(cfg, "checkpoint.monitor"), OmegaConf.select(cfg, "checkpoint.mode")
    if monitor is None:
        return
    if monitor not in MONITORS:
        close = difflib.get_close_matches(str(monitor), list(MONITORS), n=1)
        raise ConfigError(f"checkpoint.monitor={monitor}: not logged{f'; did you mean {close[0]}?' if close else ''} "
                          f"(one of {', '.join(MONITORS)}, or null: the final epoch; in {path} as composed)")
    if mode != MONITORS[monitor]:
        better = "lower" if MONITORS[monitor] == "min" else "higher"
        raise ConfigError(f"checkpoint.monitor={monitor} is better {better}: checkpoint.mode={mode} would keep "
                          "the worst epoch as best.ckpt; set "
                          f"checkpoint.mode={MONITORS[monitor]} (in {path} as composed)")
    if monitor.startswith("val/") and cfg.trainer.get("limit_val_batches") == 0:
        raise ConfigError(f"checkpoint.monitor={monitor} with trainer.limit_val_batches=0: no epoch is validated; "
                          f"monitor train/loss_epoch or null (in {path} as composed)")


# what tells Lightning where the other nodes are: SLURM, torchrun (and by hand), LSF
NODE_LAUNCHERS = ("SLURM_JOB_ID", "MASTER_ADDR", "NODE_RANK", "GROUP_RANK", "LSB_JOBID")


def _check_nodes(cfg: DictConfig, path: str | os.PathLike) -> None:
    """``trainer.num_nodes`` > 1 needs a launcher that starts the command on every node. Without
    one, Lightning's rank 0 waited for nodes that never came (30 minutes, deaf to SIGTERM and
    Ctrl-C while it waited; until 2026-12-08)."""
    nodes = cfg.trainer.get("num_nodes")
    if isinstance(nodes, int) and nodes > 1 and not any(os.environ.get(k) for k in NODE_LAUNCHERS):
        raise ConfigError(f"trainer.num_nodes={nodes}, but nothing starts this command on the other nodes: under "
                          "SLURM run it with srun (experiments/slurm/student.sbatch); by hand set MASTER_ADDR, "
                          "MASTER_PORT and NODE_RANK on each node (torchrun sets them); on one machine use "
                          "trainer.devices")


def _check_wandb(cfg: DictConfig, path: str | os.PathLike) -> None:
    """With ``logger.wandb``: a project name W&B takes, and a ``WANDB_MODE`` it knows where
    ``logger.wandb_mode`` leaves the mode to it. Until 2026-12-08 W&B's traceback once the run
    folder was made (``wandb.errors.UsageError``, a pydantic ``ValidationError``)."""
    logger = filled(cfg.get("logger"), LoggerConfig)
    if not logger.wandb:
        return
    project = logger.wandb_project
    banned = sorted({c for c in project if c in WANDB_PROJECT_BANNED})
    if not project.strip() or banned or len(project) > 128:
        why = (f"the character{'s' * (len(banned) > 1)} {' '.join(banned)}" if banned else
               "an empty name" if not project.strip() else "a name over 128 characters")
        raise ConfigError(f"logger.wandb_project={project!r}: W&B refuses {why} (no {' '.join(WANDB_PROJECT_BANNED)} "
                          f"in a project name, at most 128 characters; in {path} as composed)")
    env = os.environ.get("WANDB_MODE")
    if logger.wandb_mode is None and env and env not in (*WANDB_MODES, *WANDB_ALIASES):
        raise ConfigError(f"WANDB_MODE={env} (environment): not a W&B mode; choose from {', '.join(WANDB_MODES)}, "
                          "or set logger.wandb_mode, which comes first")


def load_checked(path: str | os.PathLike, overrides: Sequence[str] = ()) -> DictConfig:
    """:func:`ip_tsn.config.load_config`, then :func:`check_config`, on the files read once."""
    sources = config_sources(path, overrides)
    cfg = load_config(path, overrides, sources)
    check_config(cfg, path, overrides, sources)
    return cfg


def _label(source: Source) -> str:
    return source.where if source.kind == "overrides" else f"from {source.where}"


@functools.lru_cache(maxsize=None)
def _schema(schema: type) -> DictConfig:
    """The structured config of ``schema``, its :data:`OPEN` sections open; built once (merging
    copies it)."""
    cfg = OmegaConf.structured(schema)
    for section in OPEN if schema is StageConfig else ():
        OmegaConf.set_struct(cfg[section], False)
    return cfg


def _check(piece: DictConfig, schema: type, label: str, prefix: str = "") -> DictConfig:
    """Merge ``piece`` (its keys shown after ``prefix``) into ``schema``; check its trainer keys.
    Returns the merged config (values converted to the schema's types)."""
    try:
        merged = OmegaConf.merge(_schema(schema), piece)
    except OmegaConfBaseException as e:
        raise ConfigError(_message(e, piece, schema, label, prefix)) from None
    trainer = piece.get("trainer") if schema is StageConfig else None
    if isinstance(trainer, DictConfig):
        known = _trainer_args()
        for key in trainer:
            if key in RUNNER_TRAINER_ARGS:
                raise ConfigError(f"{prefix}trainer.{key}: set by ip-tsn itself ({label}); {RUNNER_TRAINER_ARGS[key]}")
            if key not in known:
                raise ConfigError(_unknown_text(f"{prefix}trainer.{key}", label,
                                                [f"{prefix}trainer.{k}" for k in sorted(known)]))
    return merged


def _as_declared(cfg: DictConfig, merged: DictConfig) -> None:
    """Give ``cfg`` the string the schema declares where a number or boolean was given for a path
    or a name (``fuse.out_dir=2026`` is the folder "2026", not the int 2026 that ``Path`` refuses):
    the value OmegaConf converted while merging (``merged``). Interpolations are left as they are."""
    for key in list(cfg.keys()):
        if OmegaConf.is_interpolation(cfg, key) or key not in merged or OmegaConf.is_interpolation(merged, key):
            continue
        value, typed = cfg[key], merged[key]
        if isinstance(value, DictConfig) and isinstance(typed, DictConfig):
            _as_declared(value, typed)
        elif isinstance(typed, str) and isinstance(value, (bool, int, float)):
            cfg[key] = typed
        elif isinstance(value, ListConfig) and isinstance(typed, ListConfig) and len(value) == len(typed):
            for i, (v, t) in enumerate(zip(value, typed)):  # fuse.fused=[1,I-stream]: names
                if isinstance(t, str) and isinstance(v, (bool, int, float)):
                    value[i] = t


@functools.lru_cache(maxsize=None)
def _trainer_args() -> frozenset[str]:
    """The arguments of ``pytorch_lightning.Trainer`` a config may set, read from its source with
    ``ast`` (importing Lightning would cost seconds before a typo's one line)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("pytorch_lightning")  # locates the package without importing it
    source = Path(spec.origin).parent / "trainer" / "trainer.py"  # type: ignore[union-attr,arg-type]
    tree = ast.parse(source.read_text(encoding="utf-8"))
    init = next(f for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "Trainer"
                for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    names = {a.arg for a in [*init.args.args, *init.args.kwonlyargs]} - {"self"}
    return frozenset(names - set(RUNNER_TRAINER_ARGS))


def _message(e: OmegaConfBaseException, piece: DictConfig, schema: type, label: str, prefix: str = "") -> str:
    key = str(e.full_key or _not_a_mapping(piece, schema) or "")  # merge errors of a whole section: no key
    parts = key.split(".") if key else []
    shown_key = prefix + key
    if isinstance(e, ConfigKeyError):
        parent = _field_type(schema, parts[:-1])
        known = [prefix + ".".join([*parts[:-1], k]) for k in _field_names(parent)]
        deeper = [prefix + ".".join([*parts[:-1], k]) for k in _field_names(parent, nested=True)]
        return _unknown_text(shown_key, label, known, deeper)
    expected = _field_type(schema, parts)
    value = _value(piece, key)
    if typing.get_origin(_strip_optional(expected)) is typing.Literal:
        choices = [str(c) for c in typing.get_args(_strip_optional(expected))]
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; choose from {', '.join(choices)}"
        return f"{shown_key}={value}: unknown value ({label}){hint}"
    shown = "" if value is _ABSENT else f", got {value!r}"
    if expected is None:
        return f"{shown_key or 'config'}: {str(e).splitlines()[0]} ({label})"
    return f"{shown_key}: expected {_describe(expected)}{shown} ({label})"


def _not_a_mapping(piece: Any, schema: Any, prefix: str = "") -> str | None:
    """The first key of ``piece`` whose schema field is a section but whose value is not a mapping."""
    if not isinstance(piece, DictConfig) or not dataclasses.is_dataclass(schema):
        return None
    hints = typing.get_type_hints(schema)
    for key in piece:
        tp, value = _strip_optional(hints.get(str(key))), piece._get_node(key)  # noqa: SLF001 - unresolved
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, DictConfig) and not (value is None or value._is_none()):
                return f"{prefix}{key}"
            found = _not_a_mapping(value, tp, f"{prefix}{key}.")
            if found:
                return found
    return None


def _unknown_text(path: str, label: str, known: Sequence[str], deeper: Sequence[str] = ()) -> str:
    """``known``: the keys beside ``path``; ``deeper``: keys one section further down, suggested
    when closer (``model.lrr`` -> ``model.optim.lr``), the nearest level first."""
    leaf = path.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for key in [*known, *deeper]:
        by_leaf.setdefault(key.rsplit(".", 1)[-1], key)
    close = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
    hint = f"; did you mean {by_leaf[close[0]]}?" if close else f"; known: {', '.join(sorted(known)[:12])}"
    return f"{path}: unknown key ({label}){hint}"


def _value(piece: DictConfig, key: str) -> Any:
    try:
        node = OmegaConf.select(piece, key, default=_ABSENT, throw_on_resolution_failure=False)
    except Exception:  # noqa: BLE001 - only for the message
        return _ABSENT
    return OmegaConf.to_container(node) if isinstance(node, DictConfig) else node


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else typing.Union[tuple(args)]
    return tp


def _field_type(schema: Any, parts: Sequence[str]) -> Any:
    """The annotation of the schema field at ``parts`` (None where the schema has none)."""
    tp: Any = schema
    for part in parts:
        tp = _strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part in hints:
                tp = hints[part]
                continue
            return Any if tp is TrainerConfig else None
        origin = typing.get_origin(tp)
        if origin in (dict, list):
            tp = typing.get_args(tp)[-1]
            continue
        return None
    return tp


def _field_names(tp: Any, nested: bool = False) -> list[str]:
    """The field names of a schema section, or (``nested``) those of its sub-sections as
    ``section.field`` (trainer's excluded)."""
    tp = _strip_optional(tp)
    if tp is TrainerConfig:
        return [] if nested else sorted(_trainer_args())
    if not dataclasses.is_dataclass(tp):
        return []
    if not nested:
        return [f.name for f in dataclasses.fields(tp)]
    hints = typing.get_type_hints(tp)
    subs = {name: _strip_optional(t) for name, t in hints.items()}
    return [f"{name}.{f.name}" for name, sub in subs.items()
            if dataclasses.is_dataclass(sub) and sub is not TrainerConfig for f in dataclasses.fields(sub)]


_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Any: "any value"}


def check_reconstruct_value(cfg: DictConfig, source: str) -> None:
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


def _describe(tp: Any) -> str:
    """``Optional[int]`` -> "an integer or null", ``List[float]`` -> "a list of numbers", ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return _WORDS.get(tp, getattr(tp, "__name__", str(tp)))
