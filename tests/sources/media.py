"""Real videos and images for the source tests: scikit-learn digits, upscaled."""

from __future__ import annotations

import numpy as np

from convert.samples import digit_frames as _digit_frames
from convert.samples import write_video

__all__ = ["digit_frames", "write_video"]


def digit_frames(count: int, side: int = 64) -> list[np.ndarray]:
    """``count`` BGR uint8 frames of real handwritten digits, ``side`` x ``side``."""
    return _digit_frames(count, side)[0]
