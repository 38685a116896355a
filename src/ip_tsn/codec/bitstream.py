"""Picture types read from packet headers, without decoding.

Only headers are parsed: the H.264 slice header (`slice_type`), the MPEG-4 Part 2 VOP header
(`vop_coding_type`, `vop_coded`), the MPEG-1/2 picture header (`picture_coding_type`) and the
H.263 picture header (PTYPE / PLUSPTYPE). Codecs
without a parser here get ``None`` and the caller falls back to timestamps or to decoding (see
:mod:`ip_tsn.codec.index`).

MPEG-4 Part 2 needs more than the first header of each packet: DivX/XviD "packed B-frames" put a
P-VOP and the following B-VOP in one AVI chunk and a not-coded placeholder VOP ("N-VOP") in a
later one. :class:`Mpeg4Pictures` replays, packet by packet, which VOP FFmpeg's decoder decodes.
"""

from __future__ import annotations

import re
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


_H263_PLUS_TYPES = {0: "I", 1: "P", 2: "P", 3: "B", 4: "I", 5: "P"}  # MPPTYPE: I, P, improved PB, B, EI, EP


def h263_picture_type(data: bytes) -> Optional[str]:
    """Type of an H.263 picture (H.263+ PLUSPTYPE included) from its picture header: the picture
    start code (22 bits), TR (8), PTYPE: ``1 0``, three flags, the source format (3) and, for
    H.263 version 1, the coding type (0 INTRA, 1 INTER); for PLUSPTYPE (format 7), UFEP (3),
    OPPTYPE (18, when UFEP is 1) and the picture type code (3). None when it is not one."""
    b = _Bits(data[:12])
    try:
        if sum(b.bit() << (21 - k) for k in range(22)) != 0x20:  # 0000 0000 0000 0000 1000 00
            return None
        for _ in range(8):  # temporal reference
            b.bit()
        if b.bit() != 1 or b.bit() != 0:
            return None
        for _ in range(3):  # split screen, document camera, freeze release
            b.bit()
        source_format = b.bit() << 2 | b.bit() << 1 | b.bit()
        if source_format != 7:
            return "P" if b.bit() else "I"
        ufep = b.bit() << 2 | b.bit() << 1 | b.bit()
        for _ in range(18 if ufep == 1 else 0):
            b.bit()
        return _H263_PLUS_TYPES.get(b.bit() << 2 | b.bit() << 1 | b.bit())
    except IndexError:
        return None


_VOP = b"\x00\x00\x01\xb6"
_USER_DATA = b"\x00\x00\x01\xb2"
_DIVX = re.compile(rb"DivX\d+(?:Build|b)\d+(.?)", re.DOTALL)


def _vol_time_increment_bits(data: bytes) -> Optional[int]:
    """Bits of ``vop_time_increment`` from the last MPEG-4 VOL header in ``data`` (None if none)."""
    found, at = None, data.find(b"\x00\x00\x01")
    while 0 <= at < len(data) - 3:
        if 0x20 <= data[at + 3] <= 0x2F:  # video_object_layer_start_code
            try:
                found = _parse_vol(_Bits(data[at + 4 : at + 64]))
            except (IndexError, ValueError):
                pass
        at = data.find(b"\x00\x00\x01", at + 3)
    return found


