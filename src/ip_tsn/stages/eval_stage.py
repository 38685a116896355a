"""``ip-tsn test``: a trained stage scored under the TSN test protocol, per subset.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ip_tsn.atomic import write_json_atomic
from ip_tsn.evaluation.class_report import write_class_report
from ip_tsn.lit.modules import load_module
from ip_tsn.lit.scores import SaveTestScores
from ip_tsn.stages.build import build_datamodule, build_trainer, expected_kind


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


__all__ = ["test"]
