#!/usr/bin/env python
"""Re-encode videos to CoViAR's format: MPEG-4 Part 2, GOP 12, no B-frames, 340x256, no audio.

    python data_prep/reencode.py UCF-101/ data/ucf101/videos/            # a folder tree
    python data_prep/reencode.py trainlist01.txt out/ --input-root UCF-101/  # or a list of videos
    python data_prep/reencode.py clip.avi --output out/                      # or one video
    sbatch --array=0-15 ... python data_prep/reencode.py SRC OUT --workers 8  # one shard per task

The input tree is mirrored under OUTPUT_ROOT with a .mp4 extension. PyAV equivalent of CoViAR's
``ffmpeg -i X.avi -vf scale=340:256,setsar=1:1 -q:v 1 -c:v mpeg4 X.mp4``, with the GOP pinned:
every 12th frame is an I-frame (scene-cut I-frames off), the rest P-frames. Quality: a fixed
quantizer ``--qscale`` (default 2). FFmpeg clips the quantizer to ``qmin``, default 2, so CoViAR's
``-q:v 1`` really encoded at qscale 2; ``--qscale 1`` is ~1.9x larger files for +0.8 dB.
A video stored turned or mirrored (a phone's display matrix) is written as a player shows it,
turned before scaling, as ffmpeg's autorotation does; the output has no display matrix.

A list file holds one video per line (``Class/v_x.avi`` or ``Class/v_x.avi 12``: the first
field), relative to ``--input-root`` (default: the list's folder) or absolute. Finished outputs
are skipped (resume), unless their source was replaced since by one of another length
(``_common.up_to_date``); each output is written to a temp name and renamed when complete. Bad inputs
(corrupt, empty, audio-only) are listed at the end; the exit status is 1 if any failed.
The output stream is the package encoder's (``ip_tsn.codec.encode.add_video_stream``), written
through ``ip_tsn.atomic.atomic_path``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from fractions import Fraction

import av

from ip_tsn.codec.encode import add_video_stream
from ip_tsn.codec.errors import VideoError
from ip_tsn.codec.orientation import describe, display_transform, orient
from ip_tsn.codec.streams import open_video_stream
from ip_tsn.data.split_files import VIDEO_EXTENSIONS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common_args, atomic_output, claim_folder, find_files, parallel_map, parse_shard, run_main, \
    shard, summarize, up_to_date, Result  # noqa: E402

# containers that usually hold audio only but may hold video: scanned and reported like videos
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + (".m4a", ".mka", ".ogg", ".oga", ".opus", ".mp3", ".aac", ".wav",
                                       ".flac", ".wma")


def parse_size(text: str) -> tuple[int, int]:
    """``"340x256"`` -> ``(340, 256)`` (even, as yuv420p needs)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size expects WxH, e.g. 340x256, got {text!r}") from None
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be even and >= 2")
    return width, height


def parse_gop(text: str) -> int:
    """The I-frame interval: at least 2 (until 2026-12-08 0 and 1 were taken, and gave videos of I-frames
    alone: no motion vectors, no residuals, nothing for the P-stream)."""
    try:
        gop = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gop expects a number of frames, e.g. 12, got {text!r}") from None
    if gop < 2:
        raise argparse.ArgumentTypeError(f"--gop {text}: a GOP holds its I-frame and at least one P-frame (>= 2; "
                                         "CoViAR's is 12); below that every frame is an I-frame, with no motion")
    return gop


