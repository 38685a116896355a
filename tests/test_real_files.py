"""Real files FFmpeg plays, read in FFmpeg's decoder order (issue 11, item 8), and one-line errors
for what cannot be read (item 9).

- DivX/XviD AVIs with packed B-frames: each P-VOP joined with the following B-VOP in one chunk, an
  N-VOP placeholder after the B-VOPs, the DivX user data that says so; built here from a PyAV
  mpeg4 AVI (the inverse of FFmpeg's ``mpeg4_unpack_bframes``), and the real trailer of Debian's
  ``opencv-doc`` (``Megamind.avi``, XviD, 720x528) when it is installed.
- DivX 3 (``msmpeg4``) and ``msmpeg4v2`` AVIs, whose vectors FFmpeg exports: encoded here, and the
  street footage of ``opencv-doc`` (``vtest.avi``, 768x576).
- Timestamps that order nothing: an HEVC (and an MPEG-4) mkv whose packets all carry 0, raw
  elementary streams (``.m4v``, ``.h264``) whose timestamps a parser invents.

"Right" is always what plain PyAV decoding gives: the i-th decoded frame and its picture type.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ip_tsn.codec import CompressedVideo, VideoError, warp
from ip_tsn.codec.encode import encode_video
from videos import decode_all, encode, encode_cut, moving_frames, own_prediction

SHIFT = 2  # pixels per frame, to the right
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc
VOP = b"\x00\x00\x01\xb6"
DIVX_PACKED = b"\x00\x00\x01\xb2DivX503b1393p"  # user data DivX 5 and XviD write into packed streams


# ----------------------------------------------------------------------------------- helpers
def vop_types(data: bytes) -> str:
    """Coding type of every VOP in an MPEG-4 packet (I, P, B, S)."""
    out, at = [], data.find(VOP)
    while at >= 0:
        out.append("IPBS"[data[at + 4] >> 6])
        at = data.find(VOP, at + 4)
    return "".join(out)


def n_vop(anchor: bytes, time_bits: int) -> bytes:
    """A not-coded P-VOP ("N-VOP"), with the timing of the VOP that starts ``anchor``: its header
    up to ``vop_coded`` (coding type set to P), ``vop_coded = 0``, then MPEG-4 stuffing."""
    at = anchor.find(VOP)
    bits = "".join(f"{b:08b}" for b in anchor[at + 4 : at + 20])
    end = bits.index("0", 2) + 1  # modulo_time_base: ones, then a zero
    end += 1 + time_bits + 1  # marker, vop_time_increment, marker
    header = "01" + bits[2:end] + "0"  # P-VOP ... vop_coded = 0
    header += "0" + "1" * ((-len(header) - 1) % 8)  # stuffing to the byte boundary
    return VOP + bytes(int(header[k : k + 8], 2) for k in range(0, len(header), 8))


def pack_b_frames(src: Path, dst: Path) -> Path:
    """Rewrite an mpeg4 AVI (B-frames, one VOP per chunk) as DivX/XviD "packed B-frames": each
    I/P-VOP followed by B-VOPs in decode order shares its chunk with the first of them, an N-VOP
    follows the last one, and the first chunk carries the DivX user data ending in 'p'. Chunk k
    then holds what a one-in-one-out decoder shows at time k, and AVI timestamps (chunk numbers)
    are no longer the display order of the VOPs."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        time_bits = max((round(float(stream.average_rate)) - 1).bit_length(), 1)  # resolution = fps
        packets = [(bytes(p), bool(p.is_keyframe)) for p in inp.demux(stream) if p.size]
        types = [vop_types(d)[0] for d, _ in packets]
        chunks, k = [], 0
        while k < len(packets):
            data, key = packets[k]
            if types[k] != "B" and k + 1 < len(packets) and types[k + 1] == "B":
                chunks.append((data + packets[k + 1][0], key))
                k += 2
                while k < len(packets) and types[k] == "B":
                    chunks.append(packets[k])
                    k += 1
                chunks.append((n_vop(data, time_bits), False))
            else:
                chunks.append((data, key))
                k += 1
        first = chunks[0][0]
        at = first.find(VOP)
        chunks[0] = (first[:at] + DIVX_PACKED + first[at:], True)
        with av.open(str(dst), "w", format="avi") as out:
            ostream = out.add_stream_from_template(stream)
            for n, (data, key) in enumerate(chunks):
                packet = av.Packet(data)
                packet.pts = packet.dts = n
                packet.time_base = ostream.time_base
                packet.is_keyframe = key
                packet.stream = ostream
                out.mux(packet)
    return dst


