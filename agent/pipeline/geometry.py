"""Frame checks and placement geometry (pure numpy; no OpenCV, so sensor-only agents skip it).

:func:`validate_frame` caps a frame before any pixel work; :class:`Letterbox` records how a frame
was placed in the model input so that post-processing can map boxes back to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.errors import InputError

MAX_FRAME_SIDE = 8192
MAX_FRAME_PIXELS = 40_000_000


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed in the model input: ``model_px = src_px * scale + pad``.

    For a stretch resize ``scale_x != scale_y`` and the pads are zero. :meth:`to_frame` maps a
    box normalised to the model input back to coordinates normalised to the original frame.
    """

    src_w: int
    src_h: int
    dst_w: int
    dst_h: int
    scale_x: float
    scale_y: float
    pad_x: int = 0
    pad_y: int = 0

    def to_frame(
        self, xmin: float, ymin: float, xmax: float, ymax: float
    ) -> tuple[float, float, float, float]:
        """Map a model-normalised box to a frame-normalised box, clipped to ``[0, 1]``."""
        fx = self.dst_w / (self.scale_x * self.src_w)
        fy = self.dst_h / (self.scale_y * self.src_h)
        ox = self.pad_x / (self.scale_x * self.src_w)
        oy = self.pad_y / (self.scale_y * self.src_h)
        return (
            _clip01(xmin * fx - ox),
            _clip01(ymin * fy - oy),
            _clip01(xmax * fx - ox),
            _clip01(ymax * fy - oy),
        )

    def point_to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Map a model-normalised point to a frame-normalised point, clipped to ``[0, 1]``."""
        fx, fy, ox, oy = self._factors()
        return _clip01(x * fx - ox), _clip01(y * fy - oy)

    def points_to_frame(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`point_to_frame` for arrays of points."""
        fx, fy, ox, oy = self._factors()
        return np.clip(xs * fx - ox, 0.0, 1.0), np.clip(ys * fy - oy, 0.0, 1.0)

    def _factors(self) -> tuple[float, float, float, float]:
        return (
            self.dst_w / (self.scale_x * self.src_w),
            self.dst_h / (self.scale_y * self.src_h),
            self.pad_x / (self.scale_x * self.src_w),
            self.pad_y / (self.scale_y * self.src_h),
        )

    def valid_region(self) -> tuple[int, int, int, int]:
        """The ``(x0, y0, x1, y1)`` pixels of the model input covered by the frame (no padding)."""
        x1 = min(self.dst_w, self.pad_x + round(self.src_w * self.scale_x))
        y1 = min(self.dst_h, self.pad_y + round(self.src_h * self.scale_y))
        return self.pad_x, self.pad_y, max(self.pad_x + 1, x1), max(self.pad_y + 1, y1)


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def letterbox_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
    """Keep-aspect placement of a ``src`` frame centred in a ``dst`` input."""
    scale = min(dst_w / src_w, dst_h / src_h)
    new_w = max(1, min(dst_w, round(src_w * scale)))
    new_h = max(1, min(dst_h, round(src_h * scale)))
    return Letterbox(
        src_w,
        src_h,
        dst_w,
        dst_h,
        scale_x=new_w / src_w,
        scale_y=new_h / src_h,
        pad_x=(dst_w - new_w) // 2,
        pad_y=(dst_h - new_h) // 2,
    )


def stretch_geometry(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Letterbox:
    return Letterbox(src_w, src_h, dst_w, dst_h, dst_w / src_w, dst_h / src_h)


def validate_frame(
    frame: object, max_side: int = MAX_FRAME_SIDE, max_pixels: int = MAX_FRAME_PIXELS
) -> np.ndarray:
    """Check a frame is ``uint8`` ``HxW`` or ``HxWx{1,3}`` within the size caps; return it."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3)):
        raise InputError(f"frame must be HxW gray or HxWx3 BGR, got shape {list(frame.shape)}")
    h, w = frame.shape[:2]
    if h == 0 or w == 0 or h > max_side or w > max_side or h * w > max_pixels:
        raise InputError(f"frame size {w}x{h} outside 1..{max_side} per side / {max_pixels} pixels")
    return frame
