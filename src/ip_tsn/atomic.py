"""Atomic file writes, the one helper every writer uses: write a temporary file in the target's
folder, then rename it over the target (``os.replace``), so a reader sees the old file or the new
one, never half of one. Also the one file hash (:func:`sha256_file`) that results record of the
files they came from (checkpoints, cache shards), the lock a command holds on the folder it
writes (:func:`hold_folder`), and the JSON reader that names a broken file in one line
(:func:`read_json`). This module imports nothing from the package (it sits at the bottom)."""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import socket
import sys
import time
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


class BrokenFileError(ValueError):
    """A file the command reads that is not what wrote it (not JSON, not UTF-8): one line naming it."""


def read_json(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The JSON object in ``path``, which holds ``what`` (e.g. ``"the teacher-target report of ip-tsn
    cache"``); :class:`BrokenFileError` naming the file, what it should hold and why it does not
    (broken JSON with its line and column, bytes that are not UTF-8, a value that is no object) in
    place of a traceback."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        why = f"not JSON ({e})" if isinstance(e, json.JSONDecodeError) else "not a text file (not UTF-8)"
        raise BrokenFileError(f"{path}: {why}; it should hold {what}") from None
    if not isinstance(value, dict):
        raise BrokenFileError(f"{path}: a JSON {type(value).__name__}, not an object; it should hold {what}")
    return value


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


LOCK_NAME = ".ip-tsn.lock"  # in a folder a command writes (a run, a teacher cache); never removed


@contextmanager
def hold_folder(folder: str | os.PathLike, setting: str, shared: bool = False) -> Iterator[None]:
    """Hold ``folder``'s lock (``<folder>/.ip-tsn.lock``, ``flock``) for the block: exclusive for the
    command that writes the folder (a training's, a test's or a cache's process of global rank zero),
    ``shared`` for one that reads it while it must not change (a student reading a teacher cache).
    Another command holding it is one :class:`OutputError` naming the folder and that command (its
    words, pid, host and start), before anything is written. The lock goes with its holder's process,
    so a killed job leaves none behind. Where no lock can be taken (a file system without locks, such
    as Lustre mounted without ``-o flock``; a read-only folder) the block runs unlocked."""
    folder = Path(folder)
    try:
        if not shared:
            folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        fd = None
    try:
        if fd is not None and _held_elsewhere(fd, shared):
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            raise OutputError(f"{setting}={folder}: in use by another command ({holder or 'its holder is starting'}); "
                              f"wait for it to end, or use another {setting}")
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _held_elsewhere(fd: int, shared: bool) -> bool:
    """Take the lock on ``fd`` without waiting and record this command as its holder; True where
    another process holds it. Where no lock can be taken at all, False: the caller runs unlocked."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    words = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    with suppress(OSError):  # who holds it, for the line of a command refused (a full disk: unsaid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{words[:300]}, pid {os.getpid()} on {socket.gethostname()}, since {since}\n".encode(), 0)
    return False
