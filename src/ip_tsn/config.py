"""Experiment configs: OmegaConf YAML composed from a stage file, a dataset file and overrides.

``load_config("experiments/student.yaml", ["data=ucf101", "trainer.devices=2"])``:

1. the stage file, merged over the files its ``_base_`` key lists (paths relative to it);
2. the dataset file ``experiments/data/<data>.yaml``, where ``<data>`` is the stage file's
   ``data`` key or a ``data=<name>`` override (a ``data:`` mapping in a stage file instead is the
   whole data config, with no dataset file; one without ``dataset``, or with a dataset file
   chosen, is refused: a stage's data settings go under ``datamodule``): its ``data`` section
   becomes ``cfg.data`` (under every data setting's default) and its
   ``stages.<stage>`` section is merged over the whole config (per-dataset settings of a stage);
   the stage's data settings (``datamodule``) are then merged into ``data``;
3. the remaining ``key=value`` overrides (OmegaConf dot-list; W&B sweeps pass these), last: a
   ``data.X=`` override sets X even where the stage file sets it under ``datamodule``.

:func:`config_sources` gives the same pieces one by one, each with where it came from, for the
config check (:mod:`ip_tsn.stages.config_check`) to name the file of a bad key.

Every rank of a DDP job parses the same files and arguments, so all ranks agree on the config
and on ``run_dir`` (derived from the config, never from a clock).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from ip_tsn.atomic import write_text_atomic

EXPERIMENTS = Path(os.environ.get("IP_TSN_EXPERIMENTS", Path(__file__).resolve().parents[2] / "experiments"))


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names it."""


class Source(NamedTuple):
    """One piece of a composed config: ``kind`` ``stage`` (a stage file or one of its bases),
    ``dataset`` (a whole dataset file) or ``overrides`` (the command line); ``where``: the file
    (shown relative to the working directory when inside it); ``cfg``: what it holds (unresolved);
    ``name``: a dataset file's name."""

    kind: str
    where: str
    cfg: DictConfig
    name: str = ""  # a dataset file's name (``data=<name>``)


def _load(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config is UTF-8 YAML)") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: a config file must hold a mapping")
    return cfg


def _bases(path: Path, cfg: DictConfig) -> list[Path]:
    bases = cfg.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else list(bases)
    return [(path.parent / base).resolve() for base in bases]


def _read(path: Path) -> DictConfig:
    cfg = _load(path)
    merged = OmegaConf.create()
    for base in _bases(path, cfg):
        merged = OmegaConf.merge(merged, _read(base))
    return OmegaConf.merge(merged, cfg)


def _data_file(name: str, stage_file: Path) -> Path:
    for folder in (stage_file.parent / "data", EXPERIMENTS / "data"):
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    choices = sorted(p.stem for p in (EXPERIMENTS / "data").glob("*.yaml"))
    raise ConfigError(f"data={name}: no experiments/data/{name}.yaml (choose from {', '.join(choices)})")


