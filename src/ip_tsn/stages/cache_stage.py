"""``ip-tsn cache``: the trained teacher run over the student's positions and views, written as the
teacher cache (format: :mod:`ip_tsn.data.teacher_cache`) with its target report
(``targets.json``); and the student's check that a cache is the one its config asks for.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
from pathlib import Path

from omegaconf import DictConfig

from ip_tsn.atomic import check_output_dir, hold_folder, read_json, sha256_file, write_json_atomic
from ip_tsn.config import ConfigError, to_container
from ip_tsn.data.cache_shards import finished_videos, prepare_folder
from ip_tsn.data.cache_size import size_report
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.teacher_cache import MANIFEST, TeacherCache
from ip_tsn.data.transforms import num_view_ids
from ip_tsn.evaluation.targets import target_stats
from ip_tsn.lit.cache_writer import TeacherCacheWriter
from ip_tsn.lit.checkpoint_info import check_classes, check_unseen, read_checkpoint
from ip_tsn.lit.modules import load_module
from ip_tsn.lit.rank_watch import WatchRanks
from ip_tsn.stages.build import build_datamodule, build_trainer, data_named, subset_named, subset_videos
from ip_tsn.stages.config_schema import CacheConfig, DistillConfig, filled


def resume_hint(cfg: DictConfig) -> str:
    """What to run after a cache run that stopped (a kill, a time limit, Ctrl-C, a dead DDP rank)."""
    again = "the same command without overwrite=true" if cfg.get("overwrite") else "the same command"
    return f"{again} resumes it, keeping the videos its finished shards hold (a shard every cache.chunk_videos videos)"


def _refuse_finished(cfg: DictConfig, out_dir: Path) -> None:
    """A finished cache (its ``manifest.json``) is replaced only with ``overwrite=true``."""
    if (out_dir / MANIFEST).is_file() and not cfg.get("overwrite"):
        raise ConfigError(f"{out_dir} holds a finished teacher cache ({out_dir / MANIFEST}); pass overwrite=true to "
                          "replace it, or another cache.dir")


def cache(cfg: DictConfig) -> Path | None:
    """Run the trained teacher over every train/val video, at the student's positions (P-frames
    at which a flow stack ends, every ``grid_stride``-th) and in every view of the training view
    set; write the teacher cache (format: :mod:`ip_tsn.data.teacher_cache`). A finished cache
    (its ``manifest.json``) is replaced only with ``overwrite=true``; its manifest is removed once the
    data and the teacher have loaded, so a run that stops halfway leaves an unfinished cache, never an
    old manifest over new shards. An unfinished cache is resumed: the videos its finished shards
    hold (same teacher, data, positions, views, storage) are not computed again. A pass over part of
    the videos (``trainer.fast_dev_run``, ``limit_predict_batches``) writes shards and no manifest,
    and returns None."""
    settings = filled(cfg.cache, CacheConfig)
    out_dir = check_output_dir(settings.dir, "cache.dir")
    manifest = out_dir / MANIFEST
    _refuse_finished(cfg, out_dir)
    teacher_ckpt = cfg.teacher.checkpoint
    dm = build_datamodule(cfg, "predict", grid_stride=settings.grid_stride, predict_subset=settings.subset,
                          cache_positions=settings.positions)
    model = load_module(teacher_ckpt, "teacher.checkpoint", modality="flow")
    check_teacher(cfg, dm, teacher_ckpt)
    dm.check_videos(dm.subsets_of("predict"))  # before a DDP rank starts: one line (one per rank until 2026-12-08)
    model.predict_mode = "frames"  # type: ignore[assignment]
    resume = not cfg.get("overwrite")
    writer = TeacherCacheWriter(out_dir, teacher_checkpoint=teacher_ckpt,
                                dataset={**_dataset_key(cfg, dm, settings.subset), "subset": settings.subset},
                                grid_stride=int(settings.grid_stride), views=_views_key(dm),
                                flow_length=int(dm.preprocess.flow_length), config=to_container(cfg),
                                dtype=settings.dtype, features=bool(settings.features), resume=resume,
                                chunk_videos=int(settings.chunk_videos))
    # every rank reads this before any rank writes (rank 0 starts the others inside predict, and the
    # writers start after a barrier), so every rank's dataset leaves out the same videos
    done = finished_videos(out_dir, writer.key) if resume else set()
    listed = {r.path for subset in dm.subsets_of("predict") for r in dm.records(subset)}
    dm.skip_videos = done & listed
    trainer = build_trainer(cfg, out_dir, [writer, WatchRanks("cache", hint=lambda: f"; {resume_hint(cfg)}")],
                            loop="predict")
    with ExitStack() as held:  # no other cache command writes this folder, and no student reads it, meanwhile
        if trainer.is_global_zero:  # the other ranks start inside trainer.predict, as its children
            held.enter_context(hold_folder(out_dir, "cache.dir"))
            _refuse_finished(cfg, out_dir)  # again, now that no cache beside it can finish it
        if dm.skip_videos and trainer.is_global_zero:
            print(f"teacher cache: resuming {out_dir}: {len(dm.skip_videos)} of {len(listed)} videos already "
                  "cached by an unfinished run (same teacher, data, views); computing the rest")
        # overwrite: the old manifest goes only once data and teacher have loaded; every DDP rank does this
        # (rank 0 starts the others inside predict, before anything is written)
        manifest.unlink(missing_ok=True)
        trainer.predict(model, datamodule=dm, return_predictions=False)
        if writer.partial is not None:
            if trainer.is_global_zero:
                print(f"teacher cache: only part of the videos ran ({writer.partial}), so {out_dir} gets no manifest: "
                      "its shards stay, and the same command without that setting finishes the cache from them")
            return None
        if trainer.is_global_zero and not manifest.is_file():  # nothing left to compute: predict ran no step
            prepare_folder(out_dir, writer.key, resume)  # what the writer's start would have cleared
            writer.write_manifest()
        if trainer.is_global_zero:
            print(size_report(TeacherCache(out_dir).manifest))
            report = write_target_report(cfg, dm, out_dir)
            for subset, st in report.items():
                idle = (f", idle rows {st['idle_entropy']:.2f} nats ({st['idle_entropy_ratio']:.2f} ln C)"
                        if "idle_entropy" in st else "")
                noact = (f", {st['no_active_pct']:.1f}% of training draws with no active segment"
                         if "no_active_pct" in st else "")
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
    what = "the synthetic videos' action windows (make_synthetic.py)"
    windows = read_json(actions, what) if actions.is_file() else None
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


def check_teacher(cfg: DictConfig, dm: VideoDataModule, teacher: str | os.PathLike) -> None:
    """The teacher's score columns are the student's labels (:func:`check_classes`), and it never
    trained on a video of the student's test subset, whose label the student would learn from its
    targets (a teacher of another split: UCF101's split 1 trains on most of split 2's test videos)."""
    read_checkpoint(teacher, "teacher.checkpoint", modality="flow")  # one that is not there: the setting named
    check_classes(teacher, dm.class_names, data_named(cfg))
    check_unseen(teacher, subset_videos(dm, "test"), subset_named(cfg, dm, "test"),
                 "the student would learn their labels from its targets and be scored on memory; use a teacher "
                 "trained on this split")


def check_cache(cfg: DictConfig, dm: VideoDataModule) -> None:
    """The student refuses a cache from another teacher checkpoint, dataset, view set, flow window
    or grid, and a cache whose files do not match their checksums."""
    cache = TeacherCache(dm.teacher_cache)
    expected = {"teacher_sha256": sha256_file(cfg.teacher.checkpoint)} if cfg.get("teacher") else {}
    held = cache.manifest.get("dataset") or {}
    expected["dataset"] = (_dataset_key(cfg, dm, held.get("subset", "trainval")) if "videos" in held else
                           {"name": cfg.data.dataset, "root": os.path.realpath(cfg.data.root),  # written before
                            "split": int(cfg.data.split)})  # 2026-12-07: its data set named by where it was
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


def _dataset_key(cfg: DictConfig, dm: VideoDataModule, subset: str) -> dict:
    """The data set a cache holds: its name, split and the cached subset's videos (their paths and
    sizes, in one SHA-256). A copy of it elsewhere (a cluster's node-local scratch, another machine)
    is the same data set; another draw, another re-encoding or other lists are not. Until 2026-12-07
    it was the root's real path, so the cache of a copied data set was refused as stale."""
    paths = sorted(subset_videos(dm, subset))
    text = "\n".join(f"{p}\t{(Path(dm.video_root) / p).stat().st_size}" for p in paths)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return {"name": cfg.data.dataset, "split": int(cfg.data.split),
            "videos": f"{len(paths)} videos of {subset} (paths and sizes: sha256 {digest})"}


__all__ = ["cache", "check_cache", "check_teacher", "write_target_report", "TARGETS_FILE"]
