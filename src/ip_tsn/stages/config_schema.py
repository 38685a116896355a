"""The schema of a stage config: one dataclass per section, for ``OmegaConf.structured``.

A composed config (:func:`ip_tsn.config.load_config`) is merged into :class:`StageConfig` by
:mod:`ip_tsn.stages.config_check`, so OmegaConf itself refuses unknown keys and values of the
wrong type. The schema only checks: the config that runs is the composed one, and the defaults
live where they always did (``experiments/base.yaml``, the dataset file and the code), so no field
here has a default of its own (``MISSING``: a key the config does not set stays unset).

Open on purpose: ``trainer`` (any ``pytorch_lightning.Trainer`` argument; the typed fields below
keep their types, other names are checked against the Trainer's signature) and ``fuse.streams``
(stream name -> run folder). Field names follow the arguments of the classes a section goes to
(``data`` / ``datamodule`` -> ``VideoDataModule``, ``model`` -> ``StreamClassifier``, its ``net`` /
``optim`` -> ``lit.model_settings``' ``NetSettings`` / ``OptimSettings``, ``distill`` ->
``DistillationModule``); ``tests/test_config_check.py`` checks they stay in step.

No ``from __future__ import annotations`` here: OmegaConf reads the annotations as types.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Union

from omegaconf import MISSING

STAGES = ("teacher", "cache", "student", "pstream", "istream", "fuse")
MODULES = ("classifier", "distill")
#: sections that take keys the schema does not list (struct mode off; their fields keep their types)
OPEN = ("trainer",)


@dataclass
class DataConfig:
    """``data`` (the dataset file's) and ``datamodule`` (the stage's): ``VideoDataModule`` arguments."""

    name: str = MISSING  # the dataset file's name (set by load_config), not an argument
    dataset: str = MISSING
    root: str = MISSING
    split: int = MISSING
    modality: str = MISSING
    num_segments: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    pin_memory: bool = MISSING
    crop_size: int = MISSING
    scale_size: Optional[int] = MISSING
    test_segments: int = MISSING
    test_crops: int = MISSING
    val_fraction: float = MISSING
    flow_length: int = MISSING
    accumulate: bool = MISSING
    video_root: Optional[str] = MISSING
    ext: Optional[str] = MISSING
    flow_root: Optional[str] = MISSING
    class_list: Optional[str] = MISSING
    teacher_cache: Optional[str] = MISSING
    grid_stride: int = MISSING
    predict_subset: str = MISSING
    test_batch_size: int = MISSING
    predict_batch_size: int = MISSING
    test_subset: str = MISSING
    seed: int = MISSING
    flip: bool = MISSING
    train_views: Optional[int] = MISSING
    teacher_input: bool = MISSING
    cache_positions: Optional[str] = MISSING
    skip_bad_videos: bool = MISSING
    reconstruct: str = MISSING  # cpu | device (P inputs rebuilt on the batch's device)


@dataclass
class NetConfig:
    """``model.net``: the TSN network (``ip_tsn.lit.model_settings.NetSettings``)."""

    arch: str = MISSING
    dropout: float = MISSING
    pretrained: bool = MISSING
    input_bn: bool = MISSING
    stem: str = MISSING


@dataclass
class OptimConfig:
    """``model.optim``: optimiser and schedule (``ip_tsn.lit.model_settings.OptimSettings``)."""

    optimizer: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING
    adam_eps: float = MISSING
    backbone_lr_mult: float = MISSING
    first_conv_lr_mult: float = MISSING
    schedule: str = MISSING
    warmup_epochs: float = MISSING
    lr_steps: List[float] = MISSING
    lr_gamma: float = MISSING


@dataclass
class ModelConfig:
    """``model``: ``StreamClassifier`` arguments (``num_classes``, ``in_channels`` and
    ``num_segments`` come from the data, never from here)."""

    net: NetConfig = field(default_factory=NetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    label_smoothing: float = MISSING
    predict_mode: str = MISSING
    frames_chunk: int = MISSING


@dataclass
class DistillConfig:
    """``distill``: ``DistillationModule``'s own arguments, and where the teacher's outputs come from."""

    imitation: float = MISSING
    temperature: float = MISSING
    feat_weight: float = MISSING
    projection: bool = MISSING
    per_segment: bool = MISSING
    teacher_feature_dim: Optional[int] = MISSING
    online_teacher: bool = MISSING


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

    csv: bool = MISSING
    wandb: bool = MISSING
    wandb_project: str = MISSING
    wandb_mode: Optional[str] = MISSING


@dataclass
class TeacherConfig:
    """``teacher``: the trained flow teacher (cache stage, online distillation, cache checks)."""

    checkpoint: str = MISSING


@dataclass
class CacheConfig:
    """``cache``: the teacher cache ``ip-tsn cache`` writes (:mod:`ip_tsn.data.teacher_cache`)."""

    dir: str = MISSING
    grid_stride: int = MISSING
    positions: str = MISSING
    subset: str = MISSING
    dtype: str = MISSING
    features: bool = MISSING


@dataclass
class FuseChecks:
    """``fuse.checks``: thresholds of the pre-registered data checks (``evaluation.report.CHECKS``)."""

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