def _split_overrides(overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(the data=<name> override or None, the other key=value overrides)``."""
    data_name, rest = None, []
    for item in overrides:
        item = item[2:] if item.startswith("--") else item  # tolerate --key=value from sweep agents
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if key == "data":
            data_name = value
        else:
            rest.append(item)
    return data_name, rest


def data_defaults() -> DictConfig:
    """The ``data`` section's defaults: :class:`~ip_tsn.data.settings.DataSettings`' and
    :class:`~ip_tsn.data.preprocess.Preprocess`' fields (declared there, once)."""
    from ip_tsn.data.preprocess import Preprocess
    from ip_tsn.data.settings import DataSettings
    from ip_tsn.settings import defaults

    return OmegaConf.create({**defaults(DataSettings), **defaults(Preprocess)})


def _fold_datamodule(cfg: DictConfig) -> None:
    """Merge the stage's data settings (its files' ``datamodule`` section, and a dataset file's
    ``stages.<stage>.datamodule``) into ``data``, leaving ``datamodule`` empty: ``data`` is the one
    place a data setting has in the composed config, so a ``data.X=`` override sets X whatever
    the stage file says, and ``--print-config`` shows each setting once."""
    stage = cfg.get("datamodule")
    if isinstance(stage, DictConfig) and len(stage):
        cfg.data = OmegaConf.merge(cfg.get("data") or OmegaConf.create(), stage)
        cfg.datamodule = OmegaConf.create()


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (),
                sources: Sequence[Source] | None = None) -> DictConfig:
    """Compose the config of one run (see the module docstring); interpolations resolved. The
    ``data`` section holds every data setting (the defaults under the dataset file's values).
    ``sources``: :func:`config_sources`' answer for the same arguments (the files read once)."""
    path = Path(path)
    sources = config_sources(path, overrides) if sources is None else sources
    cfg = OmegaConf.create()
    for source in sources:
        if source.kind == "stage":
            cfg = OmegaConf.merge(cfg, source.cfg)
    dataset = [s for s in sources if s.kind == "dataset"]
    if dataset:
        data_cfg = dataset[0].cfg
        cfg.data = OmegaConf.merge(data_defaults(), data_cfg.get("data", OmegaConf.create()))
        for key in ("all", cfg.get("stage")):  # `stages.all` applies to every stage of the dataset
            stage_cfg = OmegaConf.select(data_cfg, f"stages.{key}")
            if stage_cfg is not None:
                cfg = OmegaConf.merge(cfg, stage_cfg)
        cfg.data.name = dataset[0].name
    elif isinstance(cfg.get("data"), DictConfig):  # a stage file's whole data section, no dataset file
        cfg.data = OmegaConf.merge(data_defaults(), cfg.data)
    _fold_datamodule(cfg)  # before the overrides: `data.X=` on the command line wins over a stage's X
    try:
        for source in sources:
            if source.kind == "overrides":
                cfg = OmegaConf.merge(cfg, source.cfg)
        _fold_datamodule(cfg)  # a `datamodule.X=` override too
        OmegaConf.resolve(cfg)
    except Exception as e:  # omegaconf's errors name the key; add the file (one line: its message's first)
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{path}: {(str(e).splitlines() or [type(e).__name__])[0]}"
                          + (f" (in {key})" if key else "")) from None
    return cfg


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _file_sources(path: Path) -> list[Source]:
    cfg = _load(path)
    bases = _bases(path, cfg)
    return [s for base in bases for s in _file_sources(base)] + [Source("stage", _shown(path), cfg)]


def config_sources(path: str | os.PathLike, overrides: Sequence[str] = ()) -> list[Source]:
    """The pieces :func:`load_config` composes, in the order it merges them, each file read once:
    the stage file's bases and the stage file (``_base_`` removed), the dataset file (whole; its
    ``name``: the ``data=<name>`` it was chosen by), the overrides (``data=<name>`` removed)."""
    path = Path(path)
    sources = _file_sources(path)
    data_override, rest = _split_overrides(overrides)
    stage_data, mapping = None, None
    for source in sources:
        if "data" in source.cfg:
            stage_data = source.cfg.data
            mapping = source.where if isinstance(stage_data, DictConfig) else None
    data_name = data_override if data_override is not None else stage_data
    if mapping and (isinstance(data_name, str) or "dataset" not in stage_data):  # it would be lost, or is not whole
        why = f"the dataset file data={data_name} replaces it" if isinstance(data_name, str) else "it names no dataset"
        raise ConfigError(f"{mapping}: a data: section in a stage file is the whole data config, and {why}; set a "
                          "stage's data settings under datamodule: (merged into data)")
    if isinstance(data_name, str):
        data_file = _data_file(data_name, path)
        sources.append(Source("dataset", _shown(data_file), _read(data_file), data_name))
    try:
        sources.append(Source("overrides", f"command-line override of {_shown(path)}", OmegaConf.from_dotlist(rest)))
    except Exception as e:
        raise ConfigError(f"{path}: {e}") from None
    return sources


def sweep_trial(cfg: DictConfig) -> DictConfig:
    """Under a W&B sweep agent (``WANDB_SWEEP_ID`` and ``WANDB_RUN_ID`` in the environment), each
    trial is its own run: ``run_name`` and ``run_dir`` end with the trial's run id (every DDP rank
    inherits the agent's environment, so all agree), and the W&B group is the sweep's. Otherwise
    ``cfg`` as it is."""
    sweep, trial = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
    if not (sweep and trial):
        return cfg
    cfg = cfg.copy()
    cfg.run_name, cfg.run_dir = f"{cfg.run_name}-{trial}", f"{cfg.run_dir}-{trial}"
    if cfg.get("wandb_group") is None:
        cfg.wandb_group = f"sweep-{sweep}"
    return cfg


def to_container(cfg: DictConfig | ListConfig | None) -> dict:
    """A plain dict (for ``**kwargs``); None gives {}."""
    return {} if cfg is None else OmegaConf.to_container(cfg, resolve=True)


def save_config(cfg: DictConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, OmegaConf.to_yaml(cfg, resolve=True))
