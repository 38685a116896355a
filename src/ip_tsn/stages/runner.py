"""One run of a stage from its config: build the DataModule, the LightningModule and the Trainer.

Stages (``cfg.stage``): ``teacher`` (flow), ``istream`` (I-frames), ``pstream`` (motion vectors +
residuals, no distillation), ``student`` (the distilled P-stream). Every run lives in
``cfg.run_dir`` (derived from the config, so every DDP rank agrees on it): the resolved
``config.yaml``, ``checkpoints/{best,last}.ckpt``, CSV and W&B logs, and test scores.
``last.ckpt`` is rewritten (atomically) after every epoch; ``ckpt_path=last`` resumes from it and
keeps the rows of ``logs/metrics.csv`` of the epochs it holds (:mod:`ip_tsn.stages.loggers`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from ip_tsn.atomic import atomic_path, write_json_atomic
from ip_tsn.config import ConfigError, load_config, save_config, to_container
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.cache_size import size_report
from ip_tsn.data.teacher_cache import TeacherCache, sha256_file
from ip_tsn.data.transforms import num_view_ids
from ip_tsn.deploy.fused_model import StreamEntry, write_fused_model
from ip_tsn.evaluation.checks import Roles
from ip_tsn.evaluation.class_report import write_class_report
from ip_tsn.evaluation.fusion_run import run_fusion
from ip_tsn.evaluation.splits import write_splits_report
from ip_tsn.evaluation.targets import target_stats
from ip_tsn.lit.cache_writer import TeacherCacheWriter
from ip_tsn.lit.callbacks import AtomicCheckpointIO, SaveLastEveryEpoch, SaveStreamInfo, ValidateLastEpoch
from ip_tsn.lit.checkpoint_info import checkpoint_preprocess, read_checkpoint
from ip_tsn.lit.modules import MODULES, load_module
from ip_tsn.lit.scores import SaveTestScores
from ip_tsn.stages.config_schema import CacheConfig, DistillConfig, filled
from ip_tsn.stages.loggers import build_loggers


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
    """``VideoDataModule`` from ``cfg.data`` (the dataset) updated by ``cfg.datamodule`` (the stage);
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
        if dm.teacher_cache is not None and not _online_teacher(cfg):
            kwargs["teacher_feature_dim"] = TeacherCache(dm.teacher_cache).feature_dim or None
    with one_line("model", cfg):
        return MODULES[kind](**kwargs)


def _online_teacher(cfg: DictConfig) -> bool:
    """``distill.online_teacher`` (its default where the config leaves it out)."""
    return bool(filled(cfg.get("distill"), DistillConfig).online_teacher)


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, loggers: list | bool = False) -> pl.Trainer:
    kwargs = to_container(cfg.trainer)
    with one_line("trainer", cfg):
        return pl.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers,
                          plugins=[AtomicCheckpointIO()], **kwargs)


def expected_kind(cfg: DictConfig) -> dict[str, str | None]:
    """The ``stage`` and ``modality`` a checkpoint of ``cfg``'s stage records."""
    modality = (cfg.get("datamodule") or {}).get("modality") or cfg.data.get("modality")
    return {"stage": cfg.get("stage"), "modality": modality}


