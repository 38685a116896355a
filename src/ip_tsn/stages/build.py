"""What every stage builds from its config: the DataModule (``cfg.data`` updated by
``cfg.datamodule``), the LightningModule (``cfg.module``, ``cfg.model``, ``cfg.distill``) and the
Trainer (``cfg.trainer``), each value a library refuses turned into one :class:`ConfigError` line.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from ip_tsn.config import ConfigError, to_container
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.split_files import SplitError
from ip_tsn.data.teacher_cache import TeacherCache
from ip_tsn.lit.callbacks import AtomicCheckpointIO
from ip_tsn.lit.modules import MODULES
from ip_tsn.stages.config_schema import DistillConfig, filled


@contextlib.contextmanager
def one_line(section: str, cfg: DictConfig) -> Iterator[None]:
    """A value the package, torchvision or Lightning refuses while a run is set up (before anything
    is written) becomes one :class:`ConfigError` line naming the config section and the stage file."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError, MisconfigurationException) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{section}: {text} (the {cfg.get('stage')} config)") from None


def build_datamodule(cfg: DictConfig, stage: str | None = "fit", **overrides: Any) -> VideoDataModule:
    """``VideoDataModule`` from ``cfg.data`` (``load_config`` has merged the stage's ``datamodule``
    into it; one still set, in a config built by hand, updates it);
    its values, its dataset's class file and the lists of the subsets Lightning's ``stage`` reads
    (``fit``, ``test``, ``predict``; None: the class file only, all ``fuse`` needs) checked now,
    before any trainer exists: a missing root, a bad split file or an empty subset is one line."""
    kwargs = {**to_container(cfg.data), **to_container(cfg.get("datamodule")), **overrides}
    name = kwargs.pop("name", None)
    root = Path(str(kwargs.get("root")))
    if not root.is_dir():
        raise ConfigError(f"data.root={root}: no such folder (data={name}); prepare it (README, \"Real datasets\": "
                          f"make data DATASET=... ROOT=...) or point data.root at it")
    with one_line("data", cfg), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing videos are reported once, by setup()
        dm = VideoDataModule(**kwargs)
        for subset in dm.subsets_of(stage) if stage else []:  # read now: a bad file is named before any work
            dm.records(subset)
        dm.class_names
    return dm


def build_module(cfg: DictConfig, dm: VideoDataModule) -> pl.LightningModule:
    kind = cfg.get("module", "classifier")
    if kind not in MODULES:
        raise ValueError(f"module={kind!r}: choose from {sorted(MODULES)}")
    kwargs = {**to_container(cfg.model), "num_classes": dm.num_classes, "in_channels": dm.num_channels,
              "num_segments": dm.num_segments}
    if kind == "distill":
        distill = to_container(cfg.get("distill"))
        distill.pop("online_teacher", None)  # the runner's, not the module's
        kwargs.update(distill)
        if dm.teacher_cache is not None and not online_teacher(cfg):
            kwargs["teacher_feature_dim"] = TeacherCache(dm.teacher_cache).feature_dim or None
            feat_weight = filled(cfg.get("distill"), DistillConfig).feat_weight
            if kwargs["teacher_feature_dim"] is None and feat_weight > 0:
                # until 2026-12-08 a RuntimeError (512 against 0) at the first training step
                raise ConfigError(f"distill.feat_weight={feat_weight} imitates the teacher's features, but "
                                  f"the teacher cache {dm.teacher_cache} holds none (made with cache.features=false): "
                                  "make it again with cache.features=true, or set distill.feat_weight=0")
    with one_line("model", cfg):
        return MODULES[kind](**kwargs)


def online_teacher(cfg: DictConfig) -> bool:
    """``distill.online_teacher`` (its default where the config leaves it out)."""
    return bool(filled(cfg.get("distill"), DistillConfig).online_teacher)


#: Lightning strategies that run the work in processes started from this one (multiprocessing's spawn or
#: fork): what they did (epochs, the test scores, the cache's record) does not come back to this process
STARTED_HERE = ("spawn", "fork", "notebook")


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, loggers: list | bool = False,
                  loop: str | None = None) -> pl.Trainer:
    """The stage's Trainer; ``loop`` (``test``, ``predict``): the one loop the command runs, which
    ``trainer.limit_<loop>_batches=0`` would leave empty (until 2026-12-08 a traceback after it)."""
    kwargs = to_container(cfg.trainer)
    if loop is not None and kwargs.get(f"limit_{loop}_batches") == 0:
        raise ConfigError(f"trainer.limit_{loop}_batches=0: no batch to {'score' if loop == 'test' else 'cache'} "
                          f"(the {cfg.get('stage')} config)")
    strategy = kwargs.get("strategy")
    if isinstance(strategy, str) and any(word in strategy for word in STARTED_HERE):
        raise ConfigError(f"trainer.strategy={strategy} runs the work in processes started from this one, and what "
                          "they did (epochs, test scores, records) does not come back to it: fit.json said 0 epochs; "
                          "use trainer.strategy=ddp (what auto picks for several devices: the same processes, "
                          "launched as scripts)")
    with one_line("trainer", cfg):
        return pl.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers,
                          plugins=[AtomicCheckpointIO()], **kwargs)


def data_named(cfg: DictConfig) -> str:
    """How a message names the config's data: ``data=ucf101 (data/ucf101, split 1)``, with its class list."""
    classes = f", data.class_list={cfg.data.class_list}" if cfg.data.get("class_list") else ""
    return f"data={cfg.data.dataset} ({cfg.data.root}, split {cfg.data.split}{classes})"


def subset_named(cfg: DictConfig, dm: VideoDataModule, subset: str) -> str:
    """How a message names a subset's videos: ``the test subset of data=ucf101 (data/ucf101, split 2),
    data.seed=0`` (the seed that carves val from the official train list)."""
    return f"the {subset} subset of {data_named(cfg)}, data.seed={dm.hparams.seed}"


def subset_videos(dm: VideoDataModule, subset: str) -> list[str]:
    """The paths of ``subset``'s videos there (none where its list is absent: nothing to compare)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing videos: said by the command that reads them
        try:
            return [r.path for r in dm.records(subset)]
        except SplitError:
            return []


def expected_kind(cfg: DictConfig) -> dict[str, str | None]:
    """The ``stage`` and ``modality`` a checkpoint of ``cfg``'s stage records."""
    modality = (cfg.get("datamodule") or {}).get("modality") or cfg.data.get("modality")
    return {"stage": cfg.get("stage"), "modality": modality}


__all__ = ["one_line", "build_datamodule", "build_module", "online_teacher", "build_trainer", "data_named",
           "subset_named", "subset_videos", "expected_kind"]
