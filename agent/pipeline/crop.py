"""Rotated square crops of detections and the affine maps in and out of them (pure numpy).

MediaPipe's face and hand pipelines (``DetectionsToRectsCalculator`` then
``RectTransformationCalculator``) crop each detection before the landmark model: the box is made
square on its long side and scaled (1.5x for faces), and rotated so that the line from keypoint
``a`` to keypoint ``b`` (the eyes for faces) lies at ``target_angle`` (0 = horizontal). A
:class:`CropRect` is that rectangle in frame pixels; :func:`crop_to_frame` is the 2x3 affine
from crop-input pixels to frame pixels and :func:`frame_to_crop` its inverse (what
``cv2.warpAffine`` takes); :func:`map_points` applies either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.errors import InputError


@dataclass(frozen=True)
class CropRect:
    """A square of side ``side`` pixels centred at ``(cx, cy)``, its x-axis at ``angle`` radians.

    Angles are in image coordinates (y down): ``angle > 0`` turns the crop's x-axis clockwise
    on screen. A point on the crop's x-axis at distance ``t`` from the centre is at
    ``(cx + t cos angle, cy + t sin angle)`` in the frame.
    """

    cx: float
    cy: float
    side: float
    angle: float = 0.0


def rect_for_detection(
    bbox: tuple[float, float, float, float],
    keypoints: Sequence[Sequence[float]],
    frame_wh: tuple[int, int],
    *,
    scale: float = 1.5,
    rotation_keypoints: tuple[int, int] | None = (0, 1),
    target_angle: float = 0.0,
) -> CropRect:
    """The crop of a detection: ``bbox``/``keypoints`` normalised to a ``frame_wh`` frame.

    The square is ``scale`` times the box's long side (in pixels). With ``rotation_keypoints``
    ``(a, b)`` and the detection carrying those keypoints, the crop turns so that ``a -> b``
    points along ``target_angle`` inside the crop (radians, counter-clockwise on screen as in
    MediaPipe: a palm's wrist -> middle finger at ``pi / 2`` is upright); otherwise it stays
    axis-aligned. The crop's angle is MediaPipe's rect ``rotation``.
    """
    w, h = frame_wh
    xmin, ymin, xmax, ymax = bbox
    if not (xmax > xmin and ymax > ymin) or scale <= 0:
        raise InputError(f"cannot crop the box {list(bbox)} scaled by {scale}")
    side = max((xmax - xmin) * w, (ymax - ymin) * h) * scale
    angle = 0.0
    if rotation_keypoints is not None and max(rotation_keypoints) < len(keypoints):
        a, b = keypoints[rotation_keypoints[0]], keypoints[rotation_keypoints[1]]
        dx, dy = (b[0] - a[0]) * w, (b[1] - a[1]) * h
        if dx or dy:
            angle = _normalise(math.atan2(dy, dx) + target_angle)
    return CropRect((xmin + xmax) / 2 * w, (ymin + ymax) / 2 * h, side, angle)


def _normalise(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def crop_to_frame(rect: CropRect, out_wh: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine taking pixel ``(u, v)`` of an ``out_wh`` crop to frame pixels.

    The crop's centre ``(W/2, H/2)`` lands on ``(cx, cy)``; its edges on the square's edges.
    """
    out_w, out_h = out_wh
    sx, sy = rect.side / out_w, rect.side / out_h
    c, s = math.cos(rect.angle), math.sin(rect.angle)
    linear = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
    shift = np.array([rect.cx, rect.cy]) - linear @ np.array([out_w / 2, out_h / 2])
    return np.hstack([linear, shift[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine (as ``cv2.invertAffineTransform``, without OpenCV)."""
    linear = np.asarray(matrix, dtype=np.float64)[:, :2]
    inverse = np.linalg.inv(linear)
    return np.hstack([inverse, (-inverse @ np.asarray(matrix, dtype=np.float64)[:, 2])[:, None]])


def frame_to_crop(rect: CropRect, out_wh: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine taking frame pixels into the crop (``cv2.warpAffine``'s matrix)."""
    return invert_affine(crop_to_frame(rect, out_wh))


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to an ``N x 2`` array of points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]
