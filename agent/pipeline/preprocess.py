"""Camera frames and sensor windows to input tensors (numpy, and OpenCV when installed).

A :class:`Preprocessor` is built once per model: it precomputes the target size, the colour
conversion and a 256-entry lookup table per channel that fuses normalisation
(``(pixel - mean) / std``), quantization (``round(x / scale) + zero_point``, clipped) and the cast
to the input dtype. Per frame it only resizes (area when shrinking), converts colour on the
already-small image, and applies the table -- one pass, no float intermediate image (and no pass
at all when the table is the identity on ``uint8``). The pixel work is
:mod:`agent.pipeline.imageops`: OpenCV when installed, else numpy.
"""

from __future__ import annotations

import numpy as np

from agent.errors import InputError
from agent.pipeline import imageops
from agent.pipeline.geometry import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    Letterbox,
    letterbox_geometry,
    stretch_geometry,
    validate_frame,
)
from agent.pipeline.tensors import quantize
from agent.schema.meta import ModelMetadata, TensorSpec


class Preprocessor:
    """Turns uint8 BGR/gray frames into the model's first input tensor (batch of one)."""

    def __init__(
        self,
        metadata: ModelMetadata,
        *,
        pad_value: int = 0,
        max_side: int = MAX_FRAME_SIDE,
        max_pixels: int = MAX_FRAME_PIXELS,
    ) -> None:
        self.spec = metadata.inputs[0]
        shape = self.spec.shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
            raise InputError(
                f"image models need an input of shape [1, H, W, 1|3]; got {list(shape)}"
            )
        self.height, self.width, self.channels = shape[1], shape[2], shape[3]
        pre = metadata.preprocess
        self.color = "gray" if self.channels == 1 else pre.color
        self.letterbox = pre.resize == "letterbox"
        self.pad_value = pad_value
        self._max_side = max_side
        self._max_pixels = max_pixels
        self._lut = _build_lut(self.spec, pre.mean, pre.std, self.channels)
        self._identity = self._lut.dtype == np.uint8 and bool(
            np.all(self._lut == np.arange(256, dtype=np.uint8))
        )
        self._cv_lut = imageops.opencv_lut(self._lut, self.channels)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Return ``(input tensor of spec shape and dtype, geometry to map boxes back)``."""
        frame = validate_frame(frame, self._max_side, self._max_pixels)
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        h, w = frame.shape[:2]
        if self.letterbox:
            geometry = letterbox_geometry(w, h, self.width, self.height)
            image = self._letterboxed(frame, geometry)
        else:
            geometry = stretch_geometry(w, h, self.width, self.height)
            image = imageops.resize(frame, self.width, self.height)
        image = self._convert_color(image)
        return self._apply_lut(image), geometry

    def _letterboxed(self, frame: np.ndarray, g: Letterbox) -> np.ndarray:
        new_w, new_h = round(g.scale_x * g.src_w), round(g.scale_y * g.src_h)
        resized = imageops.resize(frame, new_w, new_h)
        canvas = np.full(
            (self.height, self.width, *resized.shape[2:]), self.pad_value, dtype=np.uint8
        )
        canvas[g.pad_y : g.pad_y + new_h, g.pad_x : g.pad_x + new_w] = resized
        return canvas

    def _convert_color(self, image: np.ndarray) -> np.ndarray:
        gray_in = image.ndim == 2
        if self.color == "gray":
            return image if gray_in else imageops.to_gray(image)
        if gray_in:
            return imageops.gray_to_bgr(image)
        if self.color == "rgb":
            return imageops.swap_rb(image)
        return image

    def _apply_lut(self, image: np.ndarray) -> np.ndarray:
        if self._identity:
            return np.ascontiguousarray(image).reshape(self.spec.shape)
        out = imageops.apply_lut(image, self._lut, self._cv_lut)
        return out.reshape(self.spec.shape)


def _build_lut(
    spec: TensorSpec, mean: tuple[float, ...], std: tuple[float, ...], channels: int
) -> np.ndarray:
    """``(k, 256)`` table in the input dtype; ``k`` is 1 when all channels share mean/std."""
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise InputError(
                f"preprocess.{name} has {len(values)} values; the model has {channels} channel(s)"
            )
    shared = len(set(mean)) == 1 and len(set(std)) == 1
    count = 1 if shared else channels
    pixels = np.arange(256, dtype=np.float64)
    rows = []
    for c in range(count):
        m = mean[c] if len(mean) > 1 else mean[0]
        s = std[c] if len(std) > 1 else std[0]
        rows.append(quantize(((pixels - m) / s).astype(np.float32), spec))
    return np.stack(rows)
