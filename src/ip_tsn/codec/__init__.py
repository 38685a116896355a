"""Reading compressed video: I-frames, motion vectors, residuals (and optical flow in `flow`)."""

from .errors import VideoError
from .index import clear_index_cache
from .motion import warp
from .video import REPRESENTATIONS, CompressedVideo

__all__ = ["CompressedVideo", "VideoError", "warp", "REPRESENTATIONS", "clear_index_cache"]
