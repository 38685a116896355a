"""The input modalities of the streams: channel counts and which channels hold x motion.

``rgb`` / ``iframe``: 3 (RGB); ``mv``: 2 (dx, dy); ``residual``: 3 (RGB); ``p``: 5 (mv then
residual); ``flow``: 2 * L (x_0, y_0, ..., x_{L-1}, y_{L-1}: stacked TV-L1 flow, L = flow_length).
"""

from __future__ import annotations

MODALITIES = ("rgb", "iframe", "mv", "residual", "p", "flow")


def check_modality(modality: str) -> str:
    """Return ``modality`` or raise ``ValueError`` listing the valid ones."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return modality


def num_channels(modality: str, flow_length: int = 5) -> int:
    """Number of input channels C of ``modality`` (``flow``: 2 * ``flow_length``)."""
    check_modality(modality)
    return {"rgb": 3, "iframe": 3, "mv": 2, "residual": 3, "p": 5, "flow": 2 * flow_length}[modality]


def x_channels(modality: str, flow_length: int = 5) -> tuple[int, ...]:
    """Channels holding a horizontal displacement: negated by a horizontal flip."""
    check_modality(modality)
    if modality in ("mv", "p"):
        return (0,)
    if modality == "flow":
        return tuple(range(0, 2 * flow_length, 2))
    return ()