def zero_timestamps(src: Path, dst: Path) -> Path:
    """Remux ``src`` into an mkv whose packets all carry pts = dts = 0."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.size:
                packet.pts = packet.dts = 0
                packet.stream = ostream
                out.mux(packet)
    return dst


def decode_some(path: Path, wanted: set[int], limit: int | None = None) -> tuple[str, dict[int, np.ndarray], int]:
    """Plain PyAV decoding: picture types of every frame (or the first ``limit``), RGB of ``wanted``
    frames only, and how many frames were decoded."""
    types, frames, n = [], {}, 0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            types.append("?IPB"[int(frame.pict_type)] if int(frame.pict_type) < 4 else "P")
            if n in wanted:
                frames[n] = frame.to_ndarray(format="rgb24")
            n += 1
            if limit is not None and n >= limit:
                break
    return "".join(types), frames, n


def scrambled(n: int) -> list[int]:
    """Every frame index once, in an order that seeks back and forth (last GOP first)."""
    return list(np.random.default_rng(0).permutation(n))


def assert_matches_decoder(path: Path, n: int = 30) -> tuple[CompressedVideo, list[np.ndarray], str]:
    """Our frame count, picture types and ``load(i, "rgb")`` (asked in a scrambled order) equal
    plain PyAV decoding of ``path``; returns the video, the decoded frames and their types."""
    frames, types = decode_all(path)
    v = CompressedVideo(path)
    assert v.num_frames == len(frames) == n and v.frame_types == types
    for i in scrambled(n):
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i], err_msg=str(i))
    return v, frames, types


class _Pictures:
    """The reader's decoded frames by display index (``video.load(j, "rgb")``)."""

    def __init__(self, video: CompressedVideo):
        self.video = video

    def __getitem__(self, j: int) -> np.ndarray:
        return self.video.load(j, "rgb")


def assert_reconstructs(v: CompressedVideo, frames: dict[int, np.ndarray], indices) -> None:
    """``warp(reference, mv) + residual`` is the decoded frame, accumulated and per frame (each
    pixel from the picture it points into, ``own_sources``)."""
    for i in indices:
        for acc in (True, False):
            mv, res = v.load(i, "mv", acc), v.load(i, "residual", acc)
            pred = warp(v.load(i, "iframe"), mv) if acc else own_prediction(v, i, mv, _Pictures(v))
            np.testing.assert_array_equal(pred.astype(np.int16) + res, frames[i], err_msg=f"{i} {acc}")


def assert_recovers_shift(v: CompressedVideo, frames_checked: range) -> None:
    """Median motion of the P-frames on the right half (left: content entering, intra) is the true
    shift, per frame and accumulated to the I-frame. (B-frames are left out: FFmpeg exports no
    MPEG-4 B-frame vectors, the reader derives them as direct mode does, an estimate; the exact
    reconstruction above covers them, test_codec their shift on a translation.)"""
    checked = 0
    for i in frames_checked:
        if v.frame_types[i] != "P":
            continue
        acc = v.load(i, "mv", accumulate=True)[:, 48:]
        assert np.median(acc[..., 0]) == pytest.approx(-SHIFT * (i - v.gop_of(i)), abs=0.5), (i, v.frame_types)
        assert np.median(acc[..., 1]) == pytest.approx(0, abs=0.5)
        own = v.load(i, "mv", accumulate=False)[:, 48:]
        assert np.median(own[..., 0]) == pytest.approx(-SHIFT * (i - v.index.reference_of(i)), abs=0.5)
        checked += 1
    assert checked >= 4


@pytest.fixture(scope="module")
def frames30():
    return moving_frames(30, 64, 96, dx=SHIFT)


# ------------------------------------------------------------------------ packed B-frames
@pytest.fixture(scope="module", params=[1, 2], ids=["1b", "2b"])
def packed(request, tmp_path_factory, frames30):
    root = tmp_path_factory.mktemp(f"packed{request.param}")
    plain = encode_video(frames30, root / "plain.avi", codec="mpeg4", gop_size=12, max_b_frames=request.param,
                         qscale=3, four_mv=False, threads=1)
    return plain, pack_b_frames(plain, root / "packed.avi")


