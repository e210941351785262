"""Which implementation serves an image source, and what it needs installed (pure).

OpenCV is the ``video`` extra. Without it the device still serves USB cameras that deliver
MJPEG (V4L2 through ``linuxpy``), MJPEG over HTTP, MJPEG files (raw and AVI) and image folders.
:func:`plan_image_source` picks the implementation from the config and whether OpenCV is
installed, and raises the :class:`~agent.errors.ConfigError` that ``edge-agent check-config``
and ``edge-agent run`` report (exit code 4) when the source needs the extra.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import PurePath
from typing import Literal

from agent.config import SourceConfig
from agent.errors import ConfigError
from agent.pipeline.imageops import ENV

Implementation = Literal["opencv", "v4l2", "mjpeg_file", "mjpeg_http", "imagedir"]
VIDEO_EXTRA = "pip install 'edge-agent[video]'"
IMAGE_SOURCES = ("camera", "stream", "mjpeg_http", "video", "images")
RAW_MJPEG = (".mjpeg", ".mjpg")


def opencv_installed() -> bool:
    """Whether the agent may use OpenCV (``EDGE_AGENT_OPENCV``), without importing it."""
    setting = os.environ.get(ENV, "auto").strip().lower()
    if setting in ("off", "0", "no", "false"):
        return False
    return importlib.util.find_spec("cv2") is not None


def plan_image_source(config: SourceConfig, opencv: bool) -> Implementation:
    kind = config.type
    if kind in ("images", "mjpeg_http"):
        return "imagedir" if kind == "images" else "mjpeg_http"
    if kind == "camera":
        if config.backend == "v4l2" or (config.backend == "auto" and not opencv):
            return "v4l2"
        return _needs_opencv(opencv, 'camera with backend = "opencv"', "source.backend")
    if kind == "stream":
        scheme = (config.url or "").partition("://")[0].lower() or "stream"
        hint = ' (for MJPEG over HTTP use type = "mjpeg_http")' if scheme.startswith("http") else ""
        return _needs_opencv(opencv, f"stream ({scheme}://){hint}", "source.url")
    return _video(config, opencv)


def _video(config: SourceConfig, opencv: bool) -> Implementation:
    """Raw MJPEG files always without OpenCV; AVI without it when it is missing."""
    suffix = PurePath(config.path or "").suffix.lower()
    if suffix in RAW_MJPEG or (suffix == ".avi" and not opencv):
        return "mjpeg_file"
    return _needs_opencv(opencv, f"video ({suffix or 'this'} files)", "source.path")


def _needs_opencv(opencv: bool, what: str, key: str) -> Implementation:
    if not opencv:
        raise ConfigError(key, f"source type {what} needs the video extra: {VIDEO_EXTRA}")
    return "opencv"


def linuxpy_installed() -> bool:
    return importlib.util.find_spec("linuxpy") is not None


def source_problems(config: SourceConfig, opencv: bool, linuxpy: bool = True) -> list[str]:
    """:func:`plan_image_source`'s refusal as ``key: message`` lines (empty when it is served)."""
    if config.type not in IMAGE_SOURCES:
        return []
    try:
        plan = plan_image_source(config, opencv)
    except ConfigError as exc:
        return [str(exc)]
    if plan == "v4l2" and not linuxpy:
        return [
            "source.device: a camera without OpenCV needs linuxpy (Linux only, in the device "
            f"extra), or the video extra: {VIDEO_EXTRA}"
        ]
    return []
