"""``DataSettings``: the loader settings of ``data.*`` (``VideoDataModule``'s arguments besides the
preprocessing, which :class:`~.preprocess.Preprocess` declares). Each declared once, here, with its
default and documentation line (:func:`ip_tsn.settings.setting`)."""

from __future__ import annotations

from dataclasses import dataclass

from ip_tsn.settings import setting

from .datasets import SUBSETS


@dataclass(frozen=True)
class DataSettings:
    """Which videos, split and loaders one stream reads (``data`` / ``datamodule`` sections)."""

    dataset: str = setting("synthetic", "dataset layout: synthetic, ucf101, hmdb51, kinetics")
    root: str = setting("data/synthetic", "the dataset's folder (videos/, flow/, splits/)")
    split: int = setting(1, "official split number (1-3 for UCF101 / HMDB51; 1 elsewhere)")
    batch_size: int = setting(32, "training and validation batch size (videos) of each process: with DDP a step "
                                "takes it x trainer.devices x trainer.num_nodes (fit.json: global_batch_size)")
    num_workers: int = setting(4, "DataLoader workers per process")
    pin_memory: bool = setting(True, "pinned host memory for the batches")
    val_fraction: float = setting(0.1, "share of the training list held out for validation where a dataset has no val list")
    video_root: str | None = setting(None, "re-encoded copies of the videos (null: root/videos)")
    ext: str | None = setting(None, "file extension of the re-encoded copies (null: as listed)")
    flow_root: str | None = setting(None, "flow files (null: root/flow)")
    class_list: str | None = setting(None, "class file (null: the dataset's classInd.txt)")
    teacher_cache: str | None = setting(None, "teacher cache folder: training samples carry the teacher's targets")
    grid_stride: int = setting(1, "teacher cache and distilled samples: every n-th aligned P-frame")
    predict_subset: str = setting("trainval", "the videos `ip-tsn cache` runs the teacher over")
    test_batch_size: int = setting(1, "test batch size (a sample holds test_segments x test_crops frames)")
    predict_batch_size: int = setting(1, "predict batch size (one video's grid per item)")
    test_subset: str = setting("test", "the videos the test protocol runs on")
    seed: int = setting(0, "seed of the validation hold-out and the evaluation loaders")
    teacher_input: bool = setting(False, "training samples carry the teacher's flow input (online teacher)")
    cache_positions: str | None = setting(None, "the modality whose valid frames the cache's grid uses (null: its own)")
    skip_bad_videos: bool = setting(False, "leave out listed videos that cannot be read (one warning), and read around those that fail in a worker later (named once; fit.json skipped_videos; in a test left out, metrics.json skipped_videos), instead of stopping")

    def __post_init__(self) -> None:
        for name, low in (("split", 1), ("batch_size", 1), ("num_workers", 0), ("grid_stride", 1),
                          ("test_batch_size", 1), ("predict_batch_size", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("test_subset", "predict_subset"):  # taken as given until 2026-12-08 (not a subset: 0 videos)
            if getattr(self, name) not in SUBSETS:
                raise ValueError(f"{name} must be one of {', '.join(SUBSETS)}, got {getattr(self, name)!r}")
        if self.ext is not None and not str(self.ext).startswith("."):  # "mp4" found no video: "..._000mp4"
            raise ValueError(f"ext is a file extension with its dot (.{self.ext}), got {self.ext!r}")