def test_packed_fixture_is_packed_and_plays(packed):
    """The file is what DivX/XviD write, and FFmpeg plays it as the unpacked original."""
    plain, path = packed
    with av.open(str(path)) as c:
        chunks = [(bytes(p), p.pts) for p in c.demux(video=0) if p.size]
    kinds = [vop_types(d) for d, _ in chunks]
    assert sum(len(k) == 2 for k in kinds) >= 8 and sum(len(d) < 20 for d, _ in chunks) >= 8  # P+B chunks, N-VOPs
    assert len(chunks) == 30 and DIVX_PACKED in chunks[0][0]
    original, types = decode_all(plain)
    decoded, packed_types = decode_all(path)
    assert len(decoded) == 30 and packed_types == types and "B" in types
    for a, b in zip(decoded, original):
        np.testing.assert_array_equal(a, b)
    by_timestamp = "".join(kind[0] for _, kind in sorted(zip([t for _, t in chunks], kinds)))
    assert by_timestamp != types  # chunk timestamps (first VOP each) are not the display order: the bug


def test_packed_avi_in_decoder_order(packed):
    _, path = packed
    frames, types = decode_all(path)
    v = CompressedVideo(path)
    assert v.num_frames == len(frames) == 30
    assert v.frame_types == types
    assert v.gop_starts == [i for i, t in enumerate(types) if t == "I"]
    for i in scrambled(30):
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i], err_msg=str(i))
    fresh = CompressedVideo(path)  # random access from a cold decoder: the last GOP first
    np.testing.assert_array_equal(fresh.load(27, "rgb"), frames[27])
    np.testing.assert_array_equal(fresh.load(13, "iframe"), frames[fresh.gop_of(13)])


def test_packed_avi_motion(packed):
    _, path = packed
    frames, _ = decode_all(path)
    v = CompressedVideo(path)
    assert_reconstructs(v, dict(enumerate(frames)), range(30))
    assert_recovers_shift(v, range(30))  # the last P-frame too (its vectors: test below)


@pytest.mark.parametrize("codec, suffix", [("mpeg4", ".mp4"), ("mpeg4", ".avi"), ("mpeg2video", ".mpg"),
                                           ("mpeg2video", ".mp4")])
def test_the_last_anchor_of_a_stream_with_b_frames_has_its_vectors(tmp_path, frames30, codec, suffix):
    """MPEG-2/4 decoders with B-frames output each I/P-picture when the next is decoded, and export
    its vectors then; the stream's last one comes out when the decoder is drained, and FFmpeg
    exported none for it: zero motion and a per-frame mean |residual| of 76-77 (against 2-19 for
    the other frames), until 2026-12-07. Every P-frame now has its vectors and its true shift."""
    path = encode(tmp_path / f"b{suffix}", frames30, codec=codec, gop=12, bframes=2)
    v = CompressedVideo(path)
    last = v.num_frames - 1
    assert v.frame_types[last] == "P" and "B" in v.frame_types[last - 3 : last], v.frame_types
    inter = [i for i in range(v.num_frames) if v.frame_types[i] == "P"]
    assert all(vec is not None for vec in v.block_vectors(inter))
    residuals = [float(np.abs(r).mean()) for r in v.load_many(range(last - 2, last + 1), "residual", accumulate=False)]
    assert max(residuals) < 25, residuals
    assert_recovers_shift(v, range(last + 1))
    frames, _ = decode_all(path)
    assert_reconstructs(v, dict(enumerate(frames)), range(last - 3, last + 1))


