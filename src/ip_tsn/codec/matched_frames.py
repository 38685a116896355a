"""Decoded frames matched to the index's display indices, and the checks each frame read passes.

The reader recognises a decoded frame by its pts: the container's timestamps, or (index order
"pos" / "count") the byte position / number of its packet, written into each packet's pts before
decoding (see :mod:`ip_tsn.codec.index`). The GOP decoder and ``iter_frames`` both read this way.
"""

from __future__ import annotations

from typing import Iterator

import av

from .errors import VideoError
from .index import VideoIndex
from .orientation import display_transform, turned_error


def matched_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   index: VideoIndex) -> Iterator[tuple[int | None, av.VideoFrame]]:
    """``(display index, frame)`` of every frame the decoder outputs from the container's current
    position; the index is None for a frame the index leaves out.

    MPEG-1/2/4 decoders with B-frames hold each I/P-picture back until the next one is decoded, and
    export its motion vectors only then: the stream's last one, output when the decoder is drained,
    came without any (zero motion, a mean |residual| of 77 against 11). At the end of the stream the
    last I-picture's packet read is decoded once more, so the held picture comes out the usual
    way, vectors included; that copy's own picture is left out (its pts names no frame)."""
    display = index.display_of_pts
    by_pos, by_count = index.order == "pos", index.order == "count"
    count, key = 0, None
    held = index.codec in HELD_ANCHORS and "B" in index.frame_types
    for packet in container.demux(stream):
        if packet.size and (by_pos or by_count):
            packet.pts = packet.pos if by_pos else count
            count += 1
        if held and packet.size and packet.pts in display and index.frame_types[display[packet.pts]] == "I":
            key = bytes(packet)  # an I-picture's packet (its pts names an I-frame): decodable alone
        if not packet.size and key is not None:  # the end: let the held picture out with its vectors
            copy = av.Packet(key)
            copy.pts = copy.dts = NOT_A_FRAME
            key = None
            try:
                for frame in stream.decode(copy):
                    yield display.get(frame.pts), frame
            except av.FFmpegError:
                pass  # the held picture then comes out below, as before (without vectors)
        for frame in packet.decode():
            yield display.get(frame.pts), frame


HELD_ANCHORS = frozenset({"mpeg1video", "mpeg2video", "mpeg4"})  # decoders that output an anchor one picture late
NOT_A_FRAME = -(2**62)  # the pts of the end-of-stream copy: no frame of any index


def check_frame(path: str, index: VideoIndex, frame: av.VideoFrame, j: int, first: bool) -> None:
    """One VideoError for frame ``j`` if the P inputs cannot use it: another size than the stream's
    (clips joined without re-encoding, a capture of an adaptive stream) or, on the ``first`` frame
    read, a display matrix (a phone's rotation metadata: vectors and residuals stay in the stored
    orientation, which no player shows). Both name the fix, ``data_prep/reencode.py``."""
    fix = f"python data_prep/reencode.py {path} --output DIR"
    if (frame.width, frame.height) != (index.width, index.height):
        raise VideoError(path, f"its frame size changes mid-stream ({index.width}x{index.height}, then "
                               f"{frame.width}x{frame.height} at frame {j}); re-encode it to one size: {fix}")
    transform = display_transform(frame) if first else None
    if transform is not None:
        raise turned_error(path, transform)
