"""data_prep scripts end to end on real (tiny) videos: reencode, extract_flow, shared helpers."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest

from videos import decode_all, encode_cut, moving_frames

from ip_tsn.codec import CompressedVideo, VideoError
from ip_tsn.codec.flow import dequantize_flow, load_flow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_PREP = os.path.join(REPO, "data_prep")
sys.path.insert(0, DATA_PREP)
import _common  # noqa: E402


def translating_frames(n: int, h: int, w: int, dx: int, dy: int, seed: int = 0) -> list[np.ndarray]:
    """n (h, w, 3) uint8 RGB frames whose content moves by (dx, dy) pixels per frame."""
    return list(moving_frames(n, h, w, dx, dy, seed))


def encode(path, frames, codec="mpeg4", gop=12, bframes=0, audio=False):
    """Write RGB frames (and optionally a mono AAC track) with PyAV."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=25, options={"bframes": str(bframes)} if codec == "libx264" else {})
        st.height, st.width = frames[0].shape[:2]
        st.pix_fmt = "yuv420p"
        st.codec_context.gop_size = gop
        if codec != "libx264":
            st.codec_context.max_b_frames = bframes
        ast = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        for t, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = t
            out.mux(st.encode(frame))
        out.mux(st.encode(None))
        if ast is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp",
                                                 layout="mono")
            samples.sample_rate, samples.pts = 16000, 0
            out.mux(ast.encode(samples))
            out.mux(ast.encode(None))


def audio_only(path):
    with av.open(str(path), "w") as out:
        ast = out.add_stream("aac", rate=16000, layout="mono")
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp",
                                             layout="mono")
        samples.sample_rate, samples.pts = 16000, 0
        out.mux(ast.encode(samples))
        out.mux(ast.encode(None))


def junk(path, size=4000):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8).tobytes())


def run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(DATA_PREP, script), *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def probe(path):
    """(codec name, width, height, frame types as 'IPP...')."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        types = "".join(" IPB"[int(f.pict_type)] for f in c.decode(st))
        return st.codec_context.name, st.codec_context.width, st.codec_context.height, types


def temps(root):
    return glob.glob(os.path.join(root, "**", "*.tmp*"), recursive=True)


# ----------------------------------------------------------------------------------- helpers
def test_shard_disjoint_covering_and_deterministic():
    items = [f"c{i % 3}/v{i}.mp4" for i in range(23)]
    parts = [_common.shard(reversed(items), i, 4) for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert all(not set(a) & set(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert {len(p) for p in parts} == {5, 6}
    assert parts == [_common.shard(items, i, 4) for i in range(4)]  # input order does not matter


def test_parse_shard_and_slurm_default():
    assert _common.parse_shard("2/5") == (2, 5)
    for bad in ["5/5", "-1/3", "1/0", "a/b", "3"]:
        with pytest.raises(Exception, match="shard"):
            _common.parse_shard(bad)
    assert _common.parse_shard(None, environ={}) == (0, 1)
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "10", "SLURM_ARRAY_TASK_MIN": "1"}
    assert _common.parse_shard(None, environ=env) == (6, 10)
    assert _common.parse_shard(None, environ={"SLURM_ARRAY_TASK_ID": "0",
                                              "SLURM_ARRAY_TASK_COUNT": "4"}) == (0, 4)


def test_workers_must_be_a_count_of_processes():
    """``--workers 0`` or ``-1`` ran in-process without a word until 2026-12-08."""
    for script in ("extract_flow.py", "reencode.py", "check_videos.py"):
        proc = subprocess.run([sys.executable, os.path.join(DATA_PREP, script), "somewhere", "--workers", "0"],
                              capture_output=True, text=True)
        assert proc.returncode == 2, script
        assert proc.stderr.strip().splitlines()[-1] == (f"{script}: error: argument --workers: expected a positive "
                                                        "integer, got 0")


def test_atomic_output(tmp_path):
    final = str(tmp_path / "d" / "out.bin")
    os.makedirs(tmp_path / "d")
    open(final + ".tmp-123-dead", "w").close()  # left by a killed run
    with pytest.raises(RuntimeError):
        with _common.atomic_output(final) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path / "d") == []
    with _common.atomic_output(final) as tmp:
        open(tmp, "w").write("whole")
        assert not os.path.exists(final)
    assert open(final).read() == "whole" and os.listdir(tmp_path / "d") == ["out.bin"]


def _maybe_fail(x):
    if x % 3 == 0:
        raise ValueError(f"item {x} is bad")
    return "done" if x % 2 else "skipped"


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_collects_failures(workers, capsys):
    results = _common.parallel_map(_maybe_fail, range(10), workers=workers, progress=False)
    assert [r.item for r in results] == list(range(10))
    assert [r.item for r in results if not r.ok] == [0, 3, 6, 9]
    assert results[3].message == "ValueError: item 3 is bad"
    assert _common.summarize(results, "things") == 1
    out = capsys.readouterr().out
    assert "10 total, 3 done, 3 skipped" in out and "4 failed" in out and "FAILED 9: ValueError" in out
    assert _common.summarize([r for r in results if r.ok]) == 0


# ---------------------------------------------------------------------------------- reencode
@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A tree of inputs: two good videos (one with B-frames and audio), three bad ones."""
    src = tmp_path_factory.mktemp("src")
    encode(src / "ClassA" / "a.avi", translating_frames(24, 60, 80, 1, 1), gop=30)
    encode(src / "ClassB" / "b.mkv", translating_frames(24, 60, 80, -2, 0, seed=1), codec="libx264",
           bframes=2, audio=True)
    junk(src / "ClassB" / "corrupt.mp4")
    open(src / "empty.avi", "wb").close()
    audio_only(src / "ClassB" / "sound.mp4")
    return src