@pytest.mark.parametrize("container", ["mp4", "avi", "mkv"])
def test_a_file_cut_short_is_named_by_what_its_header_lists(tmp_path, frames30, container):
    """A download cut short: an mp4 whose index comes first (cut_short), an AVI or a Matroska file
    keeps opening, and FFmpeg demuxes the frames that are there as a shorter video. Its header (the
    mp4 sample table, the AVI frame count; the Matroska track's duration, which until 2026-12-07
    was not read, so a cut mkv trained as a shorter video) lists all of them: ``index.missing``
    holds (held, listed) and ``require_whole`` names the file in one line; reads still give the
    frames it holds. A whole file passes."""
    from videos import cut_short

    path = encode_video(frames30, tmp_path / f"v.{container}", codec="mpeg4", gop_size=12, qscale=3)
    whole = CompressedVideo(path)
    whole.require_whole()
    assert whole.index.missing is None and whole.num_frames == 30
    if container == "mp4":
        cut_short(path)
    else:
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    video = CompressedVideo(path)
    assert 10 <= video.num_frames < 25
    assert video.load(video.num_frames - 1, "mv").shape == (64, 96, 2)  # what it holds is read
    assert video.index.missing == (video.num_frames, 30)
    with pytest.raises(VideoError) as caught:
        video.require_whole()
    assert str(caught.value) == (f"{path}: truncated: it holds {video.num_frames} of the 30 frames its header lists "
                                 "(an interrupted download or copy?); fetch it again, or re-encode the frames it "
                                 "holds with data_prep/reencode.py")


def test_n_vop_in_a_plain_avi_is_no_frame(tmp_path):
    """An N-VOP (an encoder's dropped frame, not packing) decodes to nothing: not a frame either."""
    plain = encode_video(moving_frames(20, 64, 96, dx=SHIFT), tmp_path / "plain.avi", codec="mpeg4", gop_size=12)
    path = tmp_path / "dropped.avi"
    with av.open(str(plain)) as inp, av.open(str(path), "w", format="avi") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        chunks = [(bytes(p), bool(p.is_keyframe)) for p in inp.demux(stream) if p.size]
        chunks.insert(5, (n_vop(chunks[4][0], 4), False))  # resolution 12 (fps): 4 time-increment bits
        for n, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.pts = packet.dts = n
            packet.time_base, packet.is_keyframe, packet.stream = ostream.time_base, key, ostream
            out.mux(packet)
    frames, types = decode_all(path)
    v = CompressedVideo(path)
    assert len(chunks) == 21 and v.num_frames == len(frames) == 20 and v.frame_types == types
    for i in range(20):
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i], err_msg=str(i))


# --------------------------------------------------------------------------- msmpeg4 (DivX 3)
@pytest.mark.parametrize("codec", ["msmpeg4", "msmpeg4v2"])
def test_msmpeg4_avi_has_motion(tmp_path, frames30, codec):
    """Refused before by a list of codec names; FFmpeg exports its vectors, so it reads like mpeg4."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    path = encode_video(frames30, tmp_path / f"{codec}.avi", codec=codec, gop_size=12, qscale=3)
    frames, types = decode_all(path)
    v = CompressedVideo(path)
    assert v.codec.startswith("msmpeg4") and v.frame_types == types and v.num_frames == 30
    v.require_motion()
    assert_reconstructs(v, dict(enumerate(frames)), range(30))
    assert_recovers_shift(v, range(24))


# ---------------------------------------------------------------- timestamps that order nothing
@pytest.mark.skipif("libx265" not in av.codecs_available, reason="this FFmpeg has no libx265")
def test_hevc_mkv_with_zero_timestamps(tmp_path, frames30):
    """Every packet at timestamp 0: was 'duplicate frame timestamps'; now the decoder's order."""
    src = encode(tmp_path / "hevc.mkv", frames30, "libx265", bframes=3,
                 options={"x265-params": "log-level=error:bframes=3"})
    path = zero_timestamps(src, tmp_path / "hevc_ts0.mkv")
    with av.open(str(path)) as c:
        assert {(p.pts or 0, p.dts or 0) for p in c.demux(video=0) if p.size} == {(0, 0)}
    frames, types = decode_all(path)
    assert len(frames) == 30 and "B" in types  # decode order differs from display order
    v = CompressedVideo(path)
    assert v.num_frames == 30 and v.frame_types == types
    for i in scrambled(30):
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i], err_msg=str(i))
    with pytest.raises(VideoError, match=r"hevc.*no motion vectors.*reencode\.py") as e:
        v.load(5, "mv")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_mpeg4_mkv_with_zero_timestamps(tmp_path, frames30):
    src = encode(tmp_path / "mpeg4.mkv", frames30, "mpeg4", bframes=2)
    path = zero_timestamps(src, tmp_path / "mpeg4_ts0.mkv")
    v, frames, types = assert_matches_decoder(path)
    assert "B" in types
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 4))


