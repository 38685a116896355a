"""``Preprocess``: one frozen, typed description of a stream's preprocessing.

Built once from the config (the DataModule's arguments, :meth:`Preprocess.from_hparams`), it is
what the datasets read (``VideoDataModule.preprocess``), what every checkpoint stores
(``checkpoint["preprocess"]``, :meth:`to_dict`) and what ``fusion.json`` / ``model.json`` hold per
stream; the test protocol, ``ip-tsn predict`` and ``ip-tsn export`` read it back with
:meth:`from_dict`. The defaults here are the only ones (``VideoDataModule``'s signature uses them).

Fields: ``modality`` (``rgb``, ``iframe``, ``mv``, ``residual``, ``p``, ``flow``),
``num_segments`` (K in training and validation), ``crop_size``, ``scale_size`` (shorter side
before cropping; None: as decoded), ``test_segments`` x ``test_crops`` (1, 3 or 10: the test
protocol), ``flow_length`` (L: flow stack of 2L channels), ``accumulate`` (motion vectors and
residuals back to the GOP's I-frame), ``flip`` (random flips in training, mirrored test views),
``train_views`` (the fixed training views of distillation, 1, 3 or 5; None: random crops),
``reconstruct`` (where a motion stream's inputs are rebuilt: ``cpu`` in the DataLoader workers, or
``device``: workers only decode, the batch's device rebuilds them, the same tensors),
``decode_downscale`` (huge videos decoded at 1/2, 1/4 or 1/8 of their size, never below
``scale_size``: ``codec.CompressedVideo(min_side=...)``).
``in_channels`` (C, derived from modality and flow length) is written by :meth:`to_dict` too, for
readers of the file outside Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ip_tsn.settings import setting

from .modalities import check_modality, num_channels

DERIVED_KEYS = ("in_channels",)  # written by to_dict, checked (not stored) by from_dict
RECONSTRUCT = ("cpu", "device")
DEVICE_MODALITIES = ("mv", "residual", "p")  # the motion streams, whose inputs the device can rebuild


def check_reconstruct(reconstruct: str, modality: str) -> None:
    """``ValueError`` unless ``reconstruct`` is ``cpu``, or ``device`` for a motion modality."""
    if reconstruct not in RECONSTRUCT:
        raise ValueError(f"reconstruct must be one of {RECONSTRUCT}, got {reconstruct!r}")
    if reconstruct == "device" and modality not in DEVICE_MODALITIES:
        raise ValueError(f"reconstruct='device' rebuilds motion vectors and residuals ({', '.join(DEVICE_MODALITIES)}); "
                         f"modality {modality!r} has nothing to rebuild: use reconstruct='cpu'")


@dataclass(frozen=True)
class Preprocess:
    """How one stream turns a video into its network's input (module docstring)."""

    modality: str = setting("rgb", "rgb, iframe, mv, residual, p (mv + residual), flow")
    num_segments: int = setting(3, "K: TSN segments in training and validation")
    crop_size: int = setting(224, "network input size (square crop)")
    scale_size: int | None = setting(256, "shorter side before cropping (null: as decoded)")
    test_segments: int = setting(25, "segments of the test protocol")
    test_crops: int = setting(10, "crops of the test protocol: 1, 3 or 10")
    flow_length: int = setting(5, "L: a flow stack has 2L channels")
    accumulate: bool = setting(True, "motion vectors and residuals traced back to the GOP's I-frame (CoViAR)")
    flip: bool = setting(True, "random horizontal flips in training, mirrored test views")
    train_views: int | None = setting(None, "fixed training views (1, 3 or 5; distillation needs them); null: random crops")
    reconstruct: str = setting("cpu", "where P inputs are rebuilt: cpu (DataLoader workers) or device")
    decode_downscale: bool = setting(True, "decode videos at least 2x scale_size on the shorter side at 1/2, 1/4 "
                                           "or 1/8 size, never below scale_size (8K costs what 1K does); "
                                           "false: always full size")

    def __post_init__(self) -> None:
        for name in ("num_segments", "crop_size", "test_segments", "flow_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scale_size is not None and self.scale_size < self.crop_size:
            raise ValueError(f"scale_size ({self.scale_size}) must be >= crop_size ({self.crop_size}), or null")
        from .transforms import check_crops, check_views  # OpenCV and torch: loaded when a Preprocess is made

        check_modality(self.modality)
        check_crops(self.test_crops, self.flip)
        check_views(self.train_views)
        check_reconstruct(self.reconstruct, self.modality)

    @property
    def in_channels(self) -> int:
        """Input channels C of the modality (flow: 2 * flow_length)."""
        return num_channels(self.modality, self.flow_length)

    def reader_kwargs(self) -> dict[str, Any]:
        """What ``StreamDataset`` / ``GridDataset`` take for reading frames: modality, crop_size,
        scale_size, flow_length, accumulate, decode_downscale."""
        return {"modality": self.modality, "crop_size": self.crop_size, "scale_size": self.scale_size,
                "flow_length": self.flow_length, "accumulate": self.accumulate,
                "decode_downscale": self.decode_downscale}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``weights_only`` checkpoints, JSON): every field and ``in_channels``."""
        return {**asdict(self), "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "preprocess") -> "Preprocess":
        """Back from :meth:`to_dict`; missing keys take the defaults (older files). Raises
        ``ValueError`` naming ``source``: unknown keys (named), a value the fields refuse
        (modality, crops), or an ``in_channels`` that does not fit the modality."""
        unknown = sorted(set(data) - set(cls.keys()) - set(DERIVED_KEYS))
        if unknown:
            raise ValueError(f"{source}: unknown preprocessing key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(cls.keys())}")
        try:
            pre = cls(**{k: data[k] for k in cls.keys() if k in data})
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
        if data.get("in_channels") is not None and int(data["in_channels"]) != pre.in_channels:
            raise ValueError(f"{source}: in_channels={data['in_channels']} does not fit modality "
                             f"{pre.modality!r} (flow_length {pre.flow_length}): {pre.in_channels} channels")
        return pre

    @classmethod
    def from_hparams(cls, hparams: Mapping[str, Any]) -> "Preprocess":
        """From the DataModule's arguments (``VideoDataModule.hparams``, or a checkpoint's
        ``datamodule_hyper_parameters``): its preprocessing keys, the rest ignored; missing keys
        take the defaults."""
        return cls(**{k: hparams[k] for k in cls.keys() if k in hparams})