def test_reencode_tree_bad_inputs_and_resume(sources, tmp_path):
    out = tmp_path / "videos"
    code, log = run("reencode.py", sources, out, "--size", "64x48", "--workers", "2")
    assert code == 1, log
    assert "5 total, 2 done, 0 skipped (already there), 3 failed" in log
    for bad, why in [("corrupt.mp4", "not a readable video (corrupt or truncated)"), ("empty.avi", "empty"),
                     ("sound.mp4", "no video")]:
        assert any(bad in line and why in line for line in log.splitlines() if "FAILED" in line), log
    assert "Traceback" not in log and "note" not in log  # good inputs are not "damaged"
    outputs = sorted(os.path.relpath(p, out) for p in glob.glob(str(out / "**" / "*"), recursive=True)
                     if os.path.isfile(p) and p != str(out / "settings.json"))
    assert outputs == ["ClassA/a.mp4", "ClassB/b.mp4"]
    assert json.loads((out / "settings.json").read_text()) == {"codec": "mpeg4", "size": [64, 48], "gop": 12, "qscale": 2}
    assert probe(sources / "ClassB" / "b.mkv")[3].count("B") > 0  # the input had B-frames
    for name in outputs:
        codec, w, h, types = probe(out / name)
        assert (codec, w, h) == ("mpeg4", 64, 48)
        assert types == ("I" + "P" * 11) * 2  # 24 frames, GOP 12, no B-frames
        with av.open(str(out / name)) as c:
            assert not c.streams.audio
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in outputs}
    code, log = run("reencode.py", sources, "--output", out, "--size", "64x48", "--workers", "1")
    assert code == 1 and "2 skipped" in log and "0 done" in log
    assert {n: os.stat(out / n).st_mtime_ns for n in outputs} == mtimes
    code, log = run("reencode.py", sources, out, "--size", "32x24", "--gop", "6")  # another encoding: not into this tree
    assert code == 2 and log.strip().splitlines() == [
        f"reencode.py: error: {out}: holds re-encoded videos made with other settings (gop: 12 there, 6 asked; size: "
        f"[64, 48] there, [32, 24] asked); rerun with the recorded settings to resume, or remove {out} to start again "
        "with these"], log
    assert {n: os.stat(out / n).st_mtime_ns for n in outputs} == mtimes
    assert temps(out) == []
    (tmp_path / "afile").write_text("")  # an output folder under a file: one line (was a traceback from makedirs)
    code, log = run("reencode.py", sources, tmp_path / "afile" / "out")
    assert code == 2 and log.strip().splitlines() == [
        f"reencode.py: error: output folder={tmp_path / 'afile' / 'out'}: {tmp_path / 'afile'} is a file, not a folder"]
    for gop in ("0", "1"):  # every frame an I-frame, nothing for the P-stream: written without a word until 2026-12-08
        code, log = run("reencode.py", sources, tmp_path / "intra", "--gop", gop)
        assert code == 2 and log.strip().splitlines()[-1].startswith(
            f"reencode.py: error: argument --gop: --gop {gop}: a GOP holds its I-frame and at least one P-frame"), log
        assert not (tmp_path / "intra").exists()


