"""Real videos and images for the source tests: scikit-learn digits, upscaled."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from sklearn.datasets import load_digits


def digit_frames(count: int, side: int = 64) -> list[np.ndarray]:
    """``count`` BGR uint8 frames of real handwritten digits, ``side`` x ``side``."""
    images = load_digits().images[:count]
    frames = []
    for image in images:
        gray = np.rint(image * (255.0 / 16.0)).astype(np.uint8)
        big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_NEAREST)
        frames.append(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
