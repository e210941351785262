"""USB cameras without OpenCV: the MJPEG mode negotiation (pure) and the linuxpy adapter's
named open errors on device nodes this machine has, and webcam-style MJPEG frames (no Huffman
tables) through the decoder. No camera here: frames from a real camera were not captured in
these tests (docs/inference.md says what was not run on hardware)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipeline import imageops
from agent.sources.base import FrameNeed
from agent.sources.jpeg import decode_jpeg_for
from agent.sources.jpegstream import SourceOpenError
from agent.sources.v4l2 import Mode, V4l2MjpegReader, choose_mode, device_path, v4l2_camera_source
from tests.sources.mjpeg_media import photo_jpegs

# What a common UVC webcam lists (uvcvideo): YUYV at low rates, MJPEG up to 1080p at 30 fps.
WEBCAM = [
    Mode("YUYV", 640, 480, 30.0),
    Mode("YUYV", 1920, 1080, 5.0),
    Mode("MJPG", 1920, 1080, 30.0),
    Mode("MJPG", 1280, 720, 30.0),
    Mode("MJPG", 640, 480, 30.0),
    Mode("MJPG", 640, 480, 15.0),
    Mode("MJPG", 320, 240, 30.0),
    Mode("MJPG", 160, 120, 30.0),
]


@pytest.mark.parametrize(("need", "mode"), [
    (FrameNeed(224, 224), Mode("MJPG", 320, 240, 30.0)),
    (FrameNeed(300, 300), Mode("MJPG", 640, 480, 30.0)),
    (FrameNeed(320, 180, letterbox=True), Mode("MJPG", 320, 240, 30.0)),
    (FrameNeed(96, 96), Mode("MJPG", 160, 120, 30.0)),
    (FrameNeed(4000, 3000), Mode("MJPG", 1920, 1080, 30.0)),
    (None, Mode("MJPG", 1920, 1080, 30.0)),
])  # fmt: skip
def test_the_smallest_mjpeg_mode_covering_the_model_is_chosen(
    need: FrameNeed | None, mode: Mode
) -> None:
    assert choose_mode(WEBCAM, need, None) == mode


def test_the_fps_cap_picks_the_fastest_rate_not_above_it() -> None:
    assert choose_mode(WEBCAM, FrameNeed(300, 300), 20.0) == Mode("MJPG", 640, 480, 15.0)
    assert choose_mode(WEBCAM, FrameNeed(300, 300), 10.0) == Mode("MJPG", 640, 480, 15.0)


def test_a_camera_without_mjpeg_needs_the_video_extra() -> None:
    with pytest.raises(SourceOpenError, match=r"offers YUYV\); .*edge-agent\[video\]"):
        choose_mode([m for m in WEBCAM if m.fourcc == "YUYV"], FrameNeed(224, 224), None)


def test_indexes_name_dev_video_nodes() -> None:
    assert device_path(0) == "/dev/video0"
    assert device_path("2") == "/dev/video2"
    assert device_path("/dev/v4l/by-id/usb-cam") == "/dev/v4l/by-id/usb-cam"


@pytest.mark.parametrize(("node", "message"), [
    ("/dev/video97", r"no V4L2 device /dev/video97 \(is the camera plugged in"),
    ("/dev/null", r"/dev/null: is not a V4L2 capture device"),
])  # fmt: skip
def test_opening_a_missing_or_non_v4l2_node_names_what_failed(node: str, message: str) -> None:
    with pytest.raises(SourceOpenError, match=message):
        V4l2MjpegReader(node, FrameNeed(224, 224), None)


def test_the_camera_source_counts_open_failures_and_keeps_retrying() -> None:
    source = v4l2_camera_source("/dev/video97", need=lambda: FrameNeed(224, 224))
    try:
        assert source.get(timeout=1.0) is None
        assert source.stats()["error.open_failed"] >= 1
        assert not source.finished  # a live camera is reopened with backoff
    finally:
        source.close()


def _without_huffman_tables(jpeg: bytes) -> bytes:
    """The JPEG with its DHT segments cut out, as many UVC webcams send MJPEG frames."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i + 1] != 0xDA:  # up to the start of scan
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if jpeg[i + 1] != 0xC4:
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out + jpeg[i:])


def test_webcam_frames_without_huffman_tables_decode_as_the_full_jpeg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(imageops.ENV, "off")
    jpeg = photo_jpegs(1)[0]
    bare = _without_huffman_tables(jpeg)
    assert b"\xff\xc4" not in bare[: bare.index(b"\xff\xda")]
    need = FrameNeed(224, 224)
    full, stripped = (
        decode_jpeg_for(jpeg, (640, 480), need),
        decode_jpeg_for(bare, (640, 480), need),
    )
    assert full is not None
    assert stripped is not None
    np.testing.assert_array_equal(stripped, full)  # libjpeg-turbo falls back to the standard tables