def resume_checkpoint(cfg: DictConfig) -> tuple[str | None, tuple[int, int] | None]:
    """``cfg.ckpt_path`` resolved (``last``: ``<run_dir>/checkpoints/last.ckpt`` if it exists, else
    None: a fresh start), checked readable and of this stage (:func:`read_checkpoint`), and its
    ``(epoch, global_step)``."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    if not ckpt_path:
        return None, None
    raw = read_checkpoint(ckpt_path, f"ckpt_path of the {cfg.get('stage')} config", **expected_kind(cfg))
    return str(ckpt_path), (int(raw.get("epoch", 0)), int(raw.get("global_step", 0)))


def resume_hint(cfg: DictConfig) -> str:
    """What to do after an interrupted ``fit`` of ``cfg``."""
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        return f"resume with ckpt_path=last ({last})"
    return f"no epoch finished, nothing to resume ({last} not written)"


def _check_resume_fits(model: pl.LightningModule, ckpt_path: str) -> None:
    """One line, before anything is written, when the checkpoint to resume holds another network
    than the config builds (another arch, class count, input channels, head): Lightning's strict
    loading would stop inside ``fit`` with a traceback listing every tensor."""
    saved = read_checkpoint(ckpt_path)["state_dict"]
    own = model.state_dict()
    shapes = {k: (tuple(saved[k].shape), tuple(v.shape)) for k, v in own.items() if k in saved
              and tuple(saved[k].shape) != tuple(v.shape)}
    absent, extra = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if not (shapes or absent or extra):
        return
    if shapes:
        key, (was, now) = next(iter(shapes.items()))
        first = f"{key} is {list(was)} there, {list(now)} here"
    else:
        first = f"{(absent or extra)[0]} only {'here' if absent else 'there'}"
    raise ConfigError(f"ckpt_path={ckpt_path}: holds another network than this config builds ({len(shapes)} tensor(s) "
                      f"of other shapes, {len(absent) + len(extra)} not in both; {first}); resume with the settings "
                      "it was trained with (the run's config.yaml)")


def _check_length(cfg: DictConfig) -> None:
    """One line for a run of no length (``trainer.max_epochs`` or ``max_steps`` 0) or of no end
    (``max_epochs=-1`` without ``max_steps``): the learning-rate schedule spans the run's steps."""
    epochs, steps = cfg.trainer.get("max_epochs"), cfg.trainer.get("max_steps", -1)
    for key, value in (("max_epochs", epochs), ("max_steps", steps)):
        if value == 0:
            raise ConfigError(f"trainer.{key}=0: nothing to train (the {cfg.get('stage')} config)")
    if epochs == -1 and steps in (None, -1):
        raise ConfigError(f"trainer.max_epochs=-1 trains without end, but the learning-rate schedule spans the run: "
                          f"set trainer.max_epochs or trainer.max_steps (the {cfg.get('stage')} config)")


