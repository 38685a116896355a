"""Atomic file writes, the one helper every writer uses: write a temporary file in the target's
folder, then rename it over the target (``os.replace``), so a reader sees the old file or the new
one, never half of one. Also the one file hash (:func:`sha256_file`) that results record of the
files they came from (checkpoints, cache shards). This module imports nothing from the package
(it sits at the bottom)."""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """An output folder that cannot be written: one line naming the setting, the folder and why."""


def check_output_dir(path: str | os.PathLike, setting: str) -> Path:
    """``path``, checked as a folder to write into before any work, making nothing: where it or its
    first existing parent is a file or not writable, :class:`OutputError` naming ``setting``."""
    path = Path(path)
    there = path.absolute()
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise OutputError(f"{setting}={path}: {there} is a file, not a folder")
    if not os.access(there, os.W_OK | os.X_OK):
        raise OutputError(f"{setting}={path}: {there} is not writable")
    return path


def temp_name(path: str | os.PathLike) -> Path:
    """The temporary name used for ``path``: ``.<name>.tmp-<pid>`` in the same folder (kept
    suffix-free of ``path``'s extension so muxers that guess the format need ``format=``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Delete the temporary files that killed earlier writers of ``path`` left (:func:`temp_name`'s
    ``.<name>.tmp-<pid>``, and ``<name>.tmp-*`` of older versions). Only for a path one writer
    owns at a time (a rank's cache shard, a run's checkpoint, one flow file): a concurrent writer's
    temporary file would go too."""
    path = Path(path)
    for pattern in (f".{glob.escape(path.name)}.tmp-*", f"{glob.escape(path.name)}.tmp-*"):
        for stale in path.parent.glob(pattern):
            with suppress(OSError):
                stale.unlink()


#: write errors that say the disk (or the user's share of it) is full: one line naming the file
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds,
    remove it otherwise (the target is untouched). A full disk, quota or file-size limit (:data:`FULL`)
    while writing is one :class:`OutputError` naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.errno not in FULL:
            raise
        raise OutputError(f"{path}: could not be written: {e.strerror} (the disk is full, or a quota or a file-size "
                          f"limit was reached); {'the file there is unchanged' if path.exists() else 'nothing written'}"
                          ) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
