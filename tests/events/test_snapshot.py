"""Snapshots: the best frame cropped to the event's box, as a JPEG within its byte bound."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg
from skimage import data

from agent.events.snapshot import crop, encode_snapshot
from agent.pipeline import imageops

BOX = {"xmin": 0.25, "ymin": 0.0, "xmax": 0.75, "ymax": 0.5}


def _astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # 512 x 512


def test_the_crop_is_the_box_in_frame_pixels_clamped_to_the_frame() -> None:
    image = _astronaut()
    assert crop(image, BOX).shape == (256, 256, 3)
    outside = {"xmin": -0.5, "ymin": 0.5, "xmax": 2.0, "ymax": 1.5}
    assert crop(image, outside).shape == (256, 512, 3)
    assert crop(image, None).shape == image.shape


def test_a_snapshot_fits_its_bound_by_lowering_quality_then_size() -> None:
    image = _astronaut()
    roomy = encode_snapshot(image, BOX, 64 * 1024)
    tight = encode_snapshot(image, BOX, 4096)
    assert roomy is not None
    assert tight is not None
    assert len(tight) <= 4096 < len(roomy)
    assert cv2.imdecode(np.frombuffer(roomy, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)
    small = cv2.imdecode(np.frombuffer(tight, np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[0] < 256


def test_no_snapshot_when_even_a_tiny_jpeg_does_not_fit() -> None:
    assert encode_snapshot(_astronaut(), BOX, 200) is None


def test_without_opencv_snapshots_are_encoded_by_simplejpeg_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(imageops.ENV, "off")
    image = _astronaut()
    tight = encode_snapshot(image, BOX, 4096)
    gray = encode_snapshot(image[:, :, 1], BOX, 64 * 1024)
    assert tight is not None
    assert gray is not None
    assert len(tight) <= 4096
    assert simplejpeg.decode_jpeg_header(tight)[0] < 256  # smaller to fit
    assert simplejpeg.decode_jpeg_header(gray)[:3] == (256, 256, "Gray")