def fit(cfg: DictConfig) -> Path:
    """Train the stage's model; returns the best checkpoint's path."""
    run_dir = Path(cfg.run_dir)
    if (run_dir / "fit.json").is_file() and not cfg.get("ckpt_path") and not cfg.get("overwrite"):
        raise ConfigError(f"{run_dir} holds a finished run ({run_dir / 'fit.json'}); pass ckpt_path=last to resume "
                          "it, overwrite=true to replace it, or another run_root / name")
    _check_length(cfg)
    ckpt_path, resume = resume_checkpoint(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    online = cfg.get("module") == "distill" and _online_teacher(cfg)
    if cfg.get("module") == "distill" and not online and filled(cfg.get("distill"), DistillConfig).spatial_weight:
        raise ConfigError("distill.spatial_weight > 0 needs distill.online_teacher=true (feature maps are not cached: "
                          "at ResNet-18's layer4, 10 views, ~75x the re-encoded videos of Kinetics-400)")
    dm = build_datamodule(cfg, **({"teacher_input": True, "teacher_cache": None} if online else {}))
    if cfg.get("module") == "distill" and not online:
        _check_cache(cfg, dm)
    model = build_module(cfg, dm)  # weights it cannot load stop here, before anything is written
    if ckpt_path:
        _check_resume_fits(model, ckpt_path)
    if online:
        teacher = load_module(cfg.teacher.checkpoint, "teacher.checkpoint", modality="flow")
        model.set_teacher(teacher)  # type: ignore[operator]
    ckpt_dir = run_dir / "checkpoints"
    # monitor null: best.ckpt is a copy of the final epoch's last.ckpt, made when fit ends (no selection
    # on a noisy validation set, whatever the validation schedule); else the best validated epoch.
    # last.ckpt: every epoch, written after best.ckpt (checkpoint callbacks keep their order)
    checkpoint = None if cfg.checkpoint.monitor is None else ModelCheckpoint(
        dirpath=str(ckpt_dir), filename="best", monitor=cfg.checkpoint.monitor, mode=cfg.checkpoint.mode,
        save_last=False, enable_version_counter=False)
    loggers = build_loggers(cfg, run_dir, resume)
    callbacks = [ValidateLastEpoch(), *([checkpoint] if checkpoint else []), SaveLastEveryEpoch(ckpt_dir / "last.ckpt"),
                 SaveStreamInfo(dm.class_names, cfg.get("stage"), dm.preprocess), *([LearningRateMonitor("epoch")] if loggers else [])]
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    failed = run_dir / FAILED
    if trainer.is_global_zero:
        failed.unlink(missing_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    last = ckpt_dir / "last.ckpt"
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning turns Ctrl-C into exit(1) after its shutdown
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left it ignored
        raise KeyboardInterrupt from None
    except Exception as e:  # the folder says so: not a run in progress
        _mark_failed(trainer, failed, last, f"{type(e).__name__}: {e}")
        raise
    if not last.is_file() and not trainer.interrupted:  # e.g. DDP with fewer training batches than ranks
        batches, world = trainer.num_training_batches, trainer.world_size
        batches = batches if batches != float("inf") else 0  # Lightning's "not run"
        why = (f"no training step ran: {batches} training batches per process ({world} process(es), batch_size "
               f"{dm.batch_size}, an incomplete last batch dropped); use a smaller data.batch_size or fewer devices")
        _mark_failed(trainer, failed, last, why)
        raise ConfigError(f"{run_dir}: {why}")
    best = ckpt_dir / "best.ckpt" if checkpoint is None else Path(checkpoint.best_model_path or last)
    if trainer.is_global_zero and not trainer.interrupted:  # the Makefile's target: written last
        if checkpoint is None:
            with atomic_path(best) as tmp:
                shutil.copyfile(last, tmp)
        score = None if checkpoint is None else checkpoint.best_model_score
        write_json_atomic(run_dir / "fit.json", {"best_checkpoint": str(best), "monitor": cfg.checkpoint.monitor,
                                                 "best_score": None if score is None else float(score),
                                                 "epochs": trainer.current_epoch,
                                                 "val_top1": _metric(trainer, "val/top1"),  # the final epoch's
                                                 "skipped_videos": dict(dm.skipped),  # skip_bad_videos: read around
                                                 "weights_from": getattr(model, "weights_from", None)})
    return best


FAILED = "failed.json"  # in a run folder whose fit failed before its first checkpoint


def _mark_failed(trainer: pl.Trainer, failed: Path, last: Path, why: str) -> None:
    """A fit that failed before its first checkpoint leaves its folder marked ``failed.json`` (the
    error, the epoch), so it never looks like a run in progress; the next fit there removes it."""
    if trainer.is_global_zero and not last.is_file():
        write_json_atomic(failed, {"error": why.splitlines()[0] if why else "", "epoch": trainer.current_epoch})


def _metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


def _check_cache(cfg: DictConfig, dm: VideoDataModule) -> None:
    """The student refuses a cache from another teacher checkpoint, dataset, view set, flow window
    or grid, and a cache whose files do not match their checksums."""
    cache = TeacherCache(dm.teacher_cache)
    expected = {"teacher_sha256": sha256_file(cfg.teacher.checkpoint)} if cfg.get("teacher") else {}
    expected["dataset"] = _dataset_key(cfg)
    expected["views"] = _views_key(dm)
    expected["flow_length"] = int(dm.preprocess.flow_length)
    expected["grid_stride"] = int(dm.hparams.grid_stride)
    cache.check(expected)
    cache.verify()


def _views_key(dm: VideoDataModule) -> dict:
    pre = dm.preprocess
    if pre.train_views is None:
        raise ConfigError("the teacher cache and the student need data.train_views (1, 3 or 5): the fixed views "
                          "the student's augmentation draws from and the cache holds")
    return {"num_views": int(pre.train_views), "flip": bool(pre.flip), "crop_size": int(pre.crop_size),
            "scale_size": pre.scale_size, "num_ids": num_view_ids(int(pre.train_views), bool(pre.flip))}


def _dataset_key(cfg: DictConfig) -> dict:
    # the real path: the same data set reached through a symlink is not another data set
    return {"name": cfg.data.dataset, "root": os.path.realpath(cfg.data.root), "split": int(cfg.data.split)}


def cache(cfg: DictConfig) -> Path:
    """Run the trained teacher over every train/val video, at the student's positions (P-frames
    at which a flow stack ends, every ``grid_stride``-th) and in every view of the training view
    set; write the teacher cache (format: :mod:`ip_tsn.data.teacher_cache`)."""
    settings = filled(cfg.cache, CacheConfig)
    out_dir = Path(settings.dir)
    teacher_ckpt = cfg.teacher.checkpoint
    dm = build_datamodule(cfg, "predict", grid_stride=settings.grid_stride, predict_subset=settings.subset,
                          cache_positions=settings.positions)
    model = load_module(teacher_ckpt, "teacher.checkpoint", modality="flow")
    model.predict_mode = "frames"  # type: ignore[assignment]
    writer = TeacherCacheWriter(out_dir, teacher_checkpoint=teacher_ckpt,
                                dataset={**_dataset_key(cfg), "subset": settings.subset},
                                grid_stride=int(settings.grid_stride), views=_views_key(dm),
                                flow_length=int(dm.preprocess.flow_length), config=to_container(cfg),
                                dtype=settings.dtype, features=bool(settings.features))
    trainer = build_trainer(cfg, out_dir, [writer])
    trainer.predict(model, datamodule=dm, return_predictions=False)
    if trainer.is_global_zero:
        print(size_report(TeacherCache(out_dir).manifest))
        report = write_target_report(cfg, dm, out_dir)
        for subset, st in report.items():
            idle = (f", idle rows {st['idle_entropy']:.2f} nats ({st['idle_entropy_ratio']:.2f} ln C)"
                    if "idle_entropy" in st else "")
            noact = f", {st['no_active_pct']:.1f}% of training draws with no active segment" if "no_active_pct" in st else ""
            print(f"teacher targets on {subset} rows: top-1 {st['top1']:.1f}%, entropy {st['entropy']:.2f} nats "
                  f"(max {st['max_entropy']:.2f}){idle}{noact}")
    return out_dir / "manifest.json"


TARGETS_FILE = "targets.json"


def write_target_report(cfg: DictConfig, dm: VideoDataModule, out_dir: Path) -> dict:
    """``<cache>/targets.json``: the teacher's top-1 and entropy on the cached rows per subset
    (:func:`ip_tsn.evaluation.targets.target_stats`), with the idle-row and no-active-draw figures
    where ``<data.root>/actions.json`` says when each video acts."""
    from ip_tsn.codec import CompressedVideo

    cache = TeacherCache(out_dir)
    subset = filled(cfg.cache, CacheConfig).subset
    subsets = ["train", "val"] if subset == "trainval" else [str(subset)]
    rows, gops = {}, {}
    for subset in subsets:
        for r in dm.records(subset):
            if r.path not in cache.videos:
                continue
            rows[r.path] = {"subset": subset, "label": r.label, "frames": cache.frames(r.path),
                            "logits": cache.video_logits(r.path)}
    actions = Path(cfg.data.root) / "actions.json"
    windows = json.loads(actions.read_text()) if actions.is_file() else None
    if windows is not None:
        for vid in rows:
            video = CompressedVideo(Path(dm.video_root) / vid)
            try:
                gops[vid] = video.gop_starts
            finally:
                video.close()
    temperature = filled(cfg.get("distill"), DistillConfig).temperature
    report = target_stats(rows, cache.num_classes, float(temperature), windows,
                          int(dm.preprocess.flow_length), gops or None, int(cfg.data.num_segments))
    write_json_atomic(out_dir / TARGETS_FILE, report)
    return report


def test(cfg: DictConfig, checkpoint: str | None = None, subsets: tuple[str, ...] = ("val", "test")) -> dict:
    """TSN test protocol on ``subsets`` (``data.test_segments`` x ``data.test_crops``: 1, 3 or 10):
    per-video scores ``scores_<subset>.npz``, ``metrics.json``, ``per_class_<subset>.csv`` and
    ``confusion_<subset>.png`` in the run directory."""
    run_dir = Path(cfg.run_dir)
    checkpoint = checkpoint or str(run_dir / "checkpoints" / "best.ckpt")
    model = load_module(checkpoint, f"the {cfg.get('stage')} config", **expected_kind(cfg))
    metrics = {}
    dms = {subset: build_datamodule(cfg, "test", test_subset=subset) for subset in subsets}
    for dm in dms.values():  # every list and video of every subset checked before any is scored
        dm.check_videos(dm.subsets_of("test"))
    for subset, dm in dms.items():
        scores = run_dir / f"scores_{subset}.npz"
        trainer = build_trainer(cfg, run_dir, [SaveTestScores(scores)])
        (result,) = trainer.test(model, datamodule=dm, verbose=False)
        metrics[subset] = {k.split("/", 1)[1]: float(v) for k, v in result.items()}
        if trainer.is_global_zero:
            table = model.test_scores()
            write_class_report(run_dir, subset, table.scores, table.labels, dm.class_names)
    if trainer.is_global_zero:
        write_json_atomic(run_dir / "metrics.json", metrics)
    return metrics


def fuse(cfg: DictConfig) -> dict:
    """Late fusion of the streams in ``cfg.fuse.streams`` (weights searched on val): the report
    (``results.{md,json}``, ``confusion.png``: every stream, the fusion, the same at 1:1 and
    ``fuse.baseline_fused``, with bootstrap CIs, paired differences and the data checks on val)
    and ``model.json`` (the fused streams' best checkpoints and weights, for ``ip-tsn predict`` /
    ``ip-tsn export``) in ``cfg.fuse.out_dir``."""
    runs = to_container(cfg.fuse.streams)
    fused = list(cfg.fuse.fused)
    scored = {name for name, run in runs.items() if (Path(run) / "scores_test.npz").is_file()}
    for name in fused:
        if name not in runs:
            raise ConfigError(f"fuse.fused: {name!r} is not one of fuse.streams ({', '.join(runs)})")
        if name not in scored:
            raise ConfigError(f"fuse.fused: {name!r} has no scores ({Path(runs[name]) / 'scores_test.npz'}); "
                              f"train and test it, or fuse others: fuse.fused=[{','.join(sorted(scored))}]")
    left_out = sorted(set(runs) - scored)  # reported streams without scores: any subset fuses
    if left_out:
        print(f"fuse: left out (no scores): {', '.join(f'{n} ({runs[n]})' for n in left_out)}")
    runs = {name: run for name, run in runs.items() if name in scored}
    dm = build_datamodule(cfg, None)
    baseline = cfg.fuse.get("baseline_fused")
    baseline = tuple(baseline) if baseline and all(n in scored for n in baseline) else None
    roles = Roles(baseline_fused=baseline, **{k: cfg.fuse.get(k) if cfg.fuse.get(k) in scored else None
                                              for k in ("distilled", "plain", "teacher", "appearance")})
    val = {name: Path(run) / "scores_val.npz" for name, run in runs.items()}
    needed = {*fused, *(roles.baseline_fused or ())}
    val = {name: p for name, p in val.items() if name in needed or p.is_file()}
    tst = {name: Path(run) / "scores_test.npz" for name, run in runs.items()}
    result = run_fusion(val, tst, cfg.fuse.out_dir, dm.class_names, fused=fused, roles=roles,
                        groups=cfg.fuse.get("groups"), thresholds=to_container(cfg.fuse.get("checks")),
                        targets=cfg.fuse.get("targets"))
    entries = [_fused_entry(name, float(w), Path(runs[name]) / "checkpoints" / "best.ckpt")
               for name, w in result["weights"].items()]
    write_fused_model(Path(cfg.fuse.out_dir) / "model.json", entries, dm.class_names)
    return {**result, "markdown": str(Path(cfg.fuse.out_dir) / "results.md")}


def _fused_entry(name: str, weight: float, checkpoint: Path) -> StreamEntry:
    """A ``model.json`` stream: its checkpoint, weight and (when the checkpoint is there) a copy of
    the checkpoint's preprocessing."""
    preprocess = None
    if checkpoint.is_file():
        preprocess = checkpoint_preprocess(read_checkpoint(checkpoint), str(checkpoint)).to_dict()
    return StreamEntry(name, weight, checkpoint=str(checkpoint), preprocess=preprocess)


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


__all__ = ["build_datamodule", "build_module", "fit", "cache", "test", "fuse", "fuse_splits", "resume_hint"]
