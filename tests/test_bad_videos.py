"""Bad videos in a dataset (issue 11, items 3 and 9): a zero-byte, a truncated, a phone's
portrait video (stored sideways with a display matrix, which every read refuses) and a download
cut short (its index, stored first, lists frames the file does not hold) are refused
before training in ONE message naming them (exit 2), or left out with
``data.skip_bad_videos=true``; a video that fails inside a DataLoader worker gives one line
naming it; a video smaller than the crop names the file; ``data_prep/check_videos.py`` lists them."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ip_tsn.cli import main
from ip_tsn.codec import CompressedVideo
from ip_tsn.config import load_config
from ip_tsn.stages.config_check import check_config
from ip_tsn.data.datamodule import VideoDataModule
from ip_tsn.data.datasets import VideoRecord
from ip_tsn.data.synthetic import TINY_CONFIG, generate_synthetic
from ip_tsn.data.video_dataset import BadVideosError, StreamDataset, WorkerVideoError
from videos import cut_short, encode_turned

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "logger.wandb=false",
        "data.num_workers=0", "data.crop_size=32", "data.test_segments=3", "data.batch_size=8",
        "trainer.limit_train_batches=2"]
EMPTY = "PoolWalkRight/v_PoolWalkRight_train_000.mp4"  # a training video, replaced by 0 bytes
CUT = "PoolWalkLeft/v_PoolWalkLeft_val_000.mp4"  # a validation video, truncated to a third
TURNED = "PoolJump/v_PoolJump_train_001.mp4"  # a training video, stored as phones store portrait video
SHORT = "PoolStand/v_PoolStand_train_000.mp4"  # a training video, cut short as an interrupted download


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (12 classes x 2 / 1 / 1 real videos) with one zero-byte training
    video, one truncated validation video and one training video whose display matrix turns it
    (its own pictures, stored with the matrix a phone held upright writes)."""
    data = tmp_path_factory.mktemp("bad") / "synthetic"
    generate_synthetic(data, **TINY_CONFIG, progress=False)
    (data / "videos" / EMPTY).write_bytes(b"")
    cut = data / "videos" / CUT
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 3])
    turned = data / "videos" / TURNED
    video = CompressedVideo(turned)
    frames = np.stack([video.load(i, "rgb") for i in range(video.num_frames)])
    video.close()
    encode_turned(turned, frames, -90)
    cut_short(data / "videos" / SHORT)
    return data


def _common(data: Path, runs: Path) -> list[str]:
    return [*FAST, f"data.root={data}", f"run_root={runs}"]


