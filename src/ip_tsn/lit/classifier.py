"""StreamClassifier: one TSN stream (flow teacher, I-stream, plain P-stream) trained with CE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ip_tsn.lit.metrics import classification_metrics, mean_loss
from ip_tsn.lit.model_settings import ClassifierSettings, NetSettings, OptimSettings, plain, settings_from
from ip_tsn.lit.optim import build_optimizer, build_scheduler
from ip_tsn.evaluation.scores import ScoreTable
from ip_tsn.models import TSN

Batch = dict[str, Any]
_C = ClassifierSettings()  # model.* defaults (lit/model_settings.py), the only ones


def as_video_list(batch: Batch) -> list[dict[str, Any]]:
    """Split a grid batch into per-video items ``{"input": (G, C, H, W), "video_id", "frame_index":
    (G,), "label"}``. Accepts a collated batch (leading batch dim, B=1 for variable G), a batch
    whose ``input`` is a list of tensors, a list of items, or one item (``input`` 4-D)."""
    if isinstance(batch, (list, tuple)):  # collate_fn that keeps a list of items
        return [item for b in batch for item in as_video_list(b)]
    inputs = batch["input"]
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        return [batch]
    ids = batch["video_id"]
    labels = batch.get("label", [-1] * len(ids))
    return [
        {"input": x, "video_id": v, "frame_index": torch.as_tensor(f), "label": int(y)}
        for x, v, f, y in zip(inputs, ids, batch["frame_index"], labels)
    ]


class StreamClassifier(pl.LightningModule):
    """A TSN stream (``in_channels``: 3 rgb/iframe, 2 mv, 3 residual, 5 p, 10 flow) with CE loss.

    Batches: ``{"input": (B, K, C, H, W), "label": (B,), "video_id": list[str], "frame_index":
    (B, K)}``. Logs ``train/loss_{step,epoch}``,
    ``{val,test}/{loss,top1,top5,mean_class_acc}``.

    Test scores: ``test_step`` keeps softmax(consensus logits) per video; at the end of the test
    epoch every rank all-gathers them (``torch.distributed.all_gather_object``; duplicates from
    sampler padding collapse by video id), so :meth:`test_scores` returns the full table on every
    rank after ``trainer.test`` (save it from rank 0).

    ``predict_mode``: ``"video"`` (consensus per sample) or ``"frames"`` (every grid position,
    for the teacher cache; see :meth:`predict_frames`). It may be reassigned after loading.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        num_segments: int = 3,
        net: Mapping[str, Any] | None = None,
        optim: Mapping[str, Any] | None = None,
        label_smoothing: float = _C.label_smoothing,
        predict_mode: str = _C.predict_mode,
        frames_chunk: int = _C.frames_chunk,
        compile: str | None = _C.compile,
    ) -> None:
        """``net``: :class:`~ip_tsn.lit.model_settings.NetSettings` keys (``model.net``);
        ``optim``: :class:`~ip_tsn.lit.model_settings.OptimSettings` keys (``model.optim``); missing
        keys take their defaults, and the hyperparameters store both groups complete."""
        super().__init__()
        ClassifierSettings(label_smoothing, predict_mode, frames_chunk, compile)  # checks the values
        self.net_settings: NetSettings = settings_from(NetSettings, net, "model.net")
        self.optim_settings: OptimSettings = settings_from(OptimSettings, optim, "model.optim")
        self.save_hyperparameters()
        self.hparams.net = plain(self.net_settings)  # complete, plain values: weights_only loads
        self.hparams.optim = plain(self.optim_settings)
        n = self.net_settings
        self.model = TSN(num_classes, in_channels, n.arch, num_segments, n.dropout, n.pretrained, n.input_bn, n.stem,
                         n.weights, n.allow_random_init)
        if compile:  # the per-frame network, compiled where every path calls it; weights and state_dict unchanged
            self.model.forward_frames = torch.compile(self.model.forward_frames, backend=compile)  # type: ignore[method-assign]
        self.predict_mode = predict_mode
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")
        self.val_loss, self.test_loss = mean_loss(), mean_loss()  # states not in the state_dict
        self._test_rows: dict[str, tuple[np.ndarray, int]] = {}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, C, H, W) -> (logits (B, num_classes), features (B, D))."""
        return self.model(x)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the module kind, so loading never guesses it from hyperparameters, and what the
        network's training started from (``weights_from``: ``random``, the weights loaded, or
        ``random (... not loaded: ...)`` under ``model.net.allow_random_init``)."""
        checkpoint["ip_tsn_module"] = "classifier"
        checkpoint["ip_tsn_weights_from"] = self.weights_from

    @property
    def weights_from(self) -> str:
        """What the network started from before training (``TSN.backbone.weights_from``)."""
        return str(getattr(self.model.backbone, "weights_from", "random"))

    # -- training ---------------------------------------------------------------------------
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; ``"loss"`` is the total that is optimised."""
        logits, _ = self.model(batch["input"])
        ce = F.cross_entropy(logits, batch["label"], label_smoothing=self.hparams.label_smoothing)
        return {"loss": ce}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.training_losses(batch)
        size = len(batch["label"])
        for name, value in losses.items():  # the step's value (this rank's); the epoch's mean over every rank,
            # synced once at the epoch's end (until 2026-12-07 rank 0's alone, with Lightning's warning in every
            # DDP run; one key for both would sync every step: an all-reduce per term on the training's hot path)
            self.log(f"train/{name}_step", value, on_step=True, on_epoch=False, batch_size=size,
                     prog_bar=name == "loss")
            self.log(f"train/{name}_epoch", value, on_step=False, on_epoch=True, batch_size=size, sync_dist=True,
                     prog_bar=name == "loss")
        return losses["loss"]

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, batch: Batch, stage: str) -> torch.Tensor:
        logits, _ = self.model(batch["input"])
        loss = F.cross_entropy(logits, batch["label"])
        metrics, mean = (self.val_metrics, self.val_loss) if stage == "val" else (self.test_metrics, self.test_loss)
        metrics.update(logits, batch["label"])
        size = len(batch["label"])
        mean.update(loss.detach(), weight=size)  # the ranks' shares differ by up to one video (metrics.mean_loss)
        self.log(f"{stage}/loss", mean, on_epoch=True, batch_size=size)
        self.log_dict(metrics, on_epoch=True, batch_size=size, prog_bar=stage == "val")
        return logits

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_test_epoch_start(self) -> None:
        self._test_rows = {}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        probs = self._evaluate(batch, "test").softmax(dim=-1).float().cpu().numpy()
        for vid, p, y in zip(batch["video_id"], probs, batch["label"].tolist()):
            self._test_rows[vid] = (p, int(y))

    def on_test_epoch_end(self) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, self._test_rows)
            self._test_rows = {k: v for rows in gathered for k, v in rows.items()}

    def test_scores(self) -> ScoreTable:
        """Per-video softmax scores of the last ``trainer.test``, sorted by video id:
        ``ScoreTable(video_ids (N), scores (N, C) float32, labels (N,) int64)``."""
        ids = sorted(self._test_rows)
        scores = np.stack([self._test_rows[v][0] for v in ids]) if ids else np.zeros(
            (0, self.hparams.num_classes), np.float32)
        labels = np.array([self._test_rows[v][1] for v in ids], dtype=np.int64)
        return ScoreTable(ids, scores.astype(np.float32), labels)

    # -- prediction -------------------------------------------------------------------------
    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """``video`` mode: ``{"video_id": list[str], "frame_index": (B, K), "logits": (B, C),
        "features": (B, D), "label": (B,)}``; ``frames`` mode: see :meth:`predict_frames`."""
        if self.predict_mode == "frames":
            return self.predict_frames(batch)
        logits, features = self.model(batch["input"])
        return {"video_id": list(batch["video_id"]), "frame_index": batch["frame_index"],
                "logits": logits, "features": features, "label": batch.get("label")}

    def predict_frames(self, batch: Batch) -> dict[str, Any]:
        """Per-position outputs on grid batches (one video = ``(G, C, H, W)``, G varies).

        Returns lists with one entry per video: ``{"video_id": list[str], "frame_index":
        list[(G,)], "logits": list[(G, C)], "features": list[(G, D)], "label": list[int]}``.
        Frames run through ``forward_frames`` in chunks of ``frames_chunk``.
        """
        out: dict[str, list] = {k: [] for k in ("video_id", "frame_index", "logits",
                                                "features", "label")}
        chunk = self.hparams.frames_chunk
        for item in as_video_list(batch):
            parts = [self.model.forward_frames(x) for x in item["input"].split(chunk)]
            out["logits"].append(torch.cat([p[0] for p in parts]))
            out["features"].append(torch.cat([p[1] for p in parts]))
            for key in ("video_id", "frame_index", "label"):
                out[key].append(item[key])
        return out

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.optim_settings
        groups = self.model.parameter_groups(hp.backbone_lr_mult, hp.first_conv_lr_mult)
        covered = {id(p) for g in groups for p in g["params"]}
        extra = [p for p in self.parameters() if id(p) not in covered]  # e.g. a projection
        if extra:
            groups.append({"name": "extra_head", "params": extra, "lr_mult": 1.0})
        optimizer = build_optimizer(groups, hp.optimizer, hp.lr, hp.weight_decay, hp.momentum,
                                    hp.nesterov, hp.adam_eps)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and \
            self.trainer.max_epochs > 0 else 1
        per_epoch = total / epochs
        scheduler = build_scheduler(
            optimizer, total, schedule=hp.schedule,
            warmup_steps=int(round(hp.warmup_epochs * per_epoch)),
            milestones=[int(round(e * per_epoch)) for e in hp.lr_steps], gamma=hp.lr_gamma)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