@pytest.mark.parametrize("codec,fmt,suffix", [("mpeg4", "m4v", ".m4v"), ("libx264", "h264", ".h264")])
def test_raw_elementary_streams(tmp_path, frames30, codec, fmt, suffix):
    """No container timestamps: a parser invents them, and differently after a seek."""
    path = encode_video(frames30, tmp_path / f"raw{suffix}", codec=codec, container_format=fmt, gop_size=12,
                        max_b_frames=2, options={"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
                        if codec == "libx264" else None)
    v, frames, types = assert_matches_decoder(path)
    assert "B" in types
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 3))


@pytest.mark.parametrize("bframes", [2, 0])
def test_h264_in_avi_is_read_in_display_order(tmp_path, frames30, bframes):
    """H.264 with B-frames in an AVI (what some capture and editing tools write): AVI cannot store
    reordering, so every packet's timestamp follows decoding order, and the index took that for
    display order (its types, pictures and residuals were the wrong frames'). Timestamps in
    decoding order beside B-pictures are not trusted now: the decoder's output order is recorded.
    Without B-frames the timestamps are right and are used."""
    path = encode(tmp_path / f"h264_b{bframes}.avi", frames30, codec="libx264", bframes=bframes)
    v, frames, types = assert_matches_decoder(path)
    assert ("B" in types) == (bframes > 0)
    assert v.index.order == ("pts" if bframes == 0 else "pos")
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 2))


@pytest.mark.parametrize("suffix", [".ts", ".mpg"])
def test_mpeg4_with_b_frames_in_mpeg_ts_and_ps_seeks_to_its_i_frames(tmp_path, frames30, suffix):
    """MPEG-4 Part 2 with B-frames in MPEG-TS / MPEG-PS: no packet is flagged a key frame there, and
    a seek to an I-frame's timestamp landed on the P-frame after it (its decoding timestamp), so
    the frames of that GOP were decoded without their references: pictures that are no frame of
    the video, read without a word. A decode whose GOP I-frame does not come out now starts from
    the key frame before (and keeps doing so for that file), then from the start."""
    path = encode(tmp_path / f"b{suffix}", frames30, codec="mpeg4", bframes=2)
    v, frames, types = assert_matches_decoder(path)  # seeks back and forth
    assert "B" in types
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 3))


def test_a_capture_that_starts_inside_a_gop_gives_flow_that_lines_up(tmp_path):
    """An MPEG-TS capture cut inside a GOP (MPEG-4 Part 2 with B-frames): the decoder outputs the
    partial GOP's pictures (their references missing), which the index leaves out. iter_frames
    yielded them too (33 frames against the index's 24), so flow i was 9 frames off the P inputs
    at frame i. Now it yields the index's frames, as load(i, "rgb") gives them, and the flow has
    one fewer."""
    from ip_tsn.codec.flow import video_flow

    whole = encode(tmp_path / "whole.ts", moving_frames(48, 64, 96, dx=SHIFT), codec="mpeg4", bframes=2)
    data = whole.read_bytes()
    cut = tmp_path / "capture.ts"
    cut.write_bytes(data[(len(data) * 3 // 10) // 188 * 188 :])  # from a TS packet boundary inside a GOP
    decoded, _ = decode_all(cut)
    v = CompressedVideo(cut)
    assert len(decoded) > v.num_frames == 24 and v.frame_types.startswith("I")
    frames = list(v.iter_frames())
    assert len(frames) == v.num_frames
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, v.load(i, "rgb"), err_msg=str(i))
        np.testing.assert_array_equal(frame, decoded[len(decoded) - v.num_frames + i], err_msg=str(i))
    assert video_flow(cut, "dis").shape == (23, 64, 96, 2)


def test_mpeg1_with_b_frames_in_avi_reads_its_first_gop_after_a_seek(tmp_path, frames30):
    """MPEG-1 with B-frames in an AVI: FFmpeg's parser numbers the timestamps, and after a seek back
    to the start it gave the first I-frame pts 1 instead of 0, so frame 0 asked after a later GOP
    was "could not be decoded (truncated or corrupt video)". The reader now starts such a file
    from a fresh open (once it has seen the renumbering)."""
    path = encode(tmp_path / "m1.avi", frames30, codec="mpeg1video", bframes=2, fps=25)
    v, frames, types = assert_matches_decoder(path)  # frame 0 after later GOPs
    assert "B" in types
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 3))
    again = CompressedVideo(path)
    again.load(20, "rgb")
    np.testing.assert_array_equal(again.load(0, "rgb"), frames[0])


