"""The fused model as a file: which stream networks, with which fusion weights and class names.

``ip-tsn fuse`` writes ``<fusion run>/model.json`` (each fused stream's checkpoint and weight);
``ip-tsn export`` writes ``<out>/fusion.json`` (each stream's TorchScript / ONNX file, weight and
preprocessing). Both have one schema::

    {"format": "ip-tsn-fused-model", "class_names": [...] | null,
     "streams": [{"name": "I-stream", "weight": 2.0, "checkpoint": "../istream/checkpoints/best.ckpt",
                  "torchscript": null, "onnx": null, "preprocess": null | {...},
                  "checkpoint_sha256": null | "..."}, ...]}

``preprocess`` is the stream's :meth:`ip_tsn.data.preprocess.Preprocess.to_dict` (``model.json``: a
copy of its checkpoint's; a checkpoint, when given, is what predict reads); reading the file checks
it with :meth:`~ip_tsn.data.preprocess.Preprocess.from_dict`. File paths are stored relative to the
JSON file's folder (the tree can move) and read back as absolute paths. ``checkpoint_sha256``
(``model.json``): the checkpoint's hash when its scores were made, from which the weights were
searched; a checkpoint written again since (a new training) is refused on reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ip_tsn.atomic import sha256_file, write_json_atomic
from ip_tsn.data.preprocess import Preprocess

FORMAT = "ip-tsn-fused-model"
FILE_KEYS = ("checkpoint", "torchscript", "onnx")
FILE_NAMES = ("model.json", "fusion.json")  # what a folder given to read_fused_model may hold


@dataclass(frozen=True)
class StreamEntry:
    """One fused stream: ``name``, fusion ``weight`` and at least one network file."""

    name: str
    weight: float
    checkpoint: str | None = None
    torchscript: str | None = None
    onnx: str | None = None
    preprocess: dict[str, Any] | None = field(default=None, hash=False)
    checkpoint_sha256: str | None = None


@dataclass(frozen=True)
class FusedSpec:
    """The streams of a fused model file (paths absolute) and its class names (or None)."""

    streams: list[StreamEntry]
    class_names: list[str] | None
    source: str


def _relocate(entry: StreamEntry, fn) -> StreamEntry:
    return replace(entry, **{k: fn(getattr(entry, k)) for k in FILE_KEYS if getattr(entry, k)})


def write_fused_model(path: str | os.PathLike, streams: Sequence[StreamEntry],
                      class_names: Sequence[str] | None) -> Path:
    """Write the fused model file ``path`` (atomic); returns ``path``."""
    path = Path(path)
    folder = path.parent.resolve()
    rel = [_relocate(s, lambda p: os.path.relpath(os.path.abspath(p), folder)) for s in streams]
    write_json_atomic(path, {"format": FORMAT, "class_names": list(class_names) if class_names else None,
                             "streams": [asdict(s) for s in rel]})
    return path


def read_fused_model(path: str | os.PathLike) -> FusedSpec:
    """Read a file written by :func:`write_fused_model`, or the ``model.json`` / ``fusion.json``
    in the folder ``path``. Raises ``ValueError`` naming the file when it is not one."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in FILE_NAMES if (path / n).is_file()]
        if not found:
            raise ValueError(f"{path}: no {' or '.join(FILE_NAMES)} in this folder (written by "
                             "`ip-tsn fuse` / `ip-tsn export`)")
        path = found[0]
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("streams"):
        raise ValueError(f"{path}: not a fused model file (format {FORMAT!r} with streams)")
    folder = path.parent.resolve()
    streams = []
    for item in data["streams"]:
        entry = StreamEntry(**{k: item.get(k) for k in StreamEntry.__dataclass_fields__})
        if not any(getattr(entry, k) for k in FILE_KEYS):
            raise ValueError(f"{path}: stream {entry.name!r} names no network file ({FILE_KEYS})")
        if entry.preprocess is not None:
            Preprocess.from_dict(entry.preprocess, f"{path}: stream {entry.name!r}")
        entry = _relocate(entry, lambda p: os.path.normpath(folder / p))
        if entry.checkpoint_sha256 and os.path.isfile(entry.checkpoint or "") and \
                sha256_file(entry.checkpoint) != entry.checkpoint_sha256:
            raise ValueError(f"{path}: stream {entry.name!r} was fused from the scores of an earlier {entry.checkpoint} "
                             "(it was written again since: a new training); test it and run ip-tsn fuse again")
        streams.append(entry)
    return FusedSpec(streams, data.get("class_names"), str(path))
