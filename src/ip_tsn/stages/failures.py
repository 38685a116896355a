"""What a command's failure was, read from the exception that stopped it: torch out of memory,
a DataLoader worker out of shared memory or killed by a signal. The CLI prints each as one line
naming the setting to change (:data:`BATCH_KEYS`). Standard library only: imported when a command fails."""

from __future__ import annotations

import os
import re
import sys

#: the batch size that sets a command's memory
BATCH_KEYS = {"fit": "data.batch_size", "test": "data.test_batch_size", "cache": "data.predict_batch_size"}


def out_of_memory(error: BaseException) -> str | None:
    """What ran out, where ``error`` is torch's out-of-memory error (CUDA's ``OutOfMemoryError``, the
    CPU allocator's ``can't allocate memory``), else None: a traceback from inside torch until 2026-12-07."""
    torch = sys.modules.get("torch")  # not loaded: not torch's error (the config check never loads it)
    text = str(error)
    if torch is None:
        return None
    if isinstance(error, torch.OutOfMemoryError) or "DefaultCPUAllocator: can't allocate memory" in text:
        found = re.search(r"(CUDA out of memory\. Tried to allocate \S+ \S+?)[ .(]|(can't allocate memory: you tried "
                          r"to allocate \d+ bytes)", text)
        return (found[1] or found[2]) if found else text.strip().splitlines()[0][:200]
    return None


def shared_memory(error: BaseException) -> str | None:
    """What failed, where a DataLoader worker could not hand its batch over in shared memory
    (``/dev/shm``; torch's ``unable to allocate shared memory(shm) for file </torch_...>``, ``unable
    to resize / write to file``, ..., raised in the worker, or the bus error of a worker that wrote
    past what the tmpfs could hold), else None: a traceback from inside torch until 2026-12-07."""
    text = str(error)
    if not isinstance(error, RuntimeError) or "DataLoader worker" not in text:
        return None
    found = re.search(r"unable to (?:allocate shared memory|resize file|write to file|open shared memory object|mmap)"
                      r"[^\n]*", text)
    if found:
        return found[0].strip()
    if text.startswith("DataLoader worker (pid") and "Bus error" in text:
        return text.split(".", 1)[0]
    return None


def shm_free() -> str:
    """``/dev/shm: 12 MB free of 64 MB`` (or that it is not there)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return "no /dev/shm"
    return f"/dev/shm: {st.f_bavail * st.f_frsize / 2**20:.0f} MB free of {st.f_blocks * st.f_frsize / 2**20:.0f} MB"


def worker_killed(error: BaseException) -> bool:
    """A DataLoader worker killed by a signal (torch: ``DataLoader worker (pid N) is killed by signal:
    Killed.``, or ``... exited unexpectedly``): a traceback from inside torch until 2026-12-07."""
    text = str(error)
    return isinstance(error, RuntimeError) and text.startswith("DataLoader worker (pid") and (
        "killed by signal" in text or "exited unexpectedly" in text)


__all__ = ["BATCH_KEYS", "out_of_memory", "shared_memory", "shm_free", "worker_killed"]
