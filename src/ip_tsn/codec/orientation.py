"""A video's display orientation: the display matrix (rotation or mirror metadata) that phones and
cameras store instead of turning the pictures. Players apply it; decoders, and so the motion
vectors and residuals, stay in the stored orientation."""

from __future__ import annotations

import math

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer, Type

from .errors import VideoError

Transform = tuple[int, int, int, int]  # (a, b, c, d) of the display matrix, each -1, 0 or 1

_WORDS = {
    (0, 1, -1, 0): "turns it 90 degrees clockwise",
    (0, -1, 1, 0): "turns it 90 degrees counter-clockwise",
    (-1, 0, 0, -1): "turns it 180 degrees",
    (-1, 0, 0, 1): "mirrors it left to right",
    (1, 0, 0, -1): "mirrors it top to bottom",
}


def display_transform(frame: av.VideoFrame) -> Transform | None:
    """The frame's display matrix as (a, b, c, d), each -1, 0 or 1: a player shows the stored
    pixel (x, y) at (a x + c y, b x + d y), shifted into the picture (FFmpeg's convention, y down).
    None when it is shown as stored. A matrix that is not a quarter turn or a mirror (a rare odd
    angle) is taken at its nearest quarter turn, as players round it."""
    data = SideDataContainer(frame).get(Type.DISPLAYMATRIX)  # not frame.side_data: a reference cycle (frames.py)
    if data is None:
        return None
    m = np.frombuffer(bytes(data), np.int32)
    a, b, c, d = (int(m[k]) for k in (0, 1, 3, 4))
    big = max(abs(a), abs(b), abs(c), abs(d))
    if big == 0:
        return None
    signs = tuple(int(np.sign(v)) if abs(v) > big / 2 else 0 for v in (a, b, c, d))
    if sum(map(abs, signs)) != 2:  # an odd angle: its nearest quarter turn (counter-clockwise degrees)
        turns = round(-math.degrees(math.atan2(b, a)) / 90) % 4
        signs = [(1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0)][turns]
    return None if signs == (1, 0, 0, 1) else signs  # type: ignore[return-value]


def describe(transform: Transform) -> str:
    """What a player does to the pictures, in words: "turns it 90 degrees clockwise"."""
    return _WORDS.get(transform, "turns and mirrors it (swaps its rows and columns)")


def turned_error(path: str, transform: Transform) -> VideoError:
    """The one line for a video a display matrix turns or mirrors: the turn, why it matters, the fix."""
    return VideoError(path, f"its display matrix {describe(transform)} (orientation metadata, as phones write it); "
                            f"motion vectors and residuals stay in the stored orientation, so it would be read as no "
                            f"player shows it; re-encode it as shown: python data_prep/reencode.py {path} --output DIR")


def orient(image: np.ndarray, transform: Transform) -> np.ndarray:
    """(H, W, ...) stored picture -> the picture a player shows: (W, H, ...) for a quarter turn."""
    a, b, c, d = transform
    if a == 0:
        image = image.swapaxes(0, 1)  # rows now follow the stored x
        if b < 0:
            image = image[::-1]
        if c < 0:
            image = image[:, ::-1]
    else:
        if a < 0:
            image = image[:, ::-1]
        if d < 0:
            image = image[::-1]
    return np.ascontiguousarray(image)
