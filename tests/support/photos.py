"""Real photos for the image tests and benchmarks: scikit-image's, as BGR frames (numpy only,
so the OpenCV-free paths can use them too)."""

from __future__ import annotations

import numpy as np
from skimage import data

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photo(name: str, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A scikit-image photo as a BGR frame of ``size`` (nearest-neighbour resize, numpy only)."""
    rgb = np.ascontiguousarray(getattr(data, name)())
    h, w = rgb.shape[:2]
    ys = (np.arange(size[1]) * h // size[1]).clip(0, h - 1)
    xs = (np.arange(size[0]) * w // size[0]).clip(0, w - 1)
    return np.ascontiguousarray(rgb[ys][:, xs][:, :, ::-1])
