"""StreamDataset / GridDataset / VideoDataModule on a tiny synthetic-layout tree of real videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ip_tsn.codec import CompressedVideo, VideoError
from ip_tsn.codec.flow import save_flow
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.datasets import VideoRecord, load_split
from ip_tsn.data.video_dataset import GridDataset, StreamDataset

CLASSES = ["Disc Left", "Spin CW"]
CHANNELS = {"rgb": 3, "iframe": 3, "mv": 2, "residual": 3, "p": 5, "flow": 10}
SIZES = {"crop_size": 32, "scale_size": 40}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Synthetic layout: 2 classes x (train 3, val 1, test 1) real 30-frame mpeg4 / h264 videos
    (48x64, GOP 12) with (29, 48, 64, 2) uint8 flow files."""
    from conftest import encode_moving_video

    root = tmp_path_factory.mktemp("tree")
    (root / "splits").mkdir()
    (root / "splits" / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    rng = np.random.default_rng(0)
    for subset, n in (("train", 3), ("val", 1), ("test", 1)):
        lines = []
        for label, cls in enumerate(CLASSES):
            for j in range(n):
                name = f"{cls}/v_{subset}_{j}.mp4"
                encode_moving_video(root / "videos" / name, codec="h264" if j == 1 else "mpeg4", seed=j)
                save_flow(root / "flow" / name.replace(".mp4", ".npy"),
                          rng.integers(0, 256, (29, 48, 64, 2), dtype=np.uint8))
                lines.append(f"{name} {label + 1}")
        (root / "splits" / f"{subset}list01.txt").write_text("\n".join(lines) + "\n")
    return root


def _dm(tree: Path, modality: str, **kw) -> VideoDataModule:
    args = dict(dataset="synthetic", root=str(tree), modality=modality, num_segments=3, batch_size=2,
                num_workers=0, pin_memory=False, test_segments=4, test_crops=3, grid_stride=4, **SIZES)
    return VideoDataModule(**{**args, **kw})


def _check_batch(batch: dict, b: int, n: int, c: int, k: int) -> None:
    assert batch["input"].shape == (b, n, c, 32, 32) and batch["input"].dtype == torch.float32
    assert torch.isfinite(batch["input"]).all() and batch["input"].abs().sum() > 0
    assert batch["label"].shape == (b,) and batch["label"].dtype == torch.int64
    assert isinstance(batch["video_id"], list) and all(isinstance(v, str) for v in batch["video_id"])
    assert batch["frame_index"].shape == (b, k) and batch["frame_index"].dtype == torch.int64


@pytest.mark.parametrize("modality", list(CHANNELS))
def test_datamodule_batches_for_every_modality(tree, modality):
    dm = _dm(tree, modality)
    assert dm.num_classes == 2 and dm.class_names == CLASSES and dm.num_channels == CHANNELS[modality]
    dm.setup()
    c = CHANNELS[modality]
    _check_batch(next(iter(dm.train_dataloader())), 2, 3, c, 3)
    _check_batch(next(iter(dm.val_dataloader())), 2, 3, c, 3)
    _check_batch(next(iter(dm.test_dataloader())), 1, 4 * 3, c, 4)
    grid = next(iter(dm.predict_dataloader()))
    assert grid["input"].shape[2:] == (c, 32, 32) and grid["frame_index"].shape[1] == grid["input"].shape[1]


def test_segments_respect_each_modality(tree):
    records = load_split("synthetic", tree, 1, "train")
    types = CompressedVideo(tree / "videos" / records[0].path).frame_types
    assert types == "IPPPPPPPPPPP" * 2 + "IPPPPP"
    for modality, allowed in (("iframe", {0, 12, 24}), ("mv", set(range(30)) - {0, 12, 24}),
                              ("flow", set(range(25)))):
        ds = StreamDataset(records[:1], tree / "videos", modality, 5, True, flow_root=tree / "flow", **SIZES)
        seen = set()
        for _ in range(30):
            seen |= set(ds[0]["frame_index"].tolist())
        assert seen <= allowed and len(seen) > 1


def test_flip_false_keeps_the_direction_of_motion(tree):
    """Mirroring turns a rightward move into a leftward one: with flip=False (left/right classes)
    every training sample keeps the sign of the video's mean x motion; with flip=True some don't."""
    records = load_split("synthetic", tree, 1, "train")[:1]
    signs = {}
    for flip in (True, False):
        ds = StreamDataset(records, tree / "videos", "mv", 3, True, flip=flip, **SIZES)
        torch.manual_seed(0)
        signs[flip] = {int(torch.sign(ds[0]["input"][:, 0].mean())) for _ in range(16)}
    truth = int(torch.sign(StreamDataset(records, tree / "videos", "mv", 3, False, **SIZES)[0]["input"][:, 0].mean()))
    assert truth != 0 and signs[False] == {truth} and signs[True] == {truth, -truth}
    with pytest.raises(ValueError, match="mirrored"):
        _dm(tree, "mv", test_crops=10, flip=False)


def test_grid_dataset_positions(tree):
    records = load_split("synthetic", tree, 1, "val")
    expect = {("flow", 4): list(range(0, 25, 4)), ("iframe", 1): [0, 12, 24], ("iframe", 2): [0, 24],
              ("mv", 4): [i for i in range(30) if i % 12][::4]}  # every stride-th valid position
    for (modality, stride), positions in expect.items():
        item = GridDataset(records, tree / "videos", modality, stride, flow_root=tree / "flow", **SIZES)[1]
        assert item["frame_index"].tolist() == positions and item["video_id"] == records[1].path
        assert item["input"].shape == (len(positions), CHANNELS[modality], 32, 32)


def test_same_index_same_video_and_seeded_randomness(tree):
    records = load_split("synthetic", tree, 1, "train")
    ds = StreamDataset(records, tree / "videos", "p", 3, True, **SIZES)
    assert [ds[i]["video_id"] for i in range(len(ds))] == [r.path for r in records]
    torch.manual_seed(0)
    a = ds[2]
    torch.manual_seed(0)
    b = ds[2]
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["frame_index"], b["frame_index"])
    assert a["label"] == records[2].label


