"""``ip-tsn fit``: train a stage's network from its config.

Stages (``cfg.stage``): ``teacher`` (flow), ``istream`` (I-frames), ``pstream`` (motion vectors +
residuals, no distillation), ``student`` (the distilled P-stream). Every run lives in
``cfg.run_dir`` (derived from the config, so every DDP rank agrees on it): the resolved
``config.yaml``, ``checkpoints/{best,last}.ckpt``, CSV and W&B logs, and ``fit.json`` (written
last; with the run's ``environment``, :mod:`ip_tsn.stages.provenance`). ``last.ckpt`` is rewritten (atomically) after every epoch; ``ckpt_path=last`` resumes from it
(:mod:`ip_tsn.stages.resume`: with the settings the run started with) and keeps the rows of
``logs/metrics.csv`` of the epochs it holds (:mod:`ip_tsn.stages.loggers`).
"""

from __future__ import annotations

import shutil
import signal
from contextlib import ExitStack
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from ip_tsn.atomic import (BrokenFileError, OutputError, atomic_path, check_output_dir, hold_folder, read_json, sha256_file,
                           write_json_atomic)
from ip_tsn.config import ConfigError, save_config
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.lit.callbacks import SaveLastEveryEpoch, SaveStreamInfo, ValidateLastEpoch
from ip_tsn.lit.checkpoint_info import TRAINED_ON_KEY, check_classes, read_checkpoint
from ip_tsn.lit.modules import load_module
from ip_tsn.lit.rank_watch import WatchRanks
from ip_tsn.stages.build import build_datamodule, build_module, build_trainer, data_named, online_teacher, \
    subset_named, subset_videos
from ip_tsn.stages.cache_stage import check_cache, check_teacher
from ip_tsn.stages.config_schema import DistillConfig, filled
from ip_tsn.stages.loggers import build_loggers, finish_wandb, remember_wandb_run, start_wandb
from ip_tsn.stages.resume import check_moved, check_resume_fits, check_same_settings, resume_checkpoint, \
    resume_hint
from ip_tsn.stages.provenance import environment


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


def _refuse_finished(cfg: DictConfig, run_dir: Path) -> None:
    """A finished run (its ``fit.json``), or an unfinished one (its ``last.ckpt``: killed, cut by a
    time limit, failed), is trained again only by ``ckpt_path=last`` or ``overwrite=true``. Until
    2026-12-08 a fit without either started an unfinished run again at epoch 0 without a word, its
    epochs lost at the new run's first checkpoint."""
    if cfg.get("ckpt_path") or cfg.get("overwrite"):
        return
    if (run_dir / "fit.json").is_file():
        raise ConfigError(f"{run_dir} holds a finished run ({run_dir / 'fit.json'}); pass ckpt_path=last to resume "
                          "it, overwrite=true to replace it, or another run_root / name")
    if (last := run_dir / "checkpoints" / "last.ckpt").is_file():
        raise ConfigError(f"{run_dir} holds an unfinished run ({last}); pass ckpt_path=last to resume it, "
                          "overwrite=true to start it again, or another run_root / name")


