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

from .config import ConfigError, load_config, save_config, to_container
from .data.datamodule import VideoDataModule
from .data.teacher_cache import TeacherCache, sha256_file, size_report
from .lit.cache_writer import TeacherCacheWriter
from .lit.checkpoint_info import SaveClassNames
from .lit.classifier import StreamClassifier
from .atomic import write_json_atomic
from .lit.distillation import DistillationModule
from .lit.fused_model import StreamEntry, write_fused_model
from .lit.report import Roles, run_fusion, write_class_report
from .lit.scores import SaveTestScores, save_scores
from .lit.splits import write_splits_report

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
        distill = to_container(cfg.get("distill"))
        distill.pop("online_teacher", None)
        kwargs.update(distill)
        if dm.teacher_cache is not None and not cfg.distill.get("online_teacher"):
            kwargs["teacher_feature_dim"] = TeacherCache(dm.teacher_cache).feature_dim or None
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
    run_dir = Path(cfg.run_dir)
    if (run_dir / "fit.json").is_file() and not cfg.get("ckpt_path") and not cfg.get("overwrite"):
        raise ConfigError(f"{run_dir} holds a finished run ({run_dir / 'fit.json'}); pass ckpt_path=last to resume "
                          "it, overwrite=true to replace it, or another run_root / name")
    pl.seed_everything(cfg.seed, workers=True)
    online = cfg.get("module") == "distill" and bool(cfg.distill.get("online_teacher"))
    dm = build_datamodule(cfg, **({"teacher_input": True, "teacher_cache": None} if online else {}))
    if cfg.get("module") == "distill" and not online:
        _check_cache(cfg, dm)
    model = build_module(cfg, dm)
    if online:
        model.set_teacher(load_module(cfg.teacher.checkpoint))  # type: ignore[operator]
    ckpt_dir = run_dir / "checkpoints"
    # monitor null: best.ckpt is the final epoch's weights (no selection on a noisy validation set)
    checkpoint = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=cfg.checkpoint.monitor,
                                 mode=cfg.checkpoint.mode, save_last=True, enable_version_counter=False)
    loggers = build_loggers(cfg, run_dir)
    callbacks = [checkpoint, SaveClassNames(dm.class_names)] + ([LearningRateMonitor("epoch")] if loggers else [])
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    if trainer.is_global_zero:
        save_config(cfg, run_dir / "config.yaml")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(ckpt_dir / "last.ckpt") if (ckpt_dir / "last.ckpt").is_file() else None
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    best = Path(checkpoint.best_model_path or ckpt_dir / "last.ckpt")
    if trainer.is_global_zero and not trainer.interrupted:  # the Makefile's target: written last
        score = checkpoint.best_model_score
        write_json_atomic(run_dir / "fit.json", {"best_checkpoint": str(best), "monitor": cfg.checkpoint.monitor,
                                                 "best_score": None if score is None else float(score),
                                                 "epochs": trainer.current_epoch})
    return best


def _check_cache(cfg: DictConfig, dm: VideoDataModule) -> None:
    """The student refuses a cache from another teacher checkpoint, dataset, view set, flow window
    or grid, and a cache whose files do not match their checksums."""
    cache = TeacherCache(dm.teacher_cache)
    expected = {"teacher_sha256": sha256_file(cfg.teacher.checkpoint)} if cfg.get("teacher") else {}
    expected["dataset"] = _dataset_key(cfg)
    expected["views"] = _views_key(dm)
    expected["flow_length"] = int(dm.hparams.flow_length)
    expected["grid_stride"] = int(dm.hparams.grid_stride)
    cache.check(expected)
    cache.verify()


def _views_key(dm: VideoDataModule) -> dict:
    from .data.transforms import num_view_ids

    hp = dm.hparams
    if hp.train_views is None:
        raise ConfigError("the teacher cache and the student need data.train_views (1, 3 or 5): the fixed views "
                          "the student's augmentation draws from and the cache holds")
    return {"num_views": int(hp.train_views), "flip": bool(hp.flip), "crop_size": int(hp.crop_size),
            "scale_size": hp.scale_size, "num_ids": num_view_ids(int(hp.train_views), bool(hp.flip))}


def _dataset_key(cfg: DictConfig) -> dict:
    return {"name": cfg.data.dataset, "root": os.path.abspath(cfg.data.root), "split": int(cfg.data.split)}


def load_module(path: str | os.PathLike) -> pl.LightningModule:
    """A trained StreamClassifier or DistillationModule from its checkpoint (weights only); the
    kind is the one the checkpoint records (older checkpoints: guessed from their hyperparameters)."""
    import torch

    raw = torch.load(path, map_location="cpu", weights_only=True)
    hparams = raw.get("hyper_parameters", {})
    kind = raw.get("ip_tsn_module") or ("distill" if {"imitation", "kd_weight"} & set(hparams) else "classifier")
    cls = MODULES[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pretrained-weights warning: the checkpoint holds the weights
        return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True, pretrained=False)


