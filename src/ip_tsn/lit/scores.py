"""The Lightning callback that writes a stream's test scores (the file format:
:mod:`ip_tsn.evaluation.scores`)."""

from __future__ import annotations

import os

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from ip_tsn.evaluation.scores import save_scores
from ip_tsn.lit.callbacks import partial_pass


class SaveTestScores(Callback):
    """After ``trainer.test``, rank 0 saves ``pl_module.test_scores()`` (already gathered from
    every rank) to ``path`` with :func:`save_scores`, naming the ``checkpoint`` that scored them
    (:func:`ip_tsn.evaluation.scores.checkpoint_name`), its ``sha256`` and the test ``protocol``
    (:func:`ip_tsn.evaluation.scores.protocol_text`). A pass over part of the loader
    (:func:`~ip_tsn.lit.callbacks.partial_pass`: ``trainer.fast_dev_run``, ``limit_test_batches``)
    saves nothing and says so in :attr:`partial`, since a score file holds a whole subset."""

    def __init__(self, path: str | os.PathLike, checkpoint: str | None = None, sha256: str | None = None,
                 protocol: str | None = None) -> None:
        self.path, self.checkpoint, self.sha256, self.protocol = path, checkpoint, sha256, protocol
        self.partial: str | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.partial = partial_pass(trainer, "test")
        if trainer.is_global_zero and self.partial is None:
            table = pl_module.test_scores()._replace(checkpoint=self.checkpoint, checkpoint_sha256=self.sha256,
                                                     protocol=self.protocol)
            save_scores(self.path, table)
