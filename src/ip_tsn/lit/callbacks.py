"""The Lightning callbacks and the checkpoint writer of a training run: the stream's facts stored in
every checkpoint (:class:`SaveStreamInfo`; read back by :mod:`ip_tsn.lit.checkpoint_info`), checkpoints
written atomically (:class:`AtomicCheckpointIO`, through :mod:`ip_tsn.atomic`), ``last.ckpt``
after every epoch (:class:`SaveLastEveryEpoch`); and whether a pass ran over only part of its data
(:func:`partial_pass`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, Checkpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ip_tsn.atomic import atomic_path, remove_stale_temps
from ip_tsn.data.preprocess import Preprocess
from ip_tsn.data.datasets import video_keys
from ip_tsn.lit.checkpoint_info import CLASS_NAMES_KEY, PREPROCESS_KEY, STAGE_KEY, TRAINED_ON_KEY


class SaveStreamInfo(Callback):
    """Store ``class_names`` (by 0-based label), the stage, the stream's ``preprocess`` (plain
    values) and ``trained_on`` (the data's name, the paths of its training videos: their
    :func:`~ip_tsn.data.datasets.video_keys`, 8 bytes a video, with those of the ``earlier`` record of
    another run's checkpoint it went on from; a student's teacher's SHA-256) in every checkpoint the
    trainer saves."""

    def __init__(self, class_names: Sequence[str], stage: str | None = None,
                 preprocess: Preprocess | None = None, trained_on: tuple[str, Sequence[str]] | None = None,
                 teacher_sha256: str | None = None, earlier: Mapping[str, Any] | None = None) -> None:
        self.class_names = [str(c) for c in class_names]
        self.stage = stage
        self.preprocess = preprocess
        self.trained_on = None
        if trained_on is not None:
            name, keys = trained_on[0], video_keys(trained_on[1])
            if earlier:  # trained on from another run's checkpoint: that one's videos too
                name, keys = f"{name}, after {earlier['data']}", np.union1d(keys, np.asarray(earlier["videos"]))
            self.trained_on = {"data": name, "teacher_sha256": teacher_sha256, "videos": torch.from_numpy(keys)}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CLASS_NAMES_KEY] = list(self.class_names)
        if self.stage:
            checkpoint[STAGE_KEY] = str(self.stage)
        if self.preprocess is not None:
            checkpoint[PREPROCESS_KEY] = self.preprocess.to_dict()
        if self.trained_on is not None:
            checkpoint[TRAINED_ON_KEY] = dict(self.trained_on)



class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer through a temporary file renamed over the target, so a kill
    mid-write leaves the previous checkpoint whole (``ip_tsn.atomic``), and the temporary file such
    a kill left is removed at the next save of that checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        remove_stale_temps(path)
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)



class SaveLastEveryEpoch(Checkpoint):
    """Rewrite ``path`` (``last.ckpt``) at the end of every training epoch, after the best-checkpoint
    callback (so its state is current), whatever the monitor. The epoch's training row is logged
    and the loggers flushed first, so the CSV log holds every epoch the checkpoint has, whenever
    the run is killed."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _log_train_epoch_now(trainer)
        _flush_loggers(trainer)
        trainer.save_checkpoint(self.path, weights_only=False)



def _log_train_epoch_now(trainer: pl.Trainer) -> None:
    """Hand the epoch's training metrics (``train/*_epoch``) to the loggers now. Lightning does it
    only after the epoch-end hooks, so a kill between this checkpoint and that row lost the row for
    good (the resumed run starts at the next epoch). Same call, same step as Lightning's; its own
    call then finds the results reset and logs nothing. The callback and progress-bar values are
    read first, which keeps them for later callbacks and the bar."""
    _ = trainer.callback_metrics, trainer.progress_bar_metrics
    loop = trainer.fit_loop.epoch_loop
    loop._batches_that_stepped -= 1  # as Lightning's fit loop does: the epoch row shares its last step
    try:
        trainer._logger_connector.update_train_epoch_metrics()
    finally:
        loop._batches_that_stepped += 1


def _flush_loggers(trainer: pl.Trainer) -> None:
    for logger in trainer.loggers:
        logger.save()


class ValidateLastEpoch(Callback):
    """Validation always runs at the end of fit: the final epoch validates whatever
    ``check_val_every_n_epoch`` says (``trainer.max_epochs=1`` with a schedule of every 10th epoch
    would otherwise never validate, and ``fit.json`` would have no score), and so does a run that
    ``trainer.max_steps`` ends mid-epoch. Earlier epochs keep the
    schedule; training is the same either way (the validation loader has its own seed)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and trainer.current_epoch == trainer.max_epochs - 1
        if last and trainer.check_val_every_n_epoch not in (None, 1):
            trainer.check_val_every_n_epoch = 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """A run that ``trainer.max_steps`` ends mid-epoch validates at that step: Lightning ends the
        epoch there without validating (until 2026-12-07 its ``fit.json`` had no score). Stopping
        the run now is what Lightning does next anyway, and makes it validate first."""
        steps = trainer.max_steps
        if steps is not None and steps > 0 and trainer.global_step >= steps:
            trainer.check_val_every_n_epoch = 1
            trainer.should_stop = True


def partial_pass(trainer: pl.Trainer, kind: str) -> str | None:
    """After ``trainer.test`` / ``predict`` / ``validate`` (``kind``: ``test``, ``predict``, ``val``):
    the Lightning setting that ran fewer batches than the loader holds (``trainer.fast_dev_run``, a
    smoke test; ``trainer.limit_<kind>_batches``) and how many ran, e.g. ``"trainer.fast_dev_run=True:
    1 of 12 batches"``; None when every batch ran. Results of a whole subset are not written from it."""
    loaders = getattr(trainer, f"{kind}_dataloaders")
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    whole = sum(len(loader) for loader in loaders if loader is not None)
    ran = sum(getattr(trainer, f"num_{kind}_batches") or [])
    if ran >= whole:
        return None
    setting = (f"trainer.fast_dev_run={trainer.fast_dev_run}" if trainer.fast_dev_run else
               f"trainer.limit_{kind}_batches={getattr(trainer, f'limit_{kind}_batches')}")
    return f"{setting}: {ran} of {whole} batches"
