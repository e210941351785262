"""The pixel operations pre-processing needs, by OpenCV when it is installed, else by numpy.

OpenCV (the ``video`` extra) is optional on the device. :func:`backend` picks the implementation
once per process: ``opencv`` when ``cv2`` imports, else ``numpy``. ``EDGE_AGENT_OPENCV=off``
makes the agent behave as if OpenCV were not installed (tests run both paths in one venv);
``EDGE_AGENT_OPENCV=on`` requires it.

Both implementations take the same frames and return the same shapes and dtypes. They agree to
within rounding: the numpy bilinear resize and affine warp use float weights where OpenCV uses
11-bit fixed point (±1 grey level); integer decimation is a block mean in both
(docs/inference.md, "Pre-processing without OpenCV", gives the measured differences).
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any, Literal

import numpy as np

Backend = Literal["opencv", "numpy"]
ENV = "EDGE_AGENT_OPENCV"
_BGR_TO_GRAY = np.array([0.114, 0.587, 0.299], dtype=np.float32)


def opencv() -> ModuleType | None:
    """The ``cv2`` module when the agent may use it, else None (imported once)."""
    return _opencv(os.environ.get(ENV, "auto").strip().lower())


@functools.cache
def _opencv(setting: str) -> ModuleType | None:
    if setting in ("off", "0", "no", "false"):
        return None
    try:
        import cv2
    except ImportError:
        if setting in ("on", "1", "yes", "true"):
            raise
        return None
    # The loop pre-processes one small frame while the interpreter's threads hold the cores;
    # OpenCV's worker pool would only contend with them.
    cv2.setNumThreads(1)
    module: ModuleType = cv2
    return module


def backend() -> Backend:
    return "opencv" if opencv() is not None else "numpy"


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Shrink by exact integer decimation (area: block mean), then bilinear for the rest.

    OpenCV's ``INTER_AREA`` is fast only for integer factors (the general area path is ~10x
    slower), so the remaining factor below 2 is ``INTER_LINEAR``; numpy does the same.
    """
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    kx, ky = _decimation(w, width), _decimation(h, height)
    cv2 = opencv()
    if kx > 1 or ky > 1:
        decimate = _block_mean if cv2 is None else functools.partial(_decimate_cv, cv2)
        frame = decimate(frame, kx, ky)
        h, w = frame.shape[:2]
        if (w, h) == (width, height):
            return frame
    if cv2 is not None:
        out: np.ndarray = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        return out
    return _bilinear(frame, width, height)


