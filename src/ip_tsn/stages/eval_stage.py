"""``ip-tsn test``: a trained stage scored under the TSN test protocol, per subset.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ip_tsn.atomic import check_output_dir, hold_folder, sha256_file, write_json_atomic
from ip_tsn.config import ConfigError
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.datasets import SUBSETS
from ip_tsn.evaluation.class_report import write_class_report
from ip_tsn.evaluation.fusion import evaluate
from ip_tsn.evaluation.scores import ScoresError, checkpoint_name, load_scores, protocol_difference, protocol_text
from ip_tsn.lit.checkpoint_info import check_classes, check_unseen, read_checkpoint
from ip_tsn.lit.modules import load_module
from ip_tsn.lit.rank_watch import WatchRanks
from ip_tsn.lit.scores import SaveTestScores
from ip_tsn.stages.build import build_datamodule, build_trainer, data_named, expected_kind, subset_named, \
    subset_videos


#: the data settings that change a checkpoint's test scores, recorded with them
PROTOCOL = ("test_segments", "test_crops", "crop_size", "scale_size", "decode_downscale", "accumulate", "flow_length")


def test(cfg: DictConfig, checkpoint: str | None = None, subsets: tuple[str, ...] = ("val", "test")) -> dict:
    """TSN test protocol on ``subsets`` (``data.test_segments`` x ``data.test_crops``: 1, 3 or 10):
    per-video scores ``scores_<subset>.npz`` (naming the checkpoint that made them and the protocol),
    ``metrics.json`` (per subset, with that checkpoint and protocol), ``per_class_<subset>.csv`` and
    ``confusion_<subset>.png`` in the run directory. Scores of another checkpoint, or of this one
    under another protocol (:data:`PROTOCOL`, recorded with them), already there are replaced only
    with ``overwrite=true``. A pass over part of a subset (``trainer.fast_dev_run``,
    ``trainer.limit_test_batches``) prints its numbers and writes nothing."""
    subsets = tuple(dict.fromkeys(subsets))  # each once
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown or not subsets:
        raise ConfigError(f"--subsets {','.join(subsets)}: {unknown[0] if unknown else ''!r} is not a subset; "
                          f"choose from {', '.join(SUBSETS)} (comma-separated)")
    run_dir = check_output_dir(cfg.run_dir, "run_dir")
    last = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint and not (run_dir / "checkpoints" / "best.ckpt").is_file() and last.is_file():
        raise ConfigError(f"{run_dir}: its training has not finished (no best.ckpt; {last.name} holds epoch "
                          f"{int(read_checkpoint(last).get('epoch', 0))}): resume it (ip-tsn fit ... ckpt_path=last), or "
                          f"test that epoch with --checkpoint {last}")
    checkpoint = checkpoint or str(run_dir / "checkpoints" / "best.ckpt")
    model = load_module(checkpoint, f"the {cfg.get('stage')} config", **expected_kind(cfg))
    name = checkpoint_name(checkpoint, run_dir)
    dms = {subset: build_datamodule(cfg, "test", test_subset=subset) for subset in subsets}
    check_classes(checkpoint, next(iter(dms.values())).class_names, data_named(cfg))
    for subset, dm in dms.items():  # a checkpoint of another split (or val carve) scored on what it trained on
        check_unseen(checkpoint, subset_videos(dm, subset), subset_named(cfg, dm, subset),
                     "its scores of them would measure memory, not recognition; test it on the data, split and "
                     "data.seed it trained with")
    protocol = protocol_text({k: getattr(next(iter(dms.values())).preprocess, k) for k in PROTOCOL})
    _check_scores_there(cfg, run_dir, subsets, name, protocol)
    sha256 = sha256_file(checkpoint)
    metrics = {}
    for dm in dms.values():  # every list and video of every subset checked before any is scored
        dm.check_videos(dm.subsets_of("test"))
    with ExitStack() as held:  # no other command writes this run meanwhile
        partial, counts = {}, {}
        watch = WatchRanks("test", trainer_calls=len(dms))  # every subset runs on the first one's ranks
        for subset, dm in dms.items():
            scores = run_dir / f"scores_{subset}.npz"
            saver = SaveTestScores(scores, name, sha256, protocol)
            trainer = build_trainer(cfg, run_dir, [saver, watch], loop="test")
            if trainer.is_global_zero and subset == subsets[0]:  # the other ranks start inside trainer.test
                held.enter_context(hold_folder(run_dir, "run_dir"))
                _check_scores_there(cfg, run_dir, subsets, name, protocol)  # again: a test beside it may have written
            (result,) = trainer.test(model, datamodule=dm, verbose=False)
            metrics[subset] = {k.split("/", 1)[1]: float(v) for k, v in result.items()}
            if saver.partial is not None:  # a smoke test: its numbers are printed, never kept as the subset's
                partial[subset] = saver.partial
            elif trainer.is_global_zero:
                table = model.test_scores()
                metrics[subset] = {**metrics[subset], **_scored_metrics(table.scores, table.labels, dm.class_names)}
                write_class_report(run_dir, subset, table.scores, table.labels, dm.class_names)
                counts[subset] = {"videos": len(table.video_ids), **_left_out(subset, dm, len(table.video_ids))}
        if partial:
            if trainer.is_global_zero:
                print(f"only part of a subset scored ({'; '.join(f'{s}: {why}' for s, why in partial.items())}), so "
                      f"nothing is written to {run_dir} (scores, metrics.json and reports are of whole subsets)")
            return metrics
        if trainer.is_global_zero:  # the subsets scored earlier stay, each naming its checkpoint
            written = {subset: {**values, **counts[subset], "checkpoint": name, "protocol": json.loads(protocol)}
                       for subset, values in metrics.items()}
            write_json_atomic(run_dir / "metrics.json", {**_earlier_metrics(run_dir / "metrics.json"), **written})
        return metrics


def _scored_metrics(scores, labels, class_names) -> dict[str, float]:
    """``top1``, ``top5``, ``mean_class_acc`` and ``loss`` (mean cross-entropy) of the score table,
    each video once: what ``metrics.json`` and the printed line say. What ``trainer.test`` logs is
    the same since the test loader's sampler repeats no video (2026-12-08), except under DDP with
    fewer videos than ranks, where Lightning's padded sampler stays (until 2026-12-07 those logs were
    printed: top-1 0.083 of 11 videos where the scores give 0.091, 2 processes). Its ``loss`` is from
    the logits in the network's precision, each video weighted once (``lit.metrics.mean_loss``)."""
    picked = np.take_along_axis(np.asarray(scores, np.float64), np.asarray(labels)[:, None], axis=1)[:, 0]
    loss = float(-np.log(np.maximum(picked, np.finfo(np.float32).tiny)).mean()) if len(picked) else 0.0
    return {**evaluate(scores, labels, class_names), "loss": loss}


