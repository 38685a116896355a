"""data_prep/visualize.py and ip_tsn.codec.viz on a real encoded video."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from ip_tsn.codec.viz import motion_to_rgb, residual_to_rgb
from videos import encode, moving_frames

ROOT = Path(__file__).resolve().parents[1]


def test_motion_colours():
    right = np.zeros((4, 4, 2), np.float32)
    right[..., 0] = 3.0
    down = right[..., ::-1].copy()
    assert tuple(motion_to_rgb(right, 3.0)[0, 0]) == (255, 0, 0)  # hue 0: red
    r, g, b = motion_to_rgb(down, 3.0)[0, 0]
    assert g > 200 and b < 10  # hue 90 degrees: yellow-green
    assert motion_to_rgb(np.zeros((2, 2, 2), np.float32), 1.0).max() == 0  # no motion: black
    res = np.array([[[-128, 0, 200]]], np.int16)
    assert residual_to_rgb(res).tolist() == [[[0, 128, 255]]]


def test_visualize_cli_writes_png(tmp_path):
    video = encode(tmp_path / "v.mp4", moving_frames(14, 64, 96, dx=2), "mpeg4")
    out = tmp_path / "viz" / "frame.png"
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), str(video), "--frame", "5",
                           "--per-frame", "--out", str(out), "--flow", "dis"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    stats = dict(item.split("=") for item in proc.stdout.strip().split(": ", 1)[1].split(", "))
    assert stats["frame_type"] == "P" and stats["mean_abs_mv"] == "1.00"  # |dx| = 2 px, dy = 0
    assert abs(float(stats["mean_abs_flow"]) - 1.0) < 0.15  # flow agrees with the vectors
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 4 * image.shape[0]  # six panels side by side
    assert not list(out.parent.glob("*.tmp*")) and len(list(out.parent.iterdir())) == 1


def test_visualize_bad_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), str(bad), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "broken.mp4" in proc.stderr and "Traceback" not in proc.stderr


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), *args], capture_output=True,
                          text=True, timeout=120)


def test_per_frame_against_frame_0_is_not_black(tmp_path):
    """Frame 1's reference is frame 0: its flow is computed against frame 0, not against itself
    (which gave a black flow panel and mean_abs_flow=0.00)."""
    video = encode(tmp_path / "v.mp4", moving_frames(14, 64, 96, dx=2), "mpeg4")
    out = tmp_path / "frame1.png"
    proc = _run(str(video), "--frame", "1", "--per-frame", "--out", str(out), "--flow", "dis")
    assert proc.returncode == 0, proc.stderr
    stats = dict(item.split("=") for item in proc.stdout.strip().split(": ", 1)[1].split(", "))
    assert stats["frame_type"] == "P" and stats["mean_abs_mv"] == "1.00"
    assert abs(float(stats["mean_abs_flow"]) - 1.0) < 0.15  # the 2-pixel shift, as the vectors say
    image = cv2.imread(str(out))[..., ::-1].astype(np.int16)
    flow_panel = image[:, image.shape[1] * 5 // 7 : image.shape[1] * 6 // 7]  # the 6th of seven (the wheel last)
    black = (flow_panel.max(-1) < 16).mean()
    coloured = ((flow_panel.max(-1) - flow_panel.min(-1)) > 60).mean()
    assert black < 0.05 and coloured > 0.3, (black, coloured)  # a black panel: black ~0.56, coloured 0


def test_visualize_directory_and_all_intra_video_are_one_line_errors(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    proc = _run(str(folder), "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"visualize.py: error: {folder}: is a directory, not a video file"
    intra = encode(tmp_path / "intra.mp4", moving_frames(12, 64, 96, dx=2), "mpeg4", gop=1)
    proc = _run(str(intra), "--out", str(tmp_path / "y.png"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "intra.mp4" in proc.stderr and "no P- or B-frames" in proc.stderr and "short" not in proc.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_out_is_checked_before_the_work_and_never_replaced_unasked(tmp_path):
    """``--out``: a file in the way and a folder were tracebacks after the work, another suffix got
    PNG bytes, and a PNG there was replaced without a word (until 2026-12-08). The default name is the
    video's and the frame's, so two videos never share one."""
    video = encode(tmp_path / "v.mp4", moving_frames(14, 64, 96, dx=2), "mpeg4")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder.png").mkdir()
    afile = tmp_path / "afile"
    for out, why in [(afile / "x.png", f"--out={afile}: {afile} is a file, not a folder"),
                     (tmp_path / "x.jpg", f"--out {tmp_path / 'x.jpg'}: the picture is a PNG; give a name ending in "
                                          ".png"),
                     (tmp_path / "folder.png", f"--out {tmp_path / 'folder.png'}: a folder; give the PNG's file name")]:
        proc = _run(str(video), "--out", str(out))
        assert proc.returncode == 2 and proc.stderr.strip() == f"visualize.py: error: {why}", proc.stderr
    out = tmp_path / "new" / "v.png"
    assert _run(str(video), "--out", str(out)).returncode == 0
    first = out.read_bytes()
    proc = _run(str(video), "--out", str(out), "--frame", "3")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"visualize.py: error: --out {out}: already there; pass --overwrite to replace it, or another --out")
    assert out.read_bytes() == first
    assert _run(str(video), "--out", str(out), "--frame", "3", "--overwrite").returncode == 0
    assert out.read_bytes() != first
    proc = subprocess.run([sys.executable, str(ROOT / "data_prep" / "visualize.py"), str(video)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (tmp_path / "outputs" / "v_11.png").is_file(), proc.stderr


def test_no_flow_unless_asked_and_the_wheel_is_the_legend(tmp_path):
    """No flow panel by default (TV-L1 took 65 s on one 640x272 frame); the colour wheel is
    drawn in motion_to_rgb's own colours: a rightward vector red, a leftward one cyan."""
    import importlib.util

    video = encode(tmp_path / "v.mp4", moving_frames(14, 64, 96, dx=2), "mpeg4")
    proc = _run(str(video), "--frame", "5", "--out", str(tmp_path / "v.png"))
    assert proc.returncode == 0, proc.stderr
    stats = dict(item.split("=") for item in proc.stdout.strip().split(": ", 1)[1].split(", "))
    assert "mean_abs_flow" not in stats and stats["mean_abs_mv"] != "0.00"
    spec = importlib.util.spec_from_file_location("visualize", ROOT / "data_prep" / "visualize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    wheel = module.colour_wheel(97).astype(int)
    right, left, centre = wheel[48, 94], wheel[48, 2], wheel[48, 48]
    assert right[0] > 200 and right[1] < 40 and right[2] < 40  # red: hue 0, rightwards
    assert left[0] < 40 and left[1] > 200 and left[2] > 200  # cyan: hue 180, leftwards
    assert centre.max() < 10  # no motion: black
