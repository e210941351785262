"""Real Motion-JPEG bytes for the OpenCV-free source tests: scikit-image photos as JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simplejpeg

from tests.support.photos import PHOTOS, photo


def photo_jpegs(count: int, size: tuple[int, int] = (640, 480), quality: int = 85) -> list[bytes]:
    """``count`` JPEGs of the four photos in turn, each shifted so that no two are equal."""
    out = []
    for i in range(count):
        frame = np.roll(photo(PHOTOS[i % len(PHOTOS)], size), i * 3, axis=1)
        out.append(simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality, "BGR"))
    return out


def write_mjpeg(path: Path, jpegs: list[bytes]) -> Path:
    """A raw MJPEG file: the JPEGs back to back (as ``ffmpeg -f mjpeg`` writes)."""
    path.write_bytes(b"".join(jpegs))
    return path


def write_avi(path: Path, jpegs: list[bytes], fps: float, size: tuple[int, int]) -> Path:
    """An AVI/MJPEG file written by OpenCV's own AVI muxer (the dev venv has the video extra)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for data in jpegs:
        writer.write(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    writer.release()
    return path