def test_reencode_makes_again_a_copy_whose_source_was_replaced(tmp_path):
    """A source cut short (an interrupted download) gives a short copy, with a warning; fetched again
    whole, its copy is made again (it was skipped, keeping the short copy). A source only touched (a
    copied data set) keeps its copy."""
    from videos import encode as encode_package

    src = tmp_path / "src" / "C"
    os.makedirs(src)
    encode_package(src / "whole.avi", moving_frames(36, 48, 64))
    data = (src / "whole.avi").read_bytes()
    (src / "cut.avi").write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "videos"
    code, log = run("reencode.py", tmp_path / "src", out, "--size", "64x48", "--workers", "1")
    assert code == 0 and "2 total, 2 done" in log, log
    short = len(probe(out / "C" / "cut.mp4")[3])
    assert 2 < short < 36 and len(probe(out / "C" / "whole.mp4")[3]) == 36
    (src / "cut.avi").write_bytes(data)
    later = os.stat(out / "C" / "whole.mp4").st_mtime + 5
    for name in ("cut.avi", "whole.avi"):
        os.utime(src / name, (later, later))
    code, log = run("reencode.py", tmp_path / "src", out, "--size", "64x48", "--workers", "1")
    assert code == 0 and "2 total, 1 done, 1 skipped" in log, log
    assert len(probe(out / "C" / "cut.mp4")[3]) == 36