def _decimate_cv(cv2: Any, frame: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """Block-mean decimation by OpenCV. ``INTER_AREA`` has a fast path only for equal factors
    (640x480 -> 320x480 takes it 1.3 ms, ~10x the rest of the resize); an exact halving by
    ``INTER_LINEAR`` samples half-way between two pixels, i.e. their mean (±1 by rounding), so
    unequal factors halve by ``INTER_LINEAR`` while they are even (0.24 ms for the same step)."""
    while kx != ky and (kx % 2 == 0 or ky % 2 == 0):
        hx, hy = 2 - kx % 2, 2 - ky % 2
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (w // hx, h // hy), interpolation=cv2.INTER_LINEAR)
        kx, ky = kx // hx, ky // hy
    if kx > 1 or ky > 1:
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (w // kx, h // ky), interpolation=cv2.INTER_AREA)
    return frame


def _decimation(src: int, dst: int) -> int:
    """The largest integer factor ``k <= src // dst`` that divides ``src`` exactly."""
    for k in range(src // dst, 1, -1):
        if src % k == 0:
            return k
    return 1


def _block_mean(frame: np.ndarray, kx: int, ky: int) -> np.ndarray:
    """The rounded mean of each ``kx`` × ``ky`` block: one strided add per block offset."""
    count = kx * ky
    total = np.zeros(
        (frame.shape[0] // ky, frame.shape[1] // kx, *frame.shape[2:]),
        dtype=np.uint16 if count <= 257 else np.uint32,
    )
    for dy in range(ky):
        for dx in range(kx):
            total += frame[dy::ky, dx::kx]
    total += count // 2
    total //= count
    return total.astype(np.uint8)


def _axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre bilinear taps along one axis: (index0, index1, weight of index1)."""
    pos = (np.arange(dst, dtype=np.float32) + 0.5) * (src / dst) - 0.5
    pos = np.clip(pos, 0.0, src - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


#: Output rows per bilinear strip: the float temporaries stay ~100 KB (under malloc's mmap
#: threshold, reused) instead of whole float images (~3 MB for 224×224×3, kept in the RSS).
_STRIP_ROWS = 32


def _bilinear(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = frame.shape[:2]
    y0, y1, wy = _axis(h, height)
    x0, x1, wx = _axis(w, width)
    if frame.ndim == 3:
        wx, wy = wx[:, None], wy[:, None, None]
    else:
        wy = wy[:, None]
    out = np.empty((height, width, *frame.shape[2:]), dtype=np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        _bilinear_strip(frame, (y0[rows], y1[rows], wy[rows]), (x0, x1, wx), out[rows])
    return out


def _bilinear_strip(
    frame: np.ndarray,
    ys: tuple[np.ndarray, np.ndarray, np.ndarray],
    xs: tuple[np.ndarray, np.ndarray, np.ndarray],
    out: np.ndarray,
) -> None:
    """Rows ``ys`` of the output into ``out``: rows first, then columns, in place."""
    (y0, y1, wy), (x0, x1, wx) = ys, xs
    upper, lower = frame[y0].astype(np.float32), frame[y1].astype(np.float32)
    lower -= upper
    lower *= wy
    upper += lower
    left, right = upper[:, x0], upper[:, x1]
    right -= left
    right *= wx
    left += right
    np.rint(left, out=left)
    out[...] = left


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR to gray with the ITU-R BT.601 weights (as ``cv2.COLOR_BGR2GRAY``)."""
    cv2 = opencv()
    if cv2 is not None:
        out: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return out
    gray: np.ndarray = np.rint(image.astype(np.float32) @ _BGR_TO_GRAY).astype(np.uint8)
    return gray


def gray_to_bgr(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2)


def swap_rb(image: np.ndarray) -> np.ndarray:
    """BGR to RGB (or back), contiguous."""
    cv2 = opencv()
    if cv2 is not None:
        out: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return out
    return np.ascontiguousarray(image[:, :, ::-1])


def opencv_lut(lut: np.ndarray, channels: int) -> Any:
    """The ``(k, 256)`` table in ``cv2.LUT`` layout, or None when OpenCV cannot apply it (or is
    not used); then :func:`apply_lut` takes the numpy path."""
    cv2 = opencv()
    if cv2 is None:
        return None
    table = lut[0] if lut.shape[0] == 1 else lut.T.reshape(256, 1, channels)
    probe = np.zeros((1, 1, channels) if lut.shape[0] > 1 else (1, 1), dtype=np.uint8)
    try:
        out = cv2.LUT(probe, np.ascontiguousarray(table))
    except cv2.error:
        return None
    return np.ascontiguousarray(table) if out.dtype == lut.dtype else None


def apply_lut(image: np.ndarray, lut: np.ndarray, cv_lut: Any) -> np.ndarray:
    """``lut[channel][pixel]`` for every pixel: by ``cv2.LUT`` when ``cv_lut`` is set."""
    out: np.ndarray
    if cv_lut is not None:
        cv2 = opencv()
        assert cv2 is not None
        out = cv2.LUT(image, cv_lut)
    elif lut.shape[0] == 1:
        out = lut[0][image]  # fancy indexing casts the uint8 indices in buffered chunks
    else:  # (take() would first make a whole intp copy of the image: 8 bytes a pixel)
        out = np.empty(image.shape, dtype=lut.dtype)
        for c in range(lut.shape[0]):
            out[..., c] = lut[c][image[..., c]]
    return out


def warp_affine(frame: np.ndarray, matrix: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """``out[v, u] = frame[matrix^-1 ...]``: ``matrix`` maps frame pixels to output pixels (as
    ``cv2.warpAffine``), bilinear, zero outside the frame."""
    cv2 = opencv()
    if cv2 is not None:
        out: np.ndarray = cv2.warpAffine(
            frame, matrix, out_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        return out
    return _warp_numpy(frame, np.asarray(matrix, dtype=np.float64), out_wh)


def _warp_numpy(frame: np.ndarray, matrix: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    linear = np.linalg.inv(matrix[:, :2])
    shift = -linear @ matrix[:, 2]
    out_w, out_h = out_wh
    u, v = np.meshgrid(np.arange(out_w, dtype=np.float64), np.arange(out_h, dtype=np.float64))
    x = linear[0, 0] * u + linear[0, 1] * v + shift[0]
    y = linear[1, 0] * u + linear[1, 1] * v + shift[1]
    h, w = frame.shape[:2]
    padded = np.zeros((h + 2, w + 2, *frame.shape[2:]), dtype=np.float32)
    padded[1:-1, 1:-1] = frame
    # Pixel (x, y) of the frame is (x + 1, y + 1) of the zero-bordered copy.
    x = np.clip(x + 1.0, 0.0, w + 1.0)
    y = np.clip(y + 1.0, 0.0, h + 1.0)
    x0 = np.minimum(np.floor(x).astype(np.intp), w)
    y0 = np.minimum(np.floor(y).astype(np.intp), h)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    if frame.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = padded[y0, x0] * (1 - fx) + padded[y0, x0 + 1] * fx
    bottom = padded[y0 + 1, x0] * (1 - fx) + padded[y0 + 1, x0 + 1] * fx
    warped: np.ndarray = np.rint(top * (1 - fy) + bottom * fy).astype(np.uint8)
    return warped
