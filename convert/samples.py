"""Sample media made from real data that ships in packages (no downloads).

Used by ``make demo``, the benchmarks and the tests: scikit-learn's handwritten digits rendered
as camera frames, and a video file of them written with OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def digit_frames(count: int, side: int = 64, start: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` BGR uint8 frames of real handwritten digits (``side`` x ``side``) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    total = len(digits.images)
    indices = [(start + i) % total for i in range(count)]
    frames = []
    for index in indices:
        gray = np.rint(digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
        big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_NEAREST)
        frames.append(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    return frames, digits.target[indices].astype(np.int64)


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write ``frames`` as an MJPG AVI (decodable by every OpenCV build)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