def test_reencode_list_shards_and_default_size(sources, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("ClassA/a.avi 1\nClassB/b.mkv 2\n\n")
    out = tmp_path / "out"
    os.makedirs(out / "ClassA")
    (out / "ClassA" / "a.mp4.tmp-99-dead").write_bytes(b"half")  # a killed run's leftover
    runs = []
    for i in range(2):
        code, log = run("reencode.py", listing, out, "--input-root", sources, "--shard", f"{i}/2",
                        "--workers", "1")
        assert code == 0, log
        runs.append(sorted(glob.glob(str(out / "**" / "*.mp4"), recursive=True)))
    first, both = set(runs[0]), set(runs[1])
    assert len(first) == 1 and len(both) == 2 and first < both  # disjoint shards, covering
    assert {os.path.relpath(p, out) for p in both} == {"ClassA/a.mp4", "ClassB/b.mp4"}
    codec, w, h, types = probe(out / "ClassA" / "a.mp4")
    assert (codec, w, h, len(types)) == ("mpeg4", 340, 256, 24)
    assert temps(out) == []


# ------------------------------------------------------------------------------ extract_flow
def test_extract_flow_dataset(tmp_path):
    root = tmp_path / "ds"
    encode(root / "videos" / "Walk" / "w1.mp4", translating_frames(24, 64, 64, 2, -1))
    encode(root / "videos" / "Walk" / "w2.mp4", translating_frames(13, 64, 64, -1, 0, seed=2))
    junk(root / "videos" / "Run" / "broken.mp4")
    code, log = run("extract_flow.py", root, "--method", "dis", "--workers", "2")
    assert code == 1, log
    assert "3 total, 2 done" in log and "1 failed" in log and "Traceback" not in log
    assert any("broken.mp4" in line for line in log.splitlines() if "FAILED" in line), log
    assert not (root / "flow" / "Run" / "broken.npy").exists()
    w1 = load_flow(root / "flow" / "Walk" / "w1.npy")
    assert w1.shape == (23, 64, 64, 2) and w1.dtype == np.uint8
    motion = dequantize_flow(w1[:, 8:-8, 8:-8])
    assert np.median(motion[..., 0]) == pytest.approx(2.0, abs=0.5)
    assert np.median(motion[..., 1]) == pytest.approx(-1.0, abs=0.5)
    assert load_flow(root / "flow" / "Walk" / "w2.npy").shape == (12, 64, 64, 2)
    settings = root / "flow" / "settings.json"
    assert json.loads(settings.read_text()) == {"flow": "dis", "bound": 20.0, "size": None, "videos": "videos"}
    mtime = os.stat(root / "flow" / "Walk" / "w1.npy").st_mtime_ns
    (root / "videos" / "Run" / "broken.mp4").unlink()
    for overwrite in ([], ["--overwrite"]):  # other settings never mix with the flow there, --overwrite or not
        code, log = run("extract_flow.py", root, "--workers", "1", "--size", "32x32", "--shard", "0/1", *overwrite)
        assert code == 2 and log.strip().splitlines() == [
            f"extract_flow.py: error: {root / 'flow'}: holds flow files made with other settings (flow: 'dis' there, "
            f"'tvl1' asked; size: None there, [32, 32] asked); rerun with the recorded settings to resume, or remove "
            f"{root / 'flow'} to start again with these"], log
    code, log = run("extract_flow.py", root, "--method", "dis", "--workers", "1", "--shard", "0/1")
    assert code == 0 and "2 skipped" in log, log  # the recorded settings resume
    assert os.stat(root / "flow" / "Walk" / "w1.npy").st_mtime_ns == mtime
    shutil.rmtree(root / "flow")
    code, log = run("extract_flow.py", root, "--workers", "1", "--size", "32x32")
    assert code == 0 and "2 done" in log, log
    mtime32 = os.stat(root / "flow" / "Walk" / "w1.npy").st_mtime_ns
    recorded = settings.read_text()
    settings.unlink()  # files with no record (an older version's): never taken as made with the settings asked
    code, log = run("extract_flow.py", root, "--workers", "1", "--size", "32x32")
    asked = '{"flow": "tvl1", "bound": 20.0, "size": [32, 32], "videos": "videos"}'
    assert code == 2 and log.strip().splitlines() == [
        f"extract_flow.py: error: {root / 'flow'}: holds flow files (2) and no settings.json saying how they were "
        f"made; if they were made with these settings, write {asked} to {settings} to resume, else pass "
        "--overwrite to remake them with these settings"], log
    assert not settings.exists() and os.stat(root / "flow" / "Walk" / "w1.npy").st_mtime_ns == mtime32
    settings.write_text(asked)  # as the line says: the run resumes
    code, log = run("extract_flow.py", root, "--workers", "1", "--size", "32x32")
    assert code == 0 and "2 skipped" in log and json.loads(settings.read_text()) == json.loads(recorded), log
    settings.unlink()
    code, log = run("extract_flow.py", root, "--workers", "1", "--size", "32x32", "--overwrite")
    assert code == 0 and "2 done" in log and json.loads(settings.read_text()) == json.loads(recorded), log
    tvl1 = load_flow(root / "flow" / "Walk" / "w1.npy")
    assert tvl1.shape == (23, 32, 32, 2)
    assert np.median(dequantize_flow(tvl1[:, 4:-4, 4:-4, 0])) == pytest.approx(1.0, abs=0.5)
    assert temps(root) == []


def test_reencode_audio_only_m4a_file_and_folder(tmp_path):
    """An AAC-only .m4a given as the input is a media file (not a list file); in a folder it is
    scanned and reported as failed, not skipped silently."""
    src = tmp_path / "src"
    os.makedirs(src / "ClassA")
    audio_only(src / "ClassA" / "talk.m4a")
    with av.open(str(src / "ClassA" / "talk.m4a")) as c:
        assert not c.streams.video and [s.codec_context.name for s in c.streams.audio] == ["aac"]
    encode(src / "ClassA" / "a.avi", translating_frames(12, 48, 64, 1, 0))
    code, log = run("reencode.py", src / "ClassA" / "talk.m4a", "--output", tmp_path / "one", "--workers", "1")
    assert code == 1 and "UnicodeDecodeError" not in log and "Traceback" not in log, log
    failed = [line for line in log.splitlines() if "FAILED" in line and "talk.m4a" in line]
    assert failed and all("no video stream (has audio streams only)" in line for line in failed), log
    assert "1 total, 0 done, 0 skipped (already there), 1 failed" in log
    code, log = run("reencode.py", src, tmp_path / "tree", "--size", "64x48", "--workers", "1")
    assert code == 1 and "2 total, 1 done, 0 skipped (already there), 1 failed" in log, log
    assert any("talk.m4a" in line and "no video stream" in line for line in log.splitlines() if "FAILED" in line)
    assert os.path.isfile(tmp_path / "tree" / "ClassA" / "a.mp4")


def test_reencode_is_the_fix_for_an_edit_list_cut(tmp_path):
    """A cut inside a GOP (edit list hiding the I-frame of shown frames) is refused by the reader,
    whose message names reencode.py; that gives the 25 frames a player shows, readable, noted."""
    cut = encode_cut(tmp_path / "cut.mp4", moving_frames(30, 48, 64), lead=5)
    with pytest.raises(VideoError, match="data_prep/reencode.py"):
        CompressedVideo(cut).num_frames
    code, log = run("reencode.py", cut, "--output", tmp_path / "out", "--size", "64x48", "--workers", "1")
    assert code == 0 and "note" in log and "done (5 frames its edit list hides left out, as a player does)" in log, log
    assert "warnings" not in log
    fixed = tmp_path / "out" / "cut.mp4"
    v = CompressedVideo(fixed)
    assert v.num_frames == 25 == len(decode_all(fixed)[0])
    assert v.load(7, "residual").shape == (48, 64, 3)


def test_reencode_is_the_fix_for_a_video_stored_turned(tmp_path):
    """A phone's portrait video (stored 64x48, its display matrix turning it 90 degrees clockwise) is
    refused by the reader, whose message names reencode.py; that writes what a player shows (48x64,
    the pictures turned), noted, and the result reads."""
    from videos import encode_turned

    stored = moving_frames(16, 48, 64)
    phone = encode_turned(tmp_path / "phone.mp4", stored, -90)
    with pytest.raises(VideoError, match="data_prep/reencode.py"):
        CompressedVideo(phone).load(3, "mv")
    code, log = run("reencode.py", phone, "--output", tmp_path / "out", "--size", "48x64", "--workers", "1")
    assert code == 0 and "done (its display matrix turns it 90 degrees clockwise: applied, as a player does)" in log, log
    fixed = CompressedVideo(tmp_path / "out" / "phone.mp4")
    assert (fixed.width, fixed.height, fixed.num_frames) == (48, 64, 16)
    decoded = decode_all(phone)[0][0].astype(int)  # the stored picture, as decoded
    shown = fixed.load(0, "rgb").astype(int)
    assert np.abs(shown - np.rot90(decoded, -1)).mean() < 12  # that picture turned clockwise, re-encoded (4.6)
    assert np.abs(shown - np.rot90(decoded, 1)).mean() > 40  # not the other way round (76)
    assert fixed.load(5, "residual").shape == (64, 48, 3)


def test_a_key_frame_cut_is_not_taken_for_a_truncated_file(tmp_path):
    """An edit list hiding a whole GOP: the container's sample count (36) includes it, its duration
    (24 frames) does not. Neither reencode nor extract_flow calls the 24 frames read damage."""
    import extract_flow

    cut = encode_cut(tmp_path / "cut.mp4", moving_frames(36, 48, 64), lead=12)
    with av.open(str(cut)) as c:
        assert c.streams.video[0].frames == 36
    assert extract_flow.truncation_note(str(cut), 24) is None
    assert extract_flow.truncation_note(str(cut), 20) == "truncated input: flow of the 20 frames read of the ~24 its container claims"
    code, log = run("reencode.py", cut, "--output", tmp_path / "out", "--size", "64x48", "--workers", "1")
    assert code == 0 and "1 done" in log and "warnings" not in log and "note" not in log, log


def test_extract_flow_notes_a_truncated_input(tmp_path):
    """A cut AVI (UCF101 / HMDB51's container) still gives the flow of the frames read, and one
    note line naming it and how many frames were read; whole videos get no note."""
    root = tmp_path / "ds"
    from videos import encode as encode_package

    os.makedirs(root / "videos" / "C")
    encode_package(root / "videos" / "C" / "whole.avi", moving_frames(36, 48, 64))
    data = (root / "videos" / "C" / "whole.avi").read_bytes()
    (root / "videos" / "C" / "cut.avi").write_bytes(data[: len(data) * 6 // 10])
    code, log = run("extract_flow.py", root, "--method", "dis", "--workers", "1", "--ext", ".avi", "--no-progress")
    assert code == 0 and "2 total, 2 done" in log, log
    notes = [line for line in log.splitlines() if "note" in line]
    assert len(notes) == 1 and "C/cut.avi" in notes[0], log
    n = len(load_flow(root / "flow" / "C" / "cut.npy")) + 1
    assert f"truncated input: flow of the {n} frames read of the ~36 its container claims" in notes[0]
    assert 2 < n < 36 and len(load_flow(root / "flow" / "C" / "whole.npy")) == 35
    # the cut video fetched again, whole: its flow is made again (it was skipped, and kept n - 1 flows);
    # a video only touched (a copied data set) keeps its flow
    (root / "videos" / "C" / "cut.avi").write_bytes(data)
    later = os.stat(root / "flow" / "C" / "whole.npy").st_mtime + 5
    for name in ("cut.avi", "whole.avi"):
        os.utime(root / "videos" / "C" / name, (later, later))
    code, log = run("extract_flow.py", root, "--method", "dis", "--workers", "1", "--ext", ".avi", "--no-progress")
    assert code == 0 and "2 total, 1 done, 1 skipped" in log, log
    assert len(load_flow(root / "flow" / "C" / "cut.npy")) == 35
