"""The best frame's crop as a bounded JPEG, in memory only (never written to disk).

The frame is the one the agent decoded, which a camera source may have decoded at a reduced
size when the model needs less (docs/inference.md: JPEG scaled decoding): a snapshot is never
larger than what inference saw.

:func:`encode_snapshot` crops a frame to an event's best box (the whole frame for a classifier)
and encodes it as JPEG, lowering the quality and then the size until it fits ``max_bytes``. It
is published retained on ``<prefix>/<device>/events/snapshot/<label id>`` straight from memory:
snapshots do not go through the outbox, which is an unencrypted file on disk.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

QUALITIES = (85, 70, 55, 40)
MIN_SIDE = 16


def crop(image: np.ndarray, box: Mapping[str, float] | None) -> np.ndarray:
    """``image`` cut to the normalised ``box`` (clamped to the frame); all of it without one."""
    if box is None:
        return image
    h, w = image.shape[:2]
    x0 = int(np.clip(box["xmin"], 0.0, 1.0) * w)
    x1 = int(np.ceil(np.clip(box["xmax"], 0.0, 1.0) * w))
    y0 = int(np.clip(box["ymin"], 0.0, 1.0) * h)
    y1 = int(np.ceil(np.clip(box["ymax"], 0.0, 1.0) * h))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return image
    return image[y0:y1, x0:x1]


def encode_snapshot(
    image: np.ndarray, box: Mapping[str, float] | None, max_bytes: int
) -> bytes | None:
    """A JPEG of the crop no larger than ``max_bytes``, or None when even a tiny one is not."""
    from agent.pipeline import imageops  # image sources only

    part = crop(image, box)
    while True:
        for quality in QUALITIES:
            data = _encode_jpeg(part, quality)
            if data is not None and len(data) <= max_bytes:
                return data
        if min(part.shape[:2]) < MIN_SIDE:
            return None
        h, w = part.shape[:2]
        part = imageops.resize(part, max(1, w * 7 // 10), max(1, h * 7 // 10))


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes | None:
    """JPEG bytes of a BGR or gray frame: OpenCV when installed, else simplejpeg."""
    from agent.pipeline import imageops

    cv2 = imageops.opencv()
    if cv2 is not None:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return bytes(data.tobytes()) if ok else None
    import simplejpeg

    gray = image.ndim == 2
    pixels = np.ascontiguousarray(image[:, :, None] if gray else image)
    space, subsampling = ("GRAY", "Gray") if gray else ("BGR", "420")
    encoded: bytes = simplejpeg.encode_jpeg(pixels, quality, space, subsampling)
    return encoded