def test_a_broken_flow_file_is_named_with_how_to_make_it_again(tmp_path, capsys):
    """The flow teacher on a dataset whose one flow file was cut short (a disk fault, a copy
    interrupted): one line naming it, refused before training, saying to remove it and run
    extract_flow.py again, which makes the missing ones (until 2026-12-08 it said to re-encode the video)."""
    from ip_tsn.codec.flow import save_flow

    data = tmp_path / "synthetic"
    generate_synthetic(data, **TINY_CONFIG, progress=False)
    for video in (data / "videos").rglob("*.mp4"):
        flow = data / "flow" / video.relative_to(data / "videos").with_suffix(".npy")
        flow.parent.mkdir(parents=True, exist_ok=True)
        save_flow(flow, np.full((TINY_CONFIG["num_frames"] - 1, 64, 64, 2), 128, np.uint8))
    cut = data / "flow" / "PoolJump" / "v_PoolJump_train_000.npy"
    cut.write_bytes(cut.read_bytes()[:100])
    assert main(["fit", str(ROOT / "experiments/teacher.yaml"), *_common(data, tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"ip-tsn fit: error: {data / 'flow'}: 1 of 36 videos listed "
                                                         "for train/val cannot be read: PoolJump/v_PoolJump_train_000")
    assert "(unreadable flow file (truncated or not a .npy)" in err
    assert err.endswith("then remove them and run data_prep/extract_flow.py again (it makes the missing ones), or set "
                        "data.skip_bad_videos=true to leave them out")
    assert not (tmp_path / "runs" / "teacher" / "checkpoints").exists()


def test_fit_and_test_refuse_all_bad_videos_in_one_line(broken, tmp_path, capsys):
    common = _common(broken, tmp_path / "runs")
    assert main(["fit", str(ROOT / "experiments/istream.yaml"), *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ip-tsn fit: error: ")
    assert "4 of 36 videos listed for train/val cannot be read" in err and "Traceback" not in err
    reasons = {EMPTY: re.escape(f"{EMPTY} (empty file (0 bytes))"), CUT: re.escape(CUT),
               TURNED: re.escape(f"{TURNED} (its display matrix turns it 90 degrees clockwise (orientation metadata"),
               SHORT: re.escape(SHORT) + r" \(truncated: it holds 1?\d of the 24 frames its header lists \(an "
                                         r"interrupted download or copy\?\); fetch it again, or re-encode"}
    shown = [name for name in reasons if name in err]  # the first three in list order, "and 1 more"
    assert len(shown) == 3 and "; and 1 more" in err and all(re.search(reasons[name], err) for name in shown)
    assert "data_prep/check_videos.py" in err and "data.skip_bad_videos=true" in err
    assert not (tmp_path / "runs").exists()  # refused before anything is written (config.yaml and failed.json were)

    with pytest.warns(UserWarning, match=r"4 of 36 videos .* left out \(data.skip_bad_videos=true\)"):
        assert main(["fit", str(ROOT / "experiments/istream.yaml"), *common, "data.skip_bad_videos=true"]) == 0
    best = tmp_path / "runs" / "istream" / "checkpoints" / "best.ckpt"
    assert best.is_file()

    capsys.readouterr()
    assert main(["test", str(ROOT / "experiments/istream.yaml"), *common, "--subsets", "val"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ip-tsn test: error: ")
    assert "1 of 12 videos listed for val cannot be read" in err and CUT in err


def test_skip_bad_videos_is_a_known_key_defaulting_to_false():
    cfg = load_config(ROOT / "experiments/istream.yaml", ["data.skip_bad_videos=true"])
    check_config(cfg, ROOT / "experiments/istream.yaml", ["data.skip_bad_videos=true"])
    assert cfg.data.skip_bad_videos is True
    assert load_config(ROOT / "experiments/pstream.yaml").data.skip_bad_videos is False


def test_datamodule_checks_once_and_drops_the_bad_ones(broken):
    dm = VideoDataModule("synthetic", str(broken), modality="iframe", num_workers=0, pin_memory=False,
                         crop_size=32, scale_size=None, skip_bad_videos=True)
    with pytest.warns(UserWarning, match="4 of 36"):
        dm.setup("fit")  # the I-stream: the turned video found by decoding its first frame
    assert len(dm.datasets["train"]) == 21 and len(dm.datasets["val"]) == 11
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm.setup("fit")  # already checked: no second warning
    strict = VideoDataModule("synthetic", str(broken), modality="p", num_workers=0, pin_memory=False,
                             crop_size=32, scale_size=None)
    with pytest.raises(BadVideosError) as caught:
        strict.setup("fit")
    assert sorted(p for p, _ in caught.value.bad) == sorted([EMPTY, CUT, TURNED, SHORT])


def test_a_video_failing_in_a_worker_is_one_line_naming_it(broken, tmp_path, capsys):
    """A crop larger than the frames: found by the check, and, without it, in the worker."""
    common = _common(broken, tmp_path / "runs")
    assert main(["fit", str(ROOT / "experiments/istream.yaml"), *common, "data.crop_size=72",
                 "data.skip_bad_videos=true"]) == 2  # every video too small: none left
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "36 of 36 videos" in err and "smaller than the 72x72 crop" in err
    assert "no readable video left" in err

    video = broken / "videos" / "PoolWalkRight" / "v_PoolWalkRight_train_001.mp4"
    ds = StreamDataset([VideoRecord(video.relative_to(broken / "videos").as_posix(), 0, "x")],
                       broken / "videos", "iframe", 3, False, crop_size=72, scale_size=None)
    with pytest.raises(WorkerVideoError, match=r"v_PoolWalkRight_train_001.mp4: cannot crop 72x72 from frames of 64x64 \(width"):
        ds[0]
    from torch.utils.data import DataLoader

    with pytest.raises(WorkerVideoError) as caught:
        next(iter(DataLoader(ds, batch_size=1, num_workers=1)))
    assert caught.value.path == str(video) and caught.value.problem.startswith("cannot crop 72x72 from frames of 64x64 (width")
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_check_videos_script_lists_the_bad_ones(broken):
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "check_videos.py"), str(broken / "videos"),
                           "--workers", "1", "--no-progress"], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "48 total, 44 done" in out and "4 failed" in out and "Traceback" not in out
    assert any(SHORT in line and re.search(r"truncated: it holds 1?\d of the 24 frames", line)
               for line in out.splitlines() if "FAILED" in line), out
    assert any(EMPTY in line and "empty file" in line for line in out.splitlines() if "FAILED" in line), out
    assert any(CUT in line for line in out.splitlines() if "FAILED" in line), out
    assert any(TURNED in line and "display matrix turns it 90 degrees clockwise" in line
               for line in out.splitlines() if "FAILED" in line), out