def fit(cfg: DictConfig) -> Path | None:
    """Train the stage's model; returns the best checkpoint's path. ``overwrite=true`` starts again
    even with ``ckpt_path=last`` (what ``make`` passes for a run whose inputs changed, and what a
    resume refused for other settings is told to pass). ``trainer.fast_dev_run`` (Lightning's
    smoke test: a few batches of training and validation) writes nothing in ``run_dir`` (no checkpoint,
    config or ``fit.json``, which would make it a finished run) and returns None."""
    run_dir = check_output_dir(cfg.run_dir, "run_dir")
    if cfg.trainer.get("fast_dev_run"):
        return _smoke_test(cfg, run_dir)
    if cfg.get("overwrite") and cfg.get("ckpt_path") == "last":  # replace what is there: a fresh start
        if (run_dir / "checkpoints" / "last.ckpt").is_file():
            pl.utilities.rank_zero_only(print)(f"overwrite=true: ckpt_path=last set aside; training starts at epoch 0 "
                                               f"and replaces the run in {run_dir}")
        cfg = cfg.copy()
        cfg.ckpt_path = None
    _refuse_finished(cfg, run_dir)
    _check_length(cfg)
    ckpt_path, resume = resume_checkpoint(cfg)
    own = ckpt_path is not None and Path(ckpt_path).resolve().parent == (run_dir / "checkpoints").resolve()
    moved = {}
    if own:  # this run continued: with the settings it started with, which its config.yaml keeps
        moved = check_same_settings(cfg, run_dir / "config.yaml")
    if cfg.get("ckpt_path") == "last" and ckpt_path is None:  # a fresh start, said (a mistyped run_root shows)
        pl.utilities.rank_zero_only(print)(f"ckpt_path=last: no {run_dir / 'checkpoints' / 'last.ckpt'} yet; "
                                           "training starts at epoch 0")
    dm, model = _data_and_model(cfg)
    teacher = str(cfg.teacher.checkpoint) if cfg.get("module") == "distill" and cfg.get("teacher") else None
    train_videos = subset_videos(dm, "train")
    # every listed video read once before the run folder is written or a DDP rank starts: a bad one is one line,
    # from this process (until 2026-12-08 each rank's setup said it, and config.yaml and failed.json were written)
    dm.check_videos(dm.subsets_of("fit"))
    if ckpt_path:
        check_resume_fits(model, ckpt_path)
        check_classes(ckpt_path, dm.class_names, data_named(cfg))
        check_moved(moved, ckpt_path, train_videos, teacher)
    ckpt_dir = run_dir / "checkpoints"
    # monitor null: best.ckpt is a copy of the final epoch's last.ckpt, made when fit ends (no selection
    # on a noisy validation set, whatever the validation schedule); else the best validated epoch.
    # last.ckpt: every epoch, written after best.ckpt (checkpoint callbacks keep their order)
    checkpoint = None if cfg.checkpoint.monitor is None else ModelCheckpoint(
        dirpath=str(ckpt_dir), filename="best", monitor=cfg.checkpoint.monitor, mode=cfg.checkpoint.mode,
        save_last=False, enable_version_counter=False)
    loggers = build_loggers(cfg, run_dir, resume)
    info = SaveStreamInfo(dm.class_names, cfg.get("stage"), dm.preprocess,
                          trained_on=(subset_named(cfg, dm, "train"), train_videos),
                          teacher_sha256=sha256_file(teacher) if teacher else None,
                          earlier=read_checkpoint(ckpt_path).get(TRAINED_ON_KEY) if ckpt_path and not own else None)
    last, failed = ckpt_dir / "last.ckpt", run_dir / FAILED
    watch = WatchRanks("fit", hint=lambda: f"; {resume_hint(cfg)}",  # a DDP rank that dies stops the job in one line
                       mark=lambda why: _mark_failed(trainer, failed, last, why))
    callbacks = [ValidateLastEpoch(), *([checkpoint] if checkpoint else []), SaveLastEveryEpoch(last),
                 info, watch, *([LearningRateMonitor("epoch")] if loggers else [])]
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    with ExitStack() as held:  # no other command writes this run, or replaces the cache it reads, meanwhile
        if trainer.is_global_zero:  # the other ranks start inside trainer.fit, as its children
            held.enter_context(hold_folder(run_dir, "run_dir"))
            _refuse_finished(cfg, run_dir)  # again, now that no fit beside it can finish it
            if trainer.world_size > 1:  # data.batch_size is each process's (Lightning's DistributedSampler)
                print(f"{trainer.world_size} processes (trainer.devices x trainer.num_nodes), each a batch of "
                      f"data.batch_size={dm.batch_size}: {trainer.world_size * dm.batch_size} videos a step (the "
                      "learning rate is not scaled with it)")
            if getattr(dm, "teacher_cache", None):
                held.enter_context(hold_folder(dm.teacher_cache, "cache.dir", shared=True))
        record = run_dir / "fit.json"
        if trainer.is_global_zero:  # the first writes, under the lock
            failed.unlink(missing_ok=True)
            if not own:  # a fresh start replaces the run there now: never its checkpoints under this run's record
                for old in (record, last, ckpt_dir / "best.ckpt"):  # (until 2026-12-08 they stayed until overwritten)
                    old.unlink(missing_ok=True)
            if not own or not (run_dir / "config.yaml").is_file():
                save_config(cfg, run_dir / "config.yaml")
            start_wandb(loggers, cfg)
            remember_wandb_run(loggers, run_dir)
        try:
            trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
            idle = resume is not None and trainer.global_step == resume[1] and not trainer.interrupted  # no step ran
            if idle and not record.is_file() and _stopped_short(trainer, cfg) is None:
                # killed after its final checkpoint, before its record (make resumes it): nothing left to train,
                # and the final epoch's score, which the record holds, is measured again from that checkpoint
                pl.utilities.rank_zero_only(print)(f"ckpt_path={cfg.get('ckpt_path')}: {ckpt_path} already holds every "
                                                   f"epoch of this run; validating it for its record ({record})")
                trainer.validate(model, datamodule=dm, verbose=False)
        except SystemExit:  # Lightning turns Ctrl-C into exit(1) after its shutdown
            if not trainer.interrupted:
                raise
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left it ignored
            raise KeyboardInterrupt from None
        except Exception as e:  # the folder says so: not a run in progress
            _mark_failed(trainer, failed, last, f"{type(e).__name__}: {e}")
            if isinstance(e, OutputError) and last.is_file():  # a full disk: the last finished epoch is kept
                raise OutputError(f"{e}; once there is room, {resume_hint(cfg)}") from None
            raise
        finally:
            finish_wandb(loggers)
        short = _stopped_short(trainer, cfg)
        if not last.is_file() and not trainer.interrupted:  # e.g. DDP with fewer training batches than ranks
            batches, world = trainer.num_training_batches, trainer.world_size
            batches = batches if batches != float("inf") else 0  # Lightning's "not run"
            why = (f"no training step ran: {batches} training batches per process ({world} process(es), "
                   f"batch_size {dm.batch_size}, an incomplete last batch dropped); use a smaller data.batch_size or "
                   "fewer devices")
            if cfg.trainer.get("max_time") and short is not None:
                why = (f"{short} ran out before the first epoch ended (step {trainer.global_step} of {batches} per "
                       "epoch), so no checkpoint was saved; give it more time")
            _mark_failed(trainer, failed, last, why)
            if not trainer.is_global_zero:  # every rank ran as many batches: rank 0 says it, once
                raise SystemExit(2)  # (until 2026-12-08 each rank did)
            raise ConfigError(f"{run_dir}: {why}")
        say = pl.utilities.rank_zero_only(print)
        if idle and record.is_file():
            # a finished run resumed (a requeued SLURM job runs ckpt_path=last again): no step ran, no epoch
            # validated, so rewriting its record would lose the final epoch's val_top1; it is kept as it is
            done = (f"already holds every epoch of this run (epoch {resume[0]}, step {resume[1]})" if short is None else
                    f"(epoch {resume[0]}, step {resume[1]}): Lightning's timer, carried on from it, is past {short} "
                    f"(raise it to train on)")
            say(f"ckpt_path={cfg.get('ckpt_path')}: {ckpt_path} {done}; nothing to train, {record} kept")
            return _recorded_best(record)
        if short is not None and not trainer.interrupted:
            say(f"stopped by {short} after {trainer.current_epoch} of {trainer.max_epochs} epochs (step "
                f"{trainer.global_step}); ckpt_path=last resumes it from the last finished epoch ({last})")
        best = ckpt_dir / "best.ckpt" if checkpoint is None else Path(checkpoint.best_model_path or last)
        if trainer.is_global_zero and not trainer.interrupted:  # the Makefile's target: written last
            if checkpoint is None:
                with atomic_path(best) as tmp:
                    shutil.copyfile(last, tmp)
            score = None if checkpoint is None else checkpoint.best_model_score
            write_json_atomic(run_dir / "fit.json", {"best_checkpoint": str(best), "monitor": cfg.checkpoint.monitor,
                                                     "best_score": None if score is None else float(score),
                                                     "epochs": trainer.current_epoch,
                                                     "processes": trainer.world_size,
                                                     "global_batch_size": trainer.world_size * dm.batch_size,
                                                     "max_epochs": trainer.max_epochs,
                                                     "stopped_by": short,  # None: the run's whole length
                                                     "val_top1": _metric(trainer, "val/top1"),  # the final epoch's
                                                     "skipped_videos": dict(dm.skipped),  # skip_bad_videos: read around
                                                     "weights_from": getattr(model, "weights_from", None),
                                                     "environment": environment()})
        return best