def cache(cfg: DictConfig) -> Path:
    """Run the trained teacher over every train/val video, at the student's positions (P-frames
    at which a flow stack ends, every ``grid_stride``-th) and in every view of the training view
    set; write the teacher cache (format: :mod:`ip_tsn.data.teacher_cache`)."""
    out_dir = Path(cfg.cache.dir)
    teacher_ckpt = cfg.teacher.checkpoint
    dm = build_datamodule(cfg, grid_stride=cfg.cache.grid_stride, predict_subset=cfg.cache.subset,
                          cache_positions=cfg.cache.get("positions", "p"))
    model = load_module(teacher_ckpt)
    model.predict_mode = "frames"  # type: ignore[assignment]
    writer = TeacherCacheWriter(out_dir, teacher_checkpoint=teacher_ckpt,
                                dataset={**_dataset_key(cfg), "subset": cfg.cache.subset},
                                grid_stride=int(cfg.cache.grid_stride), views=_views_key(dm),
                                flow_length=int(dm.hparams.flow_length), config=to_container(cfg),
                                dtype=cfg.cache.get("dtype", "float16"), features=bool(cfg.cache.get("features", True)))
    trainer = build_trainer(cfg, out_dir, [writer])
    trainer.predict(model, datamodule=dm, return_predictions=False)
    if trainer.is_global_zero:
        print(size_report(TeacherCache(out_dir).manifest))
    return out_dir / "manifest.json"


def test(cfg: DictConfig, checkpoint: str | None = None, subsets: tuple[str, ...] = ("val", "test")) -> dict:
    """TSN test protocol on ``subsets`` (``data.test_segments`` x ``data.test_crops``: 1, 3 or 10):
    per-video scores ``scores_<subset>.npz``, ``metrics.json``, ``per_class_<subset>.csv`` and
    ``confusion_<subset>.png`` in the run directory."""
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
            table = model.test_scores()
            write_class_report(run_dir, subset, table.scores, table.labels, dm.class_names)
    if trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def fuse(cfg: DictConfig) -> dict:
    """Late fusion of the streams in ``cfg.fuse.streams`` (weights searched on val): the report
    (``results.{md,json}``, ``confusion.png``: every stream, the fusion, the same at 1:1 and
    ``fuse.baseline_fused``, with bootstrap CIs, paired differences and the data checks on val)
    and ``model.json`` (the fused streams' best checkpoints and weights, for ``ip-tsn predict`` /
    ``ip-tsn export``) in ``cfg.fuse.out_dir``."""
    runs = to_container(cfg.fuse.streams)
    dm = build_datamodule(cfg)
    fused = list(cfg.fuse.fused)
    baseline = cfg.fuse.get("baseline_fused")
    roles = Roles(baseline_fused=tuple(baseline) if baseline else None,
                  **{k: cfg.fuse.get(k) for k in ("distilled", "plain", "teacher", "appearance")})
    val = {name: Path(run) / "scores_val.npz" for name, run in runs.items()}
    needed = {*fused, *(roles.baseline_fused or ())}
    val = {name: p for name, p in val.items() if name in needed or p.is_file()}
    tst = {name: Path(run) / "scores_test.npz" for name, run in runs.items()}
    result = run_fusion(val, tst, cfg.fuse.out_dir, dm.class_names, fused=fused, roles=roles,
                        groups=cfg.fuse.get("groups"), thresholds=to_container(cfg.fuse.get("checks")))
    entries = [StreamEntry(name, float(w), checkpoint=str(Path(runs[name]) / "checkpoints" / "best.ckpt"))
               for name, w in result["weights"].items()]
    write_fused_model(Path(cfg.fuse.out_dir) / "model.json", entries, dm.class_names)
    return {**result, "markdown": str(Path(cfg.fuse.out_dir) / "results.md")}


def fuse_splits(config: str | os.PathLike, overrides: list[str], splits: list[int]) -> dict:
    """:func:`fuse` on each of ``splits`` (the config composed again with ``data.split=k``, so
    ``run_root`` follows the split), then a table of each split and the mean in
    ``fuse.splits_dir`` (default ``<run_root of the first split>/../<name>_splits``)."""
    cfgs = {k: load_config(config, [*overrides, f"data.split={k}", "fuse.splits=null"]) for k in splits}
    roots = {str(Path(c.run_root).resolve()) for c in cfgs.values()}
    if len(roots) < len(cfgs):
        raise ConfigError(f"{config}: run_root ({cfgs[splits[0]].run_root}) does not depend on data.split; "
                          "splits would overwrite each other (use run_root=.../split${data.split})")
    per_split = {k: fuse(c) for k, c in cfgs.items()}
    first = cfgs[splits[0]]
    out_dir = first.fuse.get("splits_dir") or Path(first.run_root).parent / f"{first.name}_splits"
    return write_splits_report(per_split, out_dir)


__all__ = ["build_datamodule", "build_module", "fit", "cache", "test", "fuse", "fuse_splits", "load_module",
           "save_scores"]
