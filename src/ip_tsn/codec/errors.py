"""The one error every bad video raises, and how FFmpeg's own reason is worded in it."""

from __future__ import annotations

import os


class VideoError(ValueError):
    """A video could not be read: the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's words for a PyAV error (``Invalid data found when processing input``), without the
    errno number and the file name PyAV adds: the :class:`VideoError` names the file already."""
    return getattr(error, "strerror", None) or str(error)