def test_two_workers_match_zero_workers(tree):
    loaders = {}
    for workers in (0, 2):
        dm = _dm(tree, "p", num_workers=workers)
        dm.setup("fit")
        loaders[workers] = dm
        assert dm.val_dataloader().persistent_workers == (workers > 0)
    v0, v2 = (list(loaders[w].val_dataloader()) for w in (0, 2))
    assert [b["video_id"] for b in v0] == [b["video_id"] for b in v2]
    assert all(torch.equal(x["input"], y["input"]) for x, y in zip(v0, v2))
    ids = [v for batch in loaders[2].train_dataloader() for v in batch["video_id"]]
    assert len(ids) == 6 and sorted(ids) == sorted(r.path for r in loaders[2].records("train"))


def test_teacher_cache_targets_reach_the_batches(tree, tmp_path):
    from ip_tsn.lit.cache_writer import ShardWriter, TeacherCacheWriter

    dm = _dm(tree, "flow", grid_stride=3)
    dm.setup("predict")
    shard = ShardWriter(tmp_path, 0, "float32")
    for item in dm.predict_dataloader():
        g = item["frame_index"].shape[1]
        logits = item["frame_index"][0, :, None].float().repeat(1, 2)  # teacher logit = grid position
        shard.add(item["video_id"][0], item["frame_index"][0], logits, torch.zeros(g, 4))
    shard.finalize()
    TeacherCacheWriter(tmp_path).write_manifest(1)
    student = _dm(tree, "p", teacher_cache=str(tmp_path))
    student.setup("fit")
    batch = next(iter(student.train_dataloader()))
    assert batch["teacher_logits"].shape == (2, 3, 2) and batch["teacher_features"].shape == (2, 3, 4)
    grid = torch.arange(0, 25, 3)  # flow stack starts 0 .. F - L = 24, every 3rd
    nearest = grid[(batch["frame_index"][..., None] - grid).abs().argmin(-1)]  # ties: the earlier
    assert torch.equal(batch["teacher_logits"][..., 0], nearest.float())


def test_decode_failures_name_the_file(tree, tmp_path):
    broken = tmp_path / "videos" / "Disc Left" / "broken.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes((tree / "videos" / "Disc Left" / "v_val_0.mp4").read_bytes()[:700])
    record = VideoRecord("Disc Left/broken.mp4", 0, "Disc Left")
    for modality in ("rgb", "p"):
        with pytest.raises(VideoError, match="broken.mp4"):
            StreamDataset([record], tmp_path / "videos", modality, 3, False, **SIZES)[0]
    with pytest.raises(VideoError, match=r"flow.*broken.npy"):
        StreamDataset([record], tmp_path / "videos", "flow", 3, False, flow_root=tmp_path / "flow", **SIZES)[0]
    save_flow(tmp_path / "flow" / "Disc Left" / "broken.npy", np.zeros((3, 8, 8, 2), np.uint8))
    with pytest.raises(VideoError, match="too short"):
        StreamDataset([record], tmp_path / "videos", "flow", 3, False, flow_root=tmp_path / "flow", **SIZES)[0]
