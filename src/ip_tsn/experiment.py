"""One run of a stage from its config: build the DataModule, the LightningModule and the Trainer.

Stages (``cfg.stage``): ``teacher`` (flow), ``istream`` (I-frames), ``pstream`` (motion vectors +
residuals, no distillation), ``student`` (the distilled P-stream). Every run lives in
``cfg.run_dir`` (derived from the config, so every DDP rank agrees on it): the resolved
``config.yaml``, ``checkpoints/{best,last}.ckpt``, CSV and W&B logs, and test scores.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger

from .config import save_config, to_container
from .data.datamodule import VideoDataModule
from .data.teacher_cache import TeacherCache, sha256_file
from .lit.cache_writer import TeacherCacheWriter
from .lit.classifier import StreamClassifier
from .lit.distillation import DistillationModule
from .lit.report import run_fusion
from .lit.scores import SaveTestScores, save_scores

MODULES = {"classifier": StreamClassifier, "distill": DistillationModule}


def build_datamodule(cfg: DictConfig, **overrides: Any) -> VideoDataModule:
    """``VideoDataModule`` from ``cfg.data`` (the dataset) updated by ``cfg.datamodule`` (the stage)."""
    kwargs = {**to_container(cfg.data), **to_container(cfg.get("datamodule")), **overrides}
    kwargs.pop("name", None)
    return VideoDataModule(**kwargs)


def build_module(cfg: DictConfig, dm: VideoDataModule) -> pl.LightningModule:
    kind = cfg.get("module", "classifier")
    if kind not in MODULES:
        raise ValueError(f"module={kind!r}: choose from {sorted(MODULES)}")
    kwargs = {**to_container(cfg.model), "num_classes": dm.num_classes, "in_channels": dm.num_channels,
              "num_segments": dm.num_segments}
    if kind == "distill":
        kwargs.update(to_container(cfg.get("distill")))
        kwargs["teacher_feature_dim"] = TeacherCache(dm.teacher_cache).manifest["feature_dim"]
    return MODULES[kind](**kwargs)


def wandb_mode(cfg: DictConfig) -> str:
    """``logger.wandb_mode``, else ``WANDB_MODE``, else online only if an API key is configured."""
    mode = cfg.logger.get("wandb_mode") or os.environ.get("WANDB_MODE")
    if mode:
        return mode
    netrc = Path.home() / ".netrc"
    has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
    return "online" if has_key else "offline"


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.get("csv", True):
        loggers.append(CSVLogger(str(run_dir), name="logs", version=""))
    if cfg.logger.get("wandb", False):
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(WandbLogger(project=cfg.logger.get("wandb_project", "ip-tsn"), name=cfg.run_name,
                                   group=cfg.get("wandb_group"), save_dir=str(run_dir), mode=wandb_mode(cfg),
                                   config=to_container(cfg)))
    return loggers


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, loggers: list | bool = False) -> pl.Trainer:
    kwargs = to_container(cfg.trainer)
    return pl.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers, **kwargs)


def fit(cfg: DictConfig) -> Path:
    """Train the stage's model; returns the best checkpoint's path."""
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.run_dir)
    dm = build_datamodule(cfg)
    if cfg.get("module") == "distill":
        _check_cache(cfg, dm)
    model = build_module(cfg, dm)
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=cfg.checkpoint.monitor,
                                 mode=cfg.checkpoint.mode, save_last=True, enable_version_counter=False)
    loggers = build_loggers(cfg, run_dir)
    callbacks = [checkpoint] + ([LearningRateMonitor("epoch")] if loggers else [])
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    if trainer.is_global_zero:
        save_config(cfg, run_dir / "config.yaml")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(ckpt_dir / "last.ckpt") if (ckpt_dir / "last.ckpt").is_file() else None
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return Path(checkpoint.best_model_path or ckpt_dir / "last.ckpt")


def _check_cache(cfg: DictConfig, dm: VideoDataModule) -> None:
    """The student refuses a cache from another teacher checkpoint or dataset."""
    cache = TeacherCache(dm.teacher_cache)
    expected = {"teacher_sha256": sha256_file(cfg.teacher.checkpoint)} if cfg.get("teacher") else {}
    expected["dataset"] = _dataset_key(cfg)
    cache.check(expected)


def _dataset_key(cfg: DictConfig) -> dict:
    return {"name": cfg.data.dataset, "root": os.path.abspath(cfg.data.root), "split": int(cfg.data.split)}


def load_module(path: str | os.PathLike) -> pl.LightningModule:
    """A trained StreamClassifier or DistillationModule from its checkpoint (weights only)."""
    import torch

    hparams = torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    cls = DistillationModule if "kd_weight" in hparams else StreamClassifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pretrained-weights warning: the checkpoint holds the weights
        return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True, pretrained=False)


def cache(cfg: DictConfig) -> Path:
    """Run the teacher over the grid of every train/val video; write the teacher cache."""
    out_dir = Path(cfg.cache.dir)
    teacher_ckpt = cfg.teacher.checkpoint
    dm = build_datamodule(cfg, grid_stride=cfg.cache.grid_stride, predict_subset=cfg.cache.subset)
    model = load_module(teacher_ckpt)
    model.predict_mode = "frames"
    writer = TeacherCacheWriter(out_dir, teacher_checkpoint=teacher_ckpt,
                                dataset={**_dataset_key(cfg), "subset": cfg.cache.subset},
                                grid_stride=cfg.cache.grid_stride, config=to_container(cfg),
                                dtype=cfg.cache.get("dtype", "float16"))
    trainer = build_trainer(cfg, out_dir, [writer])
    trainer.predict(model, datamodule=dm, return_predictions=False)
    return out_dir / "manifest.json"


def test(cfg: DictConfig, checkpoint: str | None = None, subsets: tuple[str, ...] = ("val", "test")) -> dict:
    """TSN test protocol on ``subsets``: per-video scores (``scores_<subset>.npz``) and metrics."""
    run_dir = Path(cfg.run_dir)
    checkpoint = checkpoint or str(run_dir / "checkpoints" / "best.ckpt")
    model = load_module(checkpoint)
    metrics = {}
    for subset in subsets:
        dm = build_datamodule(cfg, test_subset=subset)
        scores = run_dir / f"scores_{subset}.npz"
        trainer = build_trainer(cfg, run_dir, [SaveTestScores(scores)])
        (result,) = trainer.test(model, datamodule=dm, verbose=False)
        metrics[subset] = {k.split("/", 1)[1]: float(v) for k, v in result.items()}
    if trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def fuse(cfg: DictConfig) -> dict:
    """Late fusion of the streams in ``cfg.fuse.streams`` (weights searched on val)."""
    runs = to_container(cfg.fuse.streams)
    dm = build_datamodule(cfg)
    val = {name: Path(run) / "scores_val.npz" for name, run in runs.items()}
    tst = {name: Path(run) / "scores_test.npz" for name, run in runs.items()}
    result = run_fusion(val, tst, cfg.fuse.out_dir, dm.class_names, fused=list(cfg.fuse.fused))
    return {**result, "markdown": str(Path(cfg.fuse.out_dir) / "results.md")}


__all__ = ["build_datamodule", "build_module", "fit", "cache", "test", "fuse", "load_module", "save_scores"]