def frame_rate(stream) -> Fraction:
    """The input's average frame rate, as MPEG-4 Part 2 can store it (time base 1 / rate with a
    denominator below 65536)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = Fraction(rate) if rate else Fraction(25)
    if not 1 <= rate <= 240:
        rate = Fraction(25)
    return 1 / (1 / rate).limit_denominator(65535)


def encode_settings(size: tuple[int, int] = (340, 256), gop: int = 12, qscale: int = 2) -> dict:
    """What the videos of an output folder are encoded with, recorded in its ``settings.json``
    (``_common.claim_folder``): a rerun with others is refused instead of mixing two encodings."""
    return {"codec": "mpeg4", "size": list(size), "gop": int(gop), "qscale": int(qscale)}


def reencode_video(src: str, dst: str, size=(340, 256), gop: int = 12, qscale: int = 2,
                   overwrite: bool = False) -> str:
    """Re-encode ``src`` to ``dst`` (MPEG-4 Part 2 in .mp4). Returns "skipped", "done" or
    "done (note)"; raises ``VideoError`` naming ``src`` for inputs that cannot be read."""
    if not overwrite and up_to_date(dst, src, functools.partial(copy_fits, dst, src)):
        return "skipped"
    inp, ist = open_video_stream(src)  # the package's one opener: missing, empty, corrupt, image, audio only
    with inp:
        ist.thread_type = "AUTO"
        rate = frame_rate(ist)
        expected = expected_frames(ist, inp, rate)
        with atomic_output(dst) as tmp:
            out = av.open(tmp, "w", format="mp4")
            finished = False
            try:
                # the package's encoder settings: GOP pinned (no scene-cut I-frames), fixed
                # quantizer (qmin = qmax = qscale), no B-frames; 16x16 motion only, like CoViAR's
                # ffmpeg command (no +mv4)
                ost = add_video_stream(out, *size, codec="mpeg4", fps=rate, gop_size=gop,
                                       max_b_frames=0, qscale=qscale, four_mv=False)
                ost.codec_context.sample_aspect_ratio = Fraction(1, 1)
                count, bad_packets = 0, 0
                time_base = 1 / rate
                packets, hidden = 0, 0  # hidden: frames an mp4/mov edit list hides (the decoder drops them)
                turn = None
                for packet in inp.demux(ist):
                    packets += packet.size > 0 and not packet.is_discard
                    hidden += packet.size > 0 and packet.is_discard
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:
                        bad_packets += 1
                        continue
                    for frame in frames:
                        if count == 0:
                            turn = display_transform(frame)  # a phone's rotation metadata: shown as players do
                        if turn is not None:
                            frame = av.VideoFrame.from_ndarray(orient(frame.to_ndarray(format="rgb24"), turn),
                                                               format="rgb24")
                        scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p",
                                                interpolation="BICUBIC")
                        scaled.pts, scaled.time_base = count, time_base
                        scaled.pict_type = av.video.frame.PictureType.NONE
                        out.mux(ost.encode(scaled))
                        count += 1
                if count == 0:
                    raise VideoError(src, "no decodable video frames"
                                     + (f" ({bad_packets} corrupt packets)" if bad_packets else ""))
                out.mux(ost.encode(None))
                finished = True
            finally:
                try:
                    out.close()
                except Exception:
                    if finished:
                        raise
    if bad_packets or count < packets or count < expected - 1:  # damage can be silent
        return (f"done, with warnings: {count} frames decoded from {packets} packets"
                + (f" ({bad_packets} undecodable)" if bad_packets else "")
                + (f", the container says ~{expected} frames" if count < expected - 1 else ""))
    notes = ([f"{hidden} frames its edit list hides left out, as a player does"] if hidden else []) + \
        ([f"its display matrix {describe(turn)}: applied, as a player does"] if turn is not None else [])
    return f"done ({'; '.join(notes)})" if notes else "done"


def copy_fits(dst: str, src: str) -> bool:
    """The copy ``dst`` shows as many frames as its source ``src`` (:func:`_common.up_to_date`)."""
    from ip_tsn.codec.index import get_index

    return get_index(dst).num_frames == get_index(src).num_frames


def expected_frames(stream, container, rate: Fraction) -> int:
    """The frame count the container claims (0 if it does not say): its sample count, or in an
    mp4 / mov its duration's where that is shorter (an edit list hides samples, and the duration
    is what it shows; an AVI's duration is only what is left of a cut file)."""
    if stream.frames:
        edited = "mov" in container.format.name.split(",") and stream.duration and stream.time_base
        shown = round(stream.duration * stream.time_base * rate) if edited else 0
        return min(int(stream.frames), shown) if shown > 0 else int(stream.frames)
    if stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if container.duration and len(container.streams) == 1:  # else audio may be longer
        return round(container.duration / av.time_base * rate)
    return 0


