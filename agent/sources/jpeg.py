"""JPEG decoded at the size the model needs: libjpeg-turbo's scaled IDCT (1/2, 1/4, 1/8).

Decoding a 640×480 JPEG at 320×240 costs about a third of a full decode and leaves a smaller
image to resize; decoding straight to gray skips the chroma planes. The scale comes from
:func:`~agent.sources.base.jpeg_reduction`, so the result still covers the model input.
"""

from __future__ import annotations

import cv2
import numpy as np

from agent.sources.base import FrameNeed, jpeg_reduction

_FLAGS = {
    (1, False): cv2.IMREAD_COLOR,
    (2, False): cv2.IMREAD_REDUCED_COLOR_2,
    (4, False): cv2.IMREAD_REDUCED_COLOR_4,
    (8, False): cv2.IMREAD_REDUCED_COLOR_8,
    (1, True): cv2.IMREAD_GRAYSCALE,
    (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
}


def decode_jpeg_for(
    data: np.ndarray, size: tuple[int, int], need: FrameNeed | None
) -> np.ndarray | None:
    """Decode JPEG bytes (a uint8 array) of ``size`` (w, h) for ``need``; None if undecodable.

    BGR ``HxWx3``, or gray ``HxW`` when the model is gray.
    """
    scale = jpeg_reduction(size[0], size[1], need)
    image: np.ndarray | None = cv2.imdecode(data, _FLAGS[scale, bool(need and need.gray)])
    return image
