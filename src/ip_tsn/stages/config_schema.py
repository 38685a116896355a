"""The schema of a stage config: one dataclass per section, for ``OmegaConf.structured``.

A composed config (:func:`ip_tsn.config.load_config`) is merged into :class:`StageConfig` by
:mod:`ip_tsn.stages.config_check`, so OmegaConf itself refuses unknown keys and values of the
wrong type. The sections that configure the package's own classes ARE their settings
(:func:`ip_tsn.settings.schema`): ``data`` / ``datamodule`` are ``DataSettings`` + ``Preprocess``,
``model.net`` / ``model.optim`` / ``model`` / ``distill`` are ``lit.model_settings``' groups; each
setting is declared once, there, with its default. ``cache`` and ``logger`` are declared here, with
their defaults (:func:`filled` gives a section with them). Sections that hold other tools' or the
run's keys (``trainer``, ``checkpoint``, ``fuse``, the run's names) have no default here
(``MISSING``): ``experiments/base.yaml`` and the stage files set them.

Open on purpose: ``trainer`` (any ``pytorch_lightning.Trainer`` argument; the typed fields below
keep their types, other names are checked against the Trainer's signature) and ``fuse.streams``
(stream name -> run folder).

No ``from __future__ import annotations`` here: OmegaConf reads the annotations as types.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Union

from omegaconf import MISSING, DictConfig, OmegaConf

from ip_tsn.data.datasets import SUBSETS
from ip_tsn.data.modalities import MODALITIES
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.settings import DataSettings
from ip_tsn.data.teacher_cache import CACHE_DTYPES
from ip_tsn.lit.model_settings import ClassifierSettings, DistillSettings, NetSettings, OptimSettings
from ip_tsn.settings import schema, setting

STAGES = ("teacher", "cache", "student", "pstream", "istream", "fuse")
MODULES = ("classifier", "distill")
WANDB_MODES = ("online", "offline", "disabled")  # logger.wandb_mode's, and WANDB_MODE's
WANDB_ALIASES = {"dryrun": "offline", "run": "online"}  # W&B's older names, still taken from WANDB_MODE
WANDB_PROJECT_BANNED = "/\\#?%:"  # characters W&B refuses in a project name (at most 128 characters)
#: sections that take keys the schema does not list (struct mode off; their fields keep their types)
OPEN = ("trainer",)

#: ``data`` (the dataset file's) and ``datamodule`` (a stage file's, merged into ``data`` when the config is
#: composed): ``VideoDataModule``'s arguments
DataConfig = schema("DataConfig", DataSettings, Preprocess, extra=(
    ("name", Optional[str], setting(None, "the dataset file's name (set by load_config)")),))
#: ``model.net``: the TSN network
NetConfig = schema("NetConfig", NetSettings)
#: ``model.optim``: optimiser and schedule
OptimConfig = schema("OptimConfig", OptimSettings)
#: ``model``: ``StreamClassifier``'s arguments (``num_classes``, ``in_channels`` and ``num_segments``
#: come from the data, never from here)
ModelConfig = schema("ModelConfig", ClassifierSettings, extra=(
    ("net", NetConfig, field(default_factory=NetConfig)), ("optim", OptimConfig, field(default_factory=OptimConfig))))
#: ``distill``: ``DistillationModule``'s own arguments, and where the teacher's outputs come from
DistillConfig = schema("DistillConfig", DistillSettings)


def filled(section: Optional[DictConfig], cls: type) -> DictConfig:
    """A config section with the defaults of its schema ``cls`` for the keys it does not set."""
    return OmegaConf.merge(OmegaConf.structured(cls), section if section is not None else {})


@dataclass
class TrainerConfig:
    """``trainer``: ``pytorch_lightning.Trainer`` arguments. Open (see :data:`OPEN`): any other
    Trainer argument is accepted (its name is checked against the Trainer's signature); these
    keep their types."""

    max_epochs: Optional[int] = MISSING
    max_steps: int = MISSING
    accelerator: str = MISSING
    devices: Union[int, str, List[int]] = MISSING
    num_nodes: int = MISSING
    strategy: str = MISSING
    precision: Union[int, str] = MISSING
    log_every_n_steps: Optional[int] = MISSING
    num_sanity_val_steps: Optional[int] = MISSING
    enable_model_summary: Optional[bool] = MISSING
    enable_progress_bar: Optional[bool] = MISSING
    check_val_every_n_epoch: Optional[int] = MISSING
    limit_train_batches: Optional[Union[int, float]] = MISSING
    limit_val_batches: Optional[Union[int, float]] = MISSING
    limit_test_batches: Optional[Union[int, float]] = MISSING
    limit_predict_batches: Optional[Union[int, float]] = MISSING
    accumulate_grad_batches: int = MISSING
    gradient_clip_val: Optional[float] = MISSING


@dataclass
class CheckpointConfig:
    """``checkpoint``: which epoch ``best.ckpt`` holds (``monitor`` null: the final one)."""

    monitor: Optional[str] = MISSING
    mode: Literal["min", "max"] = MISSING


@dataclass
class LoggerConfig:
    """``logger``: the run's CSV and W&B loggers (:mod:`ip_tsn.stages.loggers`)."""

    csv: bool = setting(True, "a CSV log in the run folder (logs/)")
    wandb: bool = setting(True, "a Weights & Biases run (offline unless a key is configured)")
    wandb_project: str = setting("ip-tsn", "the W&B project")
    wandb_mode: Optional[Literal[WANDB_MODES]] = setting(None, "W&B mode: online, offline, disabled (null: WANDB_MODE, else offline unless a key exists)")  # type: ignore[valid-type]
    tensorboard: bool = setting(False, "a TensorBoard log in the run folder (tb/; pip install 'ip-tsn[tensorboard]')")


@dataclass
class TeacherConfig:
    """``teacher``: the trained flow teacher (cache stage, online distillation, cache checks)."""

    checkpoint: str = MISSING


@dataclass
class CacheConfig:
    """``cache``: the teacher cache ``ip-tsn cache`` writes (:mod:`ip_tsn.data.teacher_cache`)."""

    dir: str = MISSING
    grid_stride: int = MISSING
    positions: Literal[MODALITIES] = setting("p", "the modality whose positions the cache holds (those the P student samples)")  # type: ignore[valid-type]
    subset: Literal[SUBSETS] = setting("trainval", "the videos the teacher runs over (train rows for the student, val rows for the targets report)")  # type: ignore[valid-type]
    dtype: Literal[CACHE_DTYPES] = setting("float16", "storage type of logits and features")  # type: ignore[valid-type]
    features: bool = setting(True, "store features too (false: logits only, the lever for Kinetics-size caches)")
    chunk_videos: int = setting(64, "videos per finished shard of each process: what a run killed mid-way keeps, and the next run does not compute again")


@dataclass
class FuseChecks:
    """``fuse.checks``: thresholds of the pre-registered data checks (``evaluation.checks.CHECKS``)."""

    teacher_minus_plain: float = MISSING
    appearance_alone: float = MISSING
    plain_alone: float = MISSING
    oracle: float = MISSING
    idle_entropy: float = MISSING
    no_active: float = MISSING


@dataclass
class FuseConfig:
    """``fuse``: the streams (name -> run folder, open), which are fused, their roles, the checks."""

    streams: Dict[str, str] = MISSING
    fused: List[str] = MISSING
    baseline_fused: Optional[List[str]] = MISSING
    distilled: Optional[str] = MISSING
    plain: Optional[str] = MISSING
    teacher: Optional[str] = MISSING
    appearance: Optional[str] = MISSING
    groups: Optional[str] = MISSING
    targets: Optional[str] = MISSING
    checks: Optional[FuseChecks] = MISSING
    out_dir: str = MISSING
    splits: Optional[List[int]] = MISSING
    splits_dir: Optional[str] = MISSING


@dataclass
class StageConfig:
    """A whole stage config, as composed (``experiments/<stage>.yaml`` + dataset file + overrides)."""

    data: DataConfig = field(default_factory=DataConfig)
    seed: int = MISSING
    run_root: str = MISSING
    run_name: str = MISSING
    run_dir: str = MISSING
    name: str = MISSING
    ckpt_path: Optional[str] = MISSING
    overwrite: bool = MISSING
    stage: Literal[STAGES] = MISSING  # type: ignore[valid-type]
    module: Literal[MODULES] = MISSING  # type: ignore[valid-type]
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    datamodule: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    fuse: FuseConfig = field(default_factory=FuseConfig)
    wandb_group: Optional[str] = MISSING


@dataclass
class DatasetFile:
    """A dataset file ``experiments/data/<name>.yaml``: the ``data`` section and ``stages``."""

    data: DataConfig = field(default_factory=DataConfig)
    stages: Dict[str, Any] = MISSING  # stage name (or ``all``) -> a StageConfig, each checked as one


#: the groups of the README's key table: (config prefix, settings class)
KEY_GROUPS = (("data", DataSettings), ("data", Preprocess), ("model", ClassifierSettings), ("model.net", NetSettings),
              ("model.optim", OptimSettings), ("distill", DistillSettings), ("cache", CacheConfig),
              ("logger", LoggerConfig))


def key_table() -> str:
    """The README's "Configuration keys" table (markdown): every setting with a default, its
    default and its line, from the declarations themselves."""
    from ip_tsn.settings import key_rows

    lines = ["| key | default | what it sets |", "|---|---|---|"]
    for prefix, cls in KEY_GROUPS:
        for key, default, doc in key_rows(prefix, cls):
            if default:
                lines.append(f"| `{key}` | `{default}` | {doc} |")
    return "\n".join(lines) + "\n"


def complete(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every setting of the package's own shown, defaults filled (``model``,
    ``logger``, and ``distill`` / ``cache`` where the stage uses them), for ``--print-config``."""
    out = cfg.copy()
    out.model = filled(cfg.get("model"), ModelConfig)
    out.logger = filled(cfg.get("logger"), LoggerConfig)
    if cfg.get("module") == "distill":
        out.distill = filled(cfg.get("distill"), DistillConfig)
    if cfg.get("stage") == "cache":
        out.cache = filled(cfg.get("cache"), CacheConfig)
    if "datamodule" in out and not out.datamodule:  # merged into data when composed: each setting shown once
        del out["datamodule"]
    return out