def output_path(src: str, input_root: str, output_root: str) -> str:
    """Mirror ``src``'s path under ``input_root`` into ``output_root``, with a .mp4 extension."""
    rel = os.path.relpath(src, input_root)
    if rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        rel = os.path.basename(src)
    return os.path.join(output_root, os.path.splitext(rel)[0] + ".mp4")


def _one(src: str, input_root: str, output_root: str, **options) -> str:
    return reencode_video(src, output_path(src, input_root, output_root), **options)


def is_list_file(path: str) -> bool:
    """A text file (a list of videos), not a media file: no NUL byte and UTF-8 in its first 4 kB."""
    with open(path, "rb") as f:
        head = f.read(4096)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at 4096 bytes is still text
        if e.start < len(head) - 3:
            return False
    return b"\0" not in head


def list_inputs(input_path: str, input_root: str | None) -> tuple[list[str], str]:
    """Absolute input video paths and the root their relative paths are taken from: every media
    file under a folder (``MEDIA_EXTENSIONS``: audio-only ones are reported as failed), one media
    file, or the videos a list file names."""
    if os.path.isdir(input_path):
        root = os.path.abspath(input_path)
        return [os.path.join(root, rel) for rel in find_files(root, MEDIA_EXTENSIONS)], root
    if input_path.lower().endswith(MEDIA_EXTENSIONS) or not is_list_file(input_path):  # one video
        root = os.path.abspath(input_root or os.path.dirname(input_path))
        return [os.path.abspath(input_path)], root
    root = os.path.abspath(input_root or os.path.dirname(input_path))
    videos = []
    with open(input_path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = line if os.path.exists(os.path.join(root, line)) else line.split()[0]
            videos.append(os.path.normpath(os.path.join(root, entry)))
    return sorted(set(videos)), root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a folder of videos (searched recursively), a list file "
                                      "or one video")
    parser.add_argument("output_root", nargs="?", help="where the .mp4 tree is written")
    parser.add_argument("-o", "--output", help="same as OUTPUT_ROOT")
    parser.add_argument("--input-root", help="base of relative paths in a list file "
                                             "(default: the list file's folder)")
    parser.add_argument("--size", type=parse_size, default=(340, 256), metavar="WxH",
                        help="output frame size (default 340x256, CoViAR's)")
    parser.add_argument("--gop", type=parse_gop, default=12, help="I-frame interval, >= 2 (default 12)")
    parser.add_argument("--qscale", type=int, default=2, choices=range(1, 32), metavar="1..31",
                        help="fixed MPEG-4 quantizer, lower is better (default 2)")
    add_common_args(parser)
    args = parser.parse_args(argv)

    if not os.path.exists(args.input):
        parser.error(f"{args.input}: no such folder, list file or video")
    if (args.output_root is None) == (args.output is None):
        parser.error("give the output folder once: OUTPUT_ROOT or --output")
    videos, input_root = list_inputs(args.input, args.input_root)
    videos = shard(videos, *(args.shard or parse_shard(None)))
    output_root = os.path.abspath(args.output_root or args.output)
    if output_root == input_root:
        parser.error("the output folder must differ from the input folder")

    # Two inputs mapping to one output (a.avi, a.mkv) would overwrite each other: refuse both.
    by_output: dict[str, list[str]] = {}
    for src in videos:
        by_output.setdefault(output_path(src, input_root, output_root), []).append(src)
    clashes = [Result(src, False, f"output {dst} would also be written from {others}")
               for dst, srcs in by_output.items() if len(srcs) > 1
               for src, others in ((s, [o for o in srcs if o != s]) for s in srcs)]
    clashing = {r.item for r in clashes}
    todo = [src for src in videos if src not in clashing]

    claim_folder(output_root, encode_settings(args.size, args.gop, args.qscale), "re-encoded videos", ".mp4",
                 args.overwrite)
    fn = functools.partial(_one, input_root=input_root, output_root=output_root, size=args.size,
                           gop=args.gop, qscale=args.qscale, overwrite=args.overwrite)
    results = parallel_map(fn, todo, workers=args.workers, desc="reencode",
                           progress=args.progress)
    return summarize(results + clashes, "reencode")


if __name__ == "__main__":
    sys.exit(run_main(main))