@pytest.mark.parametrize("codec,suffix", [("h263", ".avi"), ("h263", ".3gp"), ("h263p", ".avi")])
def test_h263_picture_types_come_from_its_picture_headers(tmp_path, codec, suffix):
    """H.263 (and H.263+) at sub-QCIF: in an AVI every packet is flagged a key frame, so the index
    called all 30 frames I-frames and refused the video as having no motion vectors. The picture
    type is now read from each picture header (PTYPE / PLUSPTYPE), as for MPEG-1/2/4."""
    from ip_tsn.codec.bitstream import h263_picture_type

    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.codec_context.gop_size = 12
        for t, rgb in enumerate(moving_frames(30, 96, 128, dx=SHIFT)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1001, 30000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    assert "".join(h263_picture_type(bytes(p)) for p in packets) == ("I" + "P" * 11) * 2 + "I" + "P" * 5
    v, frames, types = assert_matches_decoder(path)
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 4))
    assert_recovers_shift(v, range(24))


@pytest.mark.parametrize("codec,suffix", [("wmv2", ".avi"), ("flv1", ".flv")])
def test_windows_media_and_flash_video(tmp_path, frames30, codec, suffix):
    """WMV 8 in an AVI and Sorenson Spark in an FLV (old web video, msmpeg4's relatives): FFmpeg
    exports their vectors, so frames, motion and residuals read as the decoder sees them."""
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.gop_size, stream.codec_context.qmin, stream.codec_context.qmax = 12, 2, 4
        for t, rgb in enumerate(frames30):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 12)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    v, frames, types = assert_matches_decoder(path)
    assert types.count("I") == 3 and "B" not in types
    assert_reconstructs(v, dict(enumerate(frames)), range(0, 30, 4))
    assert_recovers_shift(v, range(24))


# ------------------------------------------------------------------- Debian opencv-doc samples
def opencv_sample(name: str) -> Path:
    path = OPENCV_DATA / name
    if not path.exists():
        pytest.skip(f"{path} absent (apt-get install opencv-doc)")
    return path


@pytest.mark.parametrize("name", ["Megamind.avi", "Megamind_bugy.avi"])
def test_real_xvid_packed_trailer(name):
    """A real XviD trailer with packed B-frames (and its copy with damaged frames): picture types,
    frames and motion as the decoder sees them; on P-frames the prediction beats the unwarped
    reference."""
    path = opencv_sample(name)
    v = CompressedVideo(path)
    wanted = set(range(0, v.num_frames, 9)) | set(range(v.num_frames - 5, v.num_frames)) | set(range(16, 33))
    types, frames, n = decode_some(path, wanted)
    assert v.num_frames == n and v.frame_types == types and "B" in types
    for i in sorted(wanted, reverse=True):  # seeking backwards through the file
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i], err_msg=str(i))
    inter = [i for i in range(24, 33) if types[i] != "I"]
    assert_reconstructs(v, frames, inter)
    for i in [i for i in inter if types[i] == "P"]:  # B: FFmpeg exports no MPEG-4 B vectors; derived, an estimate
        ref = frames[v.index.reference_of(i)]
        pred = warp(ref, v.load(i, "mv", accumulate=False))
        frame = frames[i].astype(np.int16)
        assert np.abs(pred - frame).mean() < np.abs(ref.astype(np.int16) - frame).mean(), (name, i)


def test_real_divx3_street_footage():
    """DivX 3 (msmpeg4) street footage: FFmpeg exports its vectors, so mv and residual load."""
    path = opencv_sample("vtest.avi")
    v = CompressedVideo(path)
    assert v.codec == "msmpeg4"
    types, frames, _ = decode_some(path, set(range(12)), limit=40)
    assert v.frame_types[:40] == types
    with av.open(str(path)) as c:
        assert v.num_frames == c.streams.video[0].frames
    assert_reconstructs(v, frames, range(1, 12))
    errs = []
    for i in range(1, 12):
        pred = warp(frames[i - 1], v.load(i, "mv", accumulate=False)).astype(np.int16)
        errs.append((np.abs(pred - frames[i]).mean(), np.abs(frames[i - 1].astype(np.int16) - frames[i]).mean()))
    pred_err, ref_err = np.mean(errs, axis=0)
    assert pred_err < 0.9 * ref_err
    assert np.abs(v.load(5, "mv", accumulate=False)).max() > 0