def _parse_vol(b: _Bits) -> int:
    """``video_object_layer`` header up to ``vop_time_increment_resolution`` (ISO 14496-2 6.2.3)."""
    def get(n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | b.bit()
        return v

    get(1)  # random_accessible_vol
    get(8)  # video_object_type_indication
    verid = 1
    if get(1):  # is_object_layer_identifier
        verid = get(4)
        get(3)
    if get(4) == 15:  # aspect_ratio_info: extended PAR
        get(16)
    if get(1):  # vol_control_parameters
        get(3)  # chroma_format, low_delay
        if get(1):  # vbv_parameters
            get(15), get(1), get(15), get(1), get(15), get(1), get(3), get(11), get(1), get(15), get(1)
    shape = get(2)
    if shape == 3 and verid != 1:
        get(4)
    if not get(1):  # marker
        raise ValueError("bad VOL marker")
    resolution = get(16)
    if resolution == 0:
        raise ValueError("zero vop_time_increment_resolution")
    return max((resolution - 1).bit_length(), 1)


def _vops(data: bytes, time_bits: Optional[int]) -> list[tuple[int, str, bool]]:
    """``(offset, type, coded)`` of every VOP start code in ``data``; ``coded`` is False for a
    not-coded VOP (``vop_coded == 0``, the "N-VOP"), True when it cannot be read."""
    out, at = [], data.find(_VOP)
    while at >= 0 and at + 4 < len(data):
        kind, coded = _MPEG4_VOP_TYPES[data[at + 4] >> 6], True
        if time_bits is not None:
            try:
                b = _Bits(data[at + 4 : at + 16])
                b.pos = 2
                while b.bit():  # modulo_time_base
                    pass
                b.pos += 1 + time_bits + 1  # marker, vop_time_increment, marker
                coded = bool(b.bit())
            except IndexError:
                pass
        out.append((at, kind, coded))
        at = data.find(_VOP, at + 4)
    return out


class Mpeg4Pictures:
    """Which VOP FFmpeg's MPEG-4 decoder decodes for each packet, fed in decode order.

    FFmpeg (``h263dec.c``, ``ff_mpeg4_frame_end``) decodes one VOP per packet: the packet's first,
    or, in a DivX-packed stream (user data ``DivX...p``), the VOP it kept from the previous packet.
    After decoding, a packed stream keeps the rest of the packet from the next VOP start code on if
    that VOP is an I- or B-VOP (the packed B-VOP after a P-VOP); a packet decoded while a kept VOP
    was pending is kept whole when its first VOP is an I- or B-VOP. Not-coded VOPs (N-VOPs) decode
    to no picture. Without the DivX user data, later VOPs of a packet are ignored, as FFmpeg does.
    """

    def __init__(self, extradata: Optional[bytes]):
        self.time_bits = _vol_time_increment_bits(extradata) if extradata else None
        self.packed = bool(extradata and self._divx_packed(extradata))
        self.kept: Optional[list[tuple[int, str, bool]]] = None

    @staticmethod
    def _divx_packed(data: bytes) -> Optional[bool]:
        """From DivX user data (FFmpeg: ``sscanf("DivX%dBuild%d%c")`` or ``("DivX%db%d%c")``):
        packed B-frames if the character after the build number is 'p'; None without DivX user data."""
        packed, at = None, data.find(_USER_DATA)
        while at >= 0:
            m = _DIVX.match(data, at + 4)
            if m:
                packed = m.group(1) == b"p"
            at = data.find(_USER_DATA, at + 4)
        return packed

    def feed(self, data: bytes) -> tuple[Optional[str], bool]:
        """``(type, own)`` of the picture decoding ``data`` yields (type None: no picture);
        ``own``: the VOP is the packet's own first one (not one kept from the previous packet)."""
        first_vop = data.find(_VOP)
        if first_vop != 0:  # headers before the first VOP (VOL, user data) may change the timing bits
            self.time_bits = _vol_time_increment_bits(data[:first_vop] if first_vop > 0 else data) or self.time_bits
        if b"DivX" in data:
            packed = self._divx_packed(data)
            self.packed = self.packed if packed is None else packed
        vops = _vops(data, self.time_bits)
        first_code = data.find(b"\x00\x00\x01")
        if self.kept is not None and first_code >= 0 and data[first_code + 3 : first_code + 4] == b"\xb0":
            self.kept = None  # FFmpeg: "Discarding excessive bitstream in packed xvid"
        if self.kept is not None:
            decoded, own, rest = self.kept[0], False, vops
        else:
            decoded, own, rest = (vops[0] if vops else None), True, vops[1:]
        self.kept = None
        if decoded is None or not decoded[2]:
            return None, own  # nothing decoded, or an N-VOP: FFmpeg returns before keeping anything
        if self.packed and rest and rest[0][1] in ("I", "B"):
            self.kept = rest
        return decoded[1], own


def picture_info_parser(codec: str, extradata: Optional[bytes]) -> Optional[Callable[[bytes], PictureInfo]]:
    """A function ``packet bytes -> (type, is_reference)`` for ``codec``, or None if unknown.

    ``type`` is ``"I"``, ``"P"``, ``"B"`` or None (unparsable); ``is_reference`` tells whether
    later pictures may predict from this one (MPEG-1/2/4: every I/P picture, no B picture).
    """
    if codec == "h264":
        size = (extradata[4] & 3) + 1 if extradata and len(extradata) > 4 and extradata[0] == 1 else None
        return lambda data: h264_picture_info(data, size)
    simple = {"mpeg4": mpeg4_picture_type, "mpeg1video": mpeg2_picture_type, "mpeg2video": mpeg2_picture_type,
              "h263": h263_picture_type, "h263p": h263_picture_type}
    if codec in simple:
        parse = simple[codec]

        def info(data: bytes) -> PictureInfo:
            kind = parse(data)
            return kind, (None if kind is None else kind != "B")

        return info
    return None
