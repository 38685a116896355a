"""Reading compressed video: I-frames, motion vectors, residuals (and optical flow in `flow`)."""

from .errors import VideoError
from .motion import warp
from .video import REPRESENTATIONS, CompressedVideo

__all__ = ["CompressedVideo", "VideoError", "warp", "REPRESENTATIONS"]
