"""JPEG decoded at the size the model needs: libjpeg-turbo's scaled IDCT (1/2, 1/4, 1/8).

Decoding a 640×480 JPEG at 320×240 costs less than a full decode and leaves a smaller image to
resize; decoding straight to gray skips the chroma conversion. The scale comes from
:func:`~agent.sources.base.jpeg_reduction`, so the result still covers the model input.

Two decoders, both libjpeg-turbo: OpenCV's ``imdecode`` when OpenCV is used
(:func:`agent.pipeline.imageops.opencv`), else ``simplejpeg`` (in the ``device`` extra, 2 MB
installed). docs/benchmarks.md "JPEG decoding" compares them with PyTurboJPEG and Pillow.
"""

from __future__ import annotations

import numpy as np

from agent.pipeline import imageops
from agent.sources.base import FrameNeed, jpeg_reduction

_CV_FLAGS = {
    (1, False): "IMREAD_COLOR",
    (2, False): "IMREAD_REDUCED_COLOR_2",
    (4, False): "IMREAD_REDUCED_COLOR_4",
    (8, False): "IMREAD_REDUCED_COLOR_8",
    (1, True): "IMREAD_GRAYSCALE",
    (2, True): "IMREAD_REDUCED_GRAYSCALE_2",
    (4, True): "IMREAD_REDUCED_GRAYSCALE_4",
    (8, True): "IMREAD_REDUCED_GRAYSCALE_8",
}


def decode_jpeg_for(
    data: np.ndarray | bytes, size: tuple[int, int], need: FrameNeed | None
) -> np.ndarray | None:
    """Decode JPEG bytes (a uint8 array or bytes) of ``size`` (w, h) for ``need``; None if
    undecodable. BGR ``HxWx3``, or gray ``HxW`` when the model is gray."""
    scale = jpeg_reduction(size[0], size[1], need)
    gray = bool(need and need.gray)
    cv2 = imageops.opencv()
    if cv2 is not None:
        array = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
        image: np.ndarray | None = cv2.imdecode(array, getattr(cv2, _CV_FLAGS[scale, gray]))
        return image
    return _simplejpeg(bytes(data) if isinstance(data, np.ndarray) else data, size, scale, gray)


def _simplejpeg(data: bytes, size: tuple[int, int], scale: int, gray: bool) -> np.ndarray | None:
    import simplejpeg

    w, h = size
    try:
        image: np.ndarray = simplejpeg.decode_jpeg(
            data,
            "GRAY" if gray else "BGR",
            min_width=-(-w // scale),
            min_height=-(-h // scale),
            min_factor=scale,
            strict=False,
        )
    except ValueError:
        return None
    return image[:, :, 0] if gray else image


def jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header (SOFn), or None when it has none."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2  # fill bytes, standalone markers
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None
