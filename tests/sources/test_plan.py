"""Which implementation serves an image source, with and without OpenCV (the video extra)."""

from __future__ import annotations

import pytest

from agent.config import SourceConfig
from agent.errors import ConfigError
from agent.sources.plan import plan_image_source, source_problems

EXTRA = "needs the video extra: pip install 'edge-agent[video]'"


@pytest.mark.parametrize(("config", "with_cv", "without_cv"), [
    (SourceConfig("camera", device="0"), "opencv", "v4l2"),
    (SourceConfig("camera", device="0", backend="v4l2"), "v4l2", "v4l2"),
    (SourceConfig("mjpeg_http", url="http://cam/stream"), "mjpeg_http", "mjpeg_http"),
    (SourceConfig("video", path="clip.MJPEG"), "mjpeg_file", "mjpeg_file"),
    (SourceConfig("video", path="clip.mjpg"), "mjpeg_file", "mjpeg_file"),
    (SourceConfig("video", path="clip.avi"), "opencv", "mjpeg_file"),
    (SourceConfig("images", path="/srv/in"), "imagedir", "imagedir"),
])  # fmt: skip
def test_sources_served_without_opencv(config: SourceConfig, with_cv: str, without_cv: str) -> None:
    assert plan_image_source(config, opencv=True) == with_cv
    assert plan_image_source(config, opencv=False) == without_cv
    assert source_problems(config, opencv=False) == []


@pytest.mark.parametrize(("config", "message"), [
    (SourceConfig("stream", url="rtsp://cam/h264"), "source.url: source type stream (rtsp://) "),
    (SourceConfig("stream", url="http://cam/x"), 'use type = "mjpeg_http"'),
    (SourceConfig("video", path="clip.mp4"), "source.path: source type video (.mp4 files) "),
    (SourceConfig("camera", device="0", backend="opencv"), "source.backend: "),
])  # fmt: skip
def test_sources_that_need_the_video_extra_are_config_errors(
    config: SourceConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match="needs the video extra") as caught:
        plan_image_source(config, opencv=False)
    assert message in str(caught.value)
    assert str(caught.value).endswith(EXTRA)
    assert source_problems(config, opencv=False) == [str(caught.value)]
    assert plan_image_source(config, opencv=True) == "opencv"


def test_sensor_and_audio_sources_never_need_it() -> None:
    assert source_problems(SourceConfig("sensor", path="/dev/ttyUSB0"), opencv=False) == []


def test_a_camera_without_opencv_or_linuxpy_is_a_config_error() -> None:
    camera = SourceConfig("camera", device="0")
    (problem,) = source_problems(camera, opencv=False, linuxpy=False)
    assert problem.startswith("source.device: a camera without OpenCV needs linuxpy")
    assert source_problems(camera, opencv=True, linuxpy=False) == []