def _data_and_model(cfg: DictConfig) -> tuple[VideoDataModule, pl.LightningModule]:
    """The stage's datamodule and module, seeded; the student's cache checked against its config, or
    its teacher loaded (online). Weights that cannot be loaded stop here, before anything is written."""
    pl.seed_everything(cfg.seed, workers=True)
    online = cfg.get("module") == "distill" and online_teacher(cfg)
    if cfg.get("module") == "distill" and not online and filled(cfg.get("distill"), DistillConfig).spatial_weight:
        raise ConfigError("distill.spatial_weight > 0 needs distill.online_teacher=true (feature maps are not cached: "
                          "at ResNet-18's layer4, 10 views, ~75x the re-encoded videos of Kinetics-400)")
    dm = build_datamodule(cfg, **({"teacher_input": True, "teacher_cache": None} if online else {}))
    if cfg.get("module") == "distill" and cfg.get("teacher"):  # its targets' columns are the student's labels
        check_teacher(cfg, dm, cfg.teacher.checkpoint)
    if cfg.get("module") == "distill" and not online:
        check_cache(cfg, dm)
    model = build_module(cfg, dm)
    if online:
        teacher = load_module(cfg.teacher.checkpoint, "teacher.checkpoint", modality="flow")
        model.set_teacher(teacher)  # type: ignore[operator]
    return dm, model


