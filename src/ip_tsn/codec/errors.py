"""The one error every bad video raises."""

from __future__ import annotations

import os


class VideoError(ValueError):
    """A video could not be read: the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