def test_real_cinepak_has_no_motion_vectors():
    """Cinepak: frames read, and mv is refused on what the decoder exports (nothing), naming the fix."""
    path = opencv_sample("tree.avi")
    v = CompressedVideo(path)
    _, frames, _ = decode_some(path, {10})
    np.testing.assert_array_equal(v.load(10, "rgb"), frames[10])
    with pytest.raises(VideoError, match=r"tree\.avi: codec 'cinepak' has no motion vectors.*reencode\.py"):
        v.load(10, "residual")


def test_intra_only_inter_frames_are_not_blamed_on_the_codec(tmp_path):
    """H.264 of noise: P-frames whose every block is intra-coded carry no vectors. The refusal says
    so, not that FFmpeg exports none for H.264 (which it does, and re-encoding would not change)."""
    noise = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    path = encode(tmp_path / "noise.mp4", noise, codec="libx264", gop=30)
    v = CompressedVideo(path)
    assert "P" in v.frame_types
    with pytest.raises(VideoError) as e:
        v.load(5, "mv")
    msg = str(e.value)
    assert msg.startswith(f"{path}: no motion vectors on its first 12 inter-coded frames: every block is intra-coded")
    assert "FFmpeg exports them for 'h264'" in msg and "reencode" not in msg


def test_an_edit_list_cut_at_a_key_frame_reads_what_a_player_shows(tmp_path):
    """The first GOP hidden by the edit list: the index holds the 24 frames FFmpeg outputs, and
    each rebuilds from its own GOP's I-frame exactly."""
    path = encode_cut(tmp_path / "cut.mp4", moving_frames(36, 48, 64), lead=12)
    frames, types = decode_all(path)
    assert len(frames) == 24  # what a player shows
    v = CompressedVideo(path)
    assert v.num_frames == 24 and "".join(v.frame_types) == types
    for i in (0, 5, 12, 23):
        np.testing.assert_array_equal(v.load(i, "rgb"), frames[i])
    assert_reconstructs(v, dict(enumerate(frames)), [1, 11, 13, 23])


@pytest.mark.parametrize("codec, bframes", [("mpeg4", 0), ("libx264", 2)])
def test_an_edit_list_hiding_the_i_frame_of_shown_frames_is_one_line(tmp_path, codec, bframes):
    """A cut inside a GOP: the frames shown before the next I-frame are predicted from a hidden
    one. Named as such, with the fix (re-encoding), not as a corrupt file."""
    path = encode_cut(tmp_path / "cut.mp4", moving_frames(30, 48, 64), lead=5, codec=codec, bframes=bframes)
    assert len(decode_all(path)[0]) == 25
    with pytest.raises(VideoError) as e:
        CompressedVideo(path).num_frames
    assert str(e.value) == (f"{path}: its edit list hides the I-frame its first 7 shown frames are predicted "
                            f"from (a cut made without re-encoding, e.g. ffmpeg -ss ... -c copy); "
                            f"re-encode it: python data_prep/reencode.py {path} --output DIR")


# ----------------------------------------------------------------------- item 9: clear errors
@pytest.mark.parametrize("name", ["folder", "clip.mp4"])
def test_directory_is_named_as_such(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    with pytest.raises(VideoError, match=r": is a directory, not a video file$") as e:
        CompressedVideo(folder).num_frames
    assert str(e.value).startswith(str(folder)) and "corrupt" not in str(e.value)


def test_all_intra_video_says_it_has_no_p_or_b_frames(tmp_path, frames30):
    path = encode_video(frames30[:12], tmp_path / "intra.mp4", codec="mpeg4", gop_size=1)
    v = CompressedVideo(path)
    assert v.frame_types == "I" * 12
    np.testing.assert_array_equal(v.load(5, "rgb"), decode_all(path)[0][5])  # frames still read
    for representation in ("mv", "residual"):
        with pytest.raises(VideoError, match=r"no P- or B-frames \(all 12 frames are I-frames\), so no motion "
                                             r"vectors.*reencode\.py") as e:
            v.load(5, representation)
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value) and "short" not in str(e.value)
    with pytest.raises(VideoError, match="no P- or B-frames"):
        v.require_motion()