def _smoke_test(cfg: DictConfig, run_dir: Path) -> None:
    """``trainer.fast_dev_run``: the stage's data, model (and teacher) built as :func:`fit` builds them
    and run for a few batches, with no checkpoint, logger or file written (Lightning's fast_dev_run keeps
    no checkpoint either; ours are written by our own callbacks, which are left out here)."""
    dm, model = _data_and_model(cfg)
    trainer = build_trainer(cfg, run_dir, [])
    trainer.fit(model, datamodule=dm)
    pl.utilities.rank_zero_only(print)(
        f"trainer.fast_dev_run={cfg.trainer.fast_dev_run}: {trainer.global_step} training step(s) and validation "
        f"ran; a smoke test keeps nothing, so {run_dir} gets no checkpoint and no fit.json")


def _stopped_short(trainer: pl.Trainer, cfg: DictConfig) -> str | None:
    """Why training ended before its length (``trainer.max_epochs``, or ``max_steps``), or None
    where it ran all of it: ``trainer.max_time`` (Lightning's timer, which a resumed run carries
    on), else a callback that stopped it."""
    epochs, steps = trainer.max_epochs, trainer.max_steps
    if (epochs is not None and 0 <= epochs <= trainer.current_epoch) or (steps not in (None, -1) and trainer.global_step >= steps):
        return None
    max_time = cfg.trainer.get("max_time")
    return f"trainer.max_time={max_time}" if max_time else "a callback (trainer.should_stop)"


FAILED = "failed.json"  # in a run folder whose fit failed before its first checkpoint


def _recorded_best(record: Path) -> Path:
    """The best checkpoint a finished run's ``fit.json`` names; one line where the record is broken
    (until 2026-12-08 json's traceback when such a run was resumed)."""
    what = ("this finished run's record (best_checkpoint, val_top1): remove it and run again with ckpt_path=last to "
            "write a new one, or overwrite=true to train again")
    best = read_json(record, what).get("best_checkpoint")
    if not isinstance(best, str):
        raise BrokenFileError(f"{record}: no best_checkpoint; it should hold {what}")
    return Path(best)


def _mark_failed(trainer: pl.Trainer, failed: Path, last: Path, why: str) -> None:
    """A fit that failed before its first checkpoint leaves its folder marked ``failed.json`` (the
    error, the epoch), so it never looks like a run in progress; the next fit there removes it."""
    if trainer.is_global_zero and not last.is_file():
        write_json_atomic(failed, {"error": why.splitlines()[0] if why else "", "epoch": trainer.current_epoch})


def _metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


__all__ = ["fit", "resume_hint", "FAILED"]  # resume_hint: the CLI's line after Ctrl-C
