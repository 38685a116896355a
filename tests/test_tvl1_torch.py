"""The torch TV-L1 (issue 23) against OpenCV's on real frames; batching; extract_flow's tvl1-torch path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from videos import sample_videos

from ip_tsn.codec import CompressedVideo
from ip_tsn.codec.flow import TVL1_PARAMS, TVL1_TINY_PARAMS, load_flow
from ip_tsn.data import tvl1_torch
from ip_tsn.data.tvl1_torch import tvl1_batch

REPO = Path(__file__).resolve().parents[1]


def _gray_pair(path: Path, i: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    video = CompressedVideo(path)
    try:
        return tuple(cv2.resize(cv2.cvtColor(video.load(j, "rgb"), cv2.COLOR_RGB2GRAY), size) for j in (i, i + 1))
    finally:
        video.close()


def test_parameters_are_opencvs():
    assert tvl1_torch.TVL1_PARAMS == TVL1_PARAMS


def test_agrees_with_opencv_on_real_frames():
    """Median end-point error <= 0.3 px where OpenCV's flow moves > 0.5 px (carphone at its own
    176x144 and bikes at 176x144, real H.264), with the full parameters and tvl1-tiny's."""
    videos = sample_videos()
    for name, i in (("carphone_pristine.mp4", 20), ("bikes.mp4", 5)):
        a, b = _gray_pair(videos[name], i, (176, 144))
        for params in (TVL1_PARAMS, TVL1_TINY_PARAMS):
            ref = cv2.optflow.DualTVL1OpticalFlow_create(**params).calc(a, b, None)
            got = tvl1_batch(torch.from_numpy(a)[None], torch.from_numpy(b)[None], params)[0].numpy()
            moving = np.linalg.norm(ref, axis=-1) > 0.5
            assert moving.sum() > 100, name
            epe = np.linalg.norm(got - ref, axis=-1)
            assert np.median(epe[moving]) <= 0.3, (name, np.median(epe[moving]))


def test_a_batch_gives_each_pairs_own_flow():
    """Pairs stop iterating on their own (per-pair convergence): batched == one at a time."""
    a, b = _gray_pair(sample_videos()["carphone_pristine.mp4"], 20, (48, 40))
    c, d = np.ascontiguousarray(a[::-1]), np.ascontiguousarray(a[::-1])  # a still pair: converges at once
    params = TVL1_TINY_PARAMS
    both = tvl1_batch(torch.from_numpy(np.stack([a, c])), torch.from_numpy(np.stack([b, d])), params)
    one = tvl1_batch(torch.from_numpy(a)[None], torch.from_numpy(b)[None], params)[0]
    still = tvl1_batch(torch.from_numpy(c)[None], torch.from_numpy(d)[None], params)[0]
    assert torch.allclose(both[0], one, atol=1e-5) and torch.allclose(both[1], still, atol=1e-5)
    assert both[1].abs().max() < 0.1 and one.abs().max() > 0.5


def test_extract_flow_tvl1_torch_writes_the_teacher_layout(tmp_path):
    """``--method tvl1-torch`` writes <root>/flow/<Class>/<v>.npy like ``tvl1`` does, values within
    a few quantisation levels of OpenCV's, and skips finished files on a rerun."""
    for name, frames in (("A/one.mp4", 8), ("B/two.mp4", 6)):
        path = tmp_path / "src" / "videos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        video = CompressedVideo(sample_videos()["carphone_pristine.mp4"])
        from videos import encode

        encode(path, np.stack([cv2.resize(video.load(i, "rgb"), (64, 48)) for i in range(frames)]))
        video.close()
    cmd = [sys.executable, str(REPO / "data_prep/extract_flow.py"), str(tmp_path / "src"), "--workers", "1",
           "--no-progress"]
    torch_run = subprocess.run(cmd + ["--method", "tvl1-torch", "--device", "cpu", "--batch", "5"],
                               capture_output=True, text=True)
    assert torch_run.returncode == 0, torch_run.stderr
    assert "2 total, 2 done" in torch_run.stdout
    ours = {n: np.array(load_flow(tmp_path / "src/flow" / n)) for n in ("A/one.npy", "B/two.npy")}
    assert ours["A/one.npy"].shape == (7, 48, 64, 2) and ours["B/two.npy"].shape == (5, 48, 64, 2)
    again = subprocess.run(cmd + ["--method", "tvl1-torch", "--device", "cpu"], capture_output=True, text=True)
    assert "2 skipped" in again.stdout
    cv_run = subprocess.run(cmd + ["--method", "tvl1"], capture_output=True, text=True)  # the same TV-L1: it resumes
    assert cv_run.returncode == 0 and "2 skipped" in cv_run.stdout, cv_run.stderr
    cv_run = subprocess.run(cmd + ["--method", "tvl1", "--overwrite"], capture_output=True, text=True)
    assert cv_run.returncode == 0, cv_run.stderr
    for n, q in ours.items():
        ref = np.array(load_flow(tmp_path / "src/flow" / n)).astype(int)
        assert np.median(np.abs(q.astype(int) - ref)) <= 1 and np.mean(np.abs(q.astype(int) - ref) <= 2) > 0.95
    # --params tvl1-tiny: the synthetic default's parameters (make demo's flow), against OpenCV's tvl1-tiny;
    # through torch.compile (--compile), as on a GPU. Another flow: never into the tvl1 folder (its settings.json)
    refused = subprocess.run(cmd + ["--method", "tvl1-torch", "--params", "tvl1-tiny", "--device", "cpu", "--overwrite"],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "flow: 'tvl1' there, 'tvl1-tiny' asked" in refused.stderr, refused.stderr
    shutil.rmtree(tmp_path / "src/flow")
    tiny = subprocess.run(cmd + ["--method", "tvl1-torch", "--params", "tvl1-tiny", "--device", "cpu", "--overwrite",
                                 "--compile"], capture_output=True, text=True)
    assert tiny.returncode == 0, tiny.stderr
    ours = {n: np.array(load_flow(tmp_path / "src/flow" / n)).astype(int) for n in ("A/one.npy", "B/two.npy")}
    assert subprocess.run(cmd + ["--method", "tvl1-tiny", "--overwrite"], capture_output=True).returncode == 0
    for n, q in ours.items():
        ref = np.array(load_flow(tmp_path / "src/flow" / n)).astype(int)
        assert np.median(np.abs(q - ref)) <= 1 and np.mean(np.abs(q - ref) <= 2) > 0.95
    wrong = subprocess.run(cmd + ["--method", "tvl1", "--params", "tvl1-tiny"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--params" in wrong.stderr.strip().splitlines()[-1]


def test_extract_flow_refuses_a_device_it_cannot_use(tmp_path):
    """One usage line, exit status 2, nothing written, for a device that is not there or not a device."""
    (tmp_path / "videos").mkdir()
    base = [sys.executable, str(REPO / "data_prep/extract_flow.py"), str(tmp_path), "--method", "tvl1-torch"]
    for device in (["--device", "gpu7"], [] if torch.cuda.is_available() else ["--device", "cuda"]):
        if not device:
            continue
        run = subprocess.run(base + device, capture_output=True, text=True)
        assert run.returncode == 2 and "--device" in run.stderr.strip().splitlines()[-1], run.stderr
        assert "Traceback" not in run.stderr and not (tmp_path / "flow").exists()