def _check_scores_there(cfg: DictConfig, run_dir: Path, subsets: tuple[str, ...], name: str, protocol: str) -> None:
    """Without ``overwrite=true``, scores there of another checkpoint or protocol stop the test."""
    if not cfg.get("overwrite"):
        for subset in subsets:
            _check_same_scores(run_dir / f"scores_{subset}.npz", name, protocol)


def _left_out(subset: str, dm: VideoDataModule, scored: int) -> dict:
    """``data.skip_bad_videos``: the videos of ``subset`` that failed while read in a worker. The test
    protocol scores each video under its own id, so a stand-in read in a failed one's place adds no
    row and the failed one is missing: said in one line and recorded (``skipped_videos``)."""
    if not dm.skipped:
        return {}
    print(f"{subset}: {len(dm.skipped)} video(s) failed while read and are left out of the scores "
          f"(data.skip_bad_videos): {scored} of {len(dm.datasets['test'])} scored; metrics.json names them")
    return {"skipped_videos": dict(dm.skipped)}


def _check_same_scores(scores: Path, name: str, protocol: str) -> None:
    """One line when ``scores`` holds the scores of another checkpoint than ``name`` (a run's
    scores, its fusion and its ``model.json`` must name one checkpoint), or of this one under
    another test ``protocol`` (a result is not replaced by another without ``overwrite=true``)."""
    try:
        earlier = load_scores(scores) if scores.is_file() else None
    except ScoresError:
        return  # a broken file is written again
    if earlier is not None and earlier.checkpoint is not None and earlier.checkpoint != name:
        raise ConfigError(f"{scores}: holds the scores of {earlier.checkpoint}, not of {name}; pass overwrite=true to "
                          "replace them, or run_dir=<another folder> to keep both")
    if earlier is not None and earlier.protocol is not None and earlier.protocol != protocol:
        raise ConfigError(f"{scores}: holds the scores of {name} under another test protocol "
                          f"({protocol_difference(earlier.protocol, protocol)}); pass overwrite=true to replace them, "
                          "or run_dir=<another folder> to keep both")


def _earlier_metrics(path: Path) -> dict:
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return earlier if isinstance(earlier, dict) else {}


__all__ = ["test"]
