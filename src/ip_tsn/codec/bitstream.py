"""Picture types read from packet headers, without decoding.

Only the first bytes of each packet are parsed: the H.264 slice header (`slice_type`), the
MPEG-4 Part 2 VOP header (`vop_coding_type`) and the MPEG-1/2 picture header
(`picture_coding_type`). Codecs without a parser here get ``None`` and the caller falls back to
timestamps (see :mod:`ip_tsn.codec.index`).
"""

from __future__ import annotations

from typing import Callable, Optional

PictureInfo = tuple[Optional[str], Optional[bool]]

_H264_SLICE_TYPES = {0: "P", 1: "B", 2: "I", 3: "P", 4: "I"}  # slice_type % 5; SP -> P, SI -> I
_MPEG4_VOP_TYPES = {0: "I", 1: "P", 2: "B", 3: "P"}  # 3: S(GMC)-VOP, predicted like a P-VOP
_MPEG2_PICTURE_TYPES = {1: "I", 2: "P", 3: "B"}


class _Bits:
    """MSB-first bit reader over an RBSP (emulation prevention bytes removed)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError at the end: the caller treats it as unknown
        bit = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return bit

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        value = 1
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return value - 1


def _unescape(nal: bytes, limit: int = 32) -> bytes:
    """Drop H.264 emulation prevention bytes (00 00 03 -> 00 00) from the first bytes."""
    out, zeros = bytearray(), 0
    for b in nal[:limit]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _annexb_nals(data: bytes):
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        nxt = data.find(b"\x00\x00\x01", start + 3)
        yield data[start + 3 : nxt if nxt >= 0 else len(data)]
        start = nxt


def _length_prefixed_nals(data: bytes, size: int):
    pos = 0
    while pos + size <= len(data):
        n = int.from_bytes(data[pos : pos + size], "big")
        yield data[pos + size : pos + size + n]
        pos += size + n


def _is_length_prefixed(data: bytes, size: int) -> bool:
    """True if ``size``-byte NAL lengths tile ``data`` exactly (AVCC, as in mp4/mkv)."""
    pos = 0
    while pos + size <= len(data):
        pos += size + int.from_bytes(data[pos : pos + size], "big")
    return pos == len(data)


def h264_picture_info(data: bytes, nal_length_size: Optional[int]) -> tuple[Optional[str], Optional[bool]]:
    """Type and reference flag of an H.264 access unit, from its slice headers.

    A picture with any B slice is ``B``, else with any P slice ``P``, else ``I``; it is a reference
    picture if its slices have ``nal_ref_idc != 0``. NAL framing: AVCC (mp4, mkv) or Annex B.
    """
    if nal_length_size and _is_length_prefixed(data, nal_length_size):
        nals = _length_prefixed_nals(data, nal_length_size)
    else:
        nals = _annexb_nals(data)
    found, reference = set(), None
    for nal in nals:
        if nal and (nal[0] & 0x1F) in (1, 5):  # coded slice (non-IDR / IDR)
            reference = bool(nal[0] & 0x60)
            try:
                bits = _Bits(_unescape(nal[1:]))
                bits.ue()  # first_mb_in_slice
                found.add(_H264_SLICE_TYPES.get(bits.ue() % 5))
            except (IndexError, ValueError):
                return None, None
    kind = next((t for t in ("B", "P", "I") if t in found), None)
    return kind, reference


def mpeg4_picture_type(data: bytes) -> Optional[str]:
    """Type of the first VOP in an MPEG-4 Part 2 packet."""
    at = data.find(b"\x00\x00\x01\xb6")
    if at < 0 or at + 4 >= len(data):
        return None
    return _MPEG4_VOP_TYPES[data[at + 4] >> 6]


def mpeg2_picture_type(data: bytes) -> Optional[str]:
    """Type of the first picture in an MPEG-1/2 packet."""
    at = data.find(b"\x00\x00\x01\x00")
    if at < 0 or at + 5 >= len(data):
        return None
    return _MPEG2_PICTURE_TYPES.get(((data[at + 4] << 8 | data[at + 5]) >> 3) & 7)


def picture_info_parser(codec: str, extradata: Optional[bytes]) -> Optional[Callable[[bytes], PictureInfo]]:
    """A function ``packet bytes -> (type, is_reference)`` for ``codec``, or None if unknown.

    ``type`` is ``"I"``, ``"P"``, ``"B"`` or None (unparsable); ``is_reference`` tells whether
    later pictures may predict from this one (MPEG-1/2/4: every I/P picture, no B picture).
    """
    if codec == "h264":
        size = (extradata[4] & 3) + 1 if extradata and len(extradata) > 4 and extradata[0] == 1 else None
        return lambda data: h264_picture_info(data, size)
    simple = {"mpeg4": mpeg4_picture_type, "mpeg1video": mpeg2_picture_type, "mpeg2video": mpeg2_picture_type}
    if codec in simple:
        parse = simple[codec]

        def info(data: bytes) -> PictureInfo:
            kind = parse(data)
            return kind, (None if kind is None else kind != "B")

        return info
    return None
