"""Build the configured input source (an adapter over :mod:`agent.sources`).

Image sources are imported only when configured, so a sensor-only agent never pays their
resident memory. :func:`agent.sources.plan.plan_image_source` picks OpenCV's capture (the
``video`` extra) or the OpenCV-free MJPEG sources (V4L2, HTTP, files).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from agent.config import SourceConfig
from agent.secrets import FileResolver
from agent.sources.audio import DEFAULT_BLOCK_S, AudioBlock
from agent.sources.base import Frame, FrameNeed, Reading
from agent.sources.lines import LineFormat
from agent.sources.plan import IMAGE_SOURCES, opencv_installed, plan_image_source
from agent.sources.sensor import QueueReadingSource, StreamSensorSource

if TYPE_CHECKING:
    from agent.sources.jpegstream import Pace


class InputSource(Protocol):
    @property
    def finished(self) -> bool: ...

    def get(self, timeout: float | None = None) -> Frame | Reading | AudioBlock | None: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def line_format(config: SourceConfig) -> LineFormat:
    return LineFormat(fields=config.fields, max_line=config.max_line_bytes)


def build_source(
    config: SourceConfig,
    resolver: FileResolver,
    sensor_queue: queue.Queue[bytes] | None = None,
    need: Callable[[], FrameNeed | None] | None = None,
) -> InputSource:
    """The source named by ``config.type``. ``sensor_queue`` feeds ``mqtt_sensor``; ``need``
    tells a camera source the smallest frame the current model can use."""
    kind = config.type
    if kind in IMAGE_SOURCES:
        return _image_source(config, resolver, need)
    if kind in ("audio", "pcm", "microphone"):
        return _audio_source(config, resolver)
    path = str(resolver.path(config.path or ""))
    if kind == "sensor":
        return StreamSensorSource(path, baud=config.baud, fmt=line_format(config))
    if sensor_queue is None:
        raise RuntimeError("mqtt_sensor needs the queue the MQTT subscription feeds")
    return QueueReadingSource(
        sensor_queue, fmt=line_format(config), max_payload=config.max_line_bytes
    )


def _image_source(
    config: SourceConfig, resolver: FileResolver, need: Callable[[], FrameNeed | None] | None
) -> InputSource:
    implementation = plan_image_source(config, opencv_installed())
    kind = config.type
    cap = 1.0 / config.fps if config.fps else 0.0
    path = str(resolver.path(config.path or "")) if config.path else ""
    pace: Pace = "realtime" if config.realtime else "unthrottled"
    if implementation == "opencv":
        from agent.sources.camera import CameraSource

        target = {"camera": config.device or "0", "stream": config.url or ""}.get(kind, path)
        loop = config.loop and kind == "video"
        return CameraSource(target, loop=loop, pace=pace, name=kind, need=need, min_period_s=cap)
    if implementation == "v4l2":
        from agent.sources.v4l2 import v4l2_camera_source

        return v4l2_camera_source(config.device or "0", need=need, min_period_s=cap)
    if implementation == "mjpeg_http":
        from agent.sources.mjpeg_http import mjpeg_http_source

        return mjpeg_http_source(config.url or "", need=need, min_period_s=cap)
    if implementation == "mjpeg_file":
        from agent.sources.mjpeg_file import mjpeg_file_source

        return mjpeg_file_source(
            path, loop=config.loop, pace=pace, name="video", need=need, min_period_s=cap
        )
    from agent.sources.imagedir import ImageDirSource

    return ImageDirSource(
        path, poll_interval=config.poll_s, max_bytes=config.max_image_bytes, need=need
    )


def _audio_source(config: SourceConfig, resolver: FileResolver) -> InputSource:
    """Audio sources hand over blocks no longer than the hop, so a window is due at most once
    per block (the soundfile and sounddevice imports happen only here)."""
    block_s = min(DEFAULT_BLOCK_S, config.hop_s or config.window_s or DEFAULT_BLOCK_S)
    if config.type == "microphone":
        from agent.sources.audio_mic import MicrophoneSource

        device = config.device
        return MicrophoneSource(
            int(device) if device is not None and device.isdigit() else device,
            rate=config.sample_rate,
            channels=config.channels,
            block_s=block_s,
        )
    if config.type == "pcm":
        from agent.sources.audio_pcm import STDIN, PcmStreamSource

        raw = config.path or STDIN
        return PcmStreamSource(
            raw if raw == STDIN else str(resolver.path(raw)),
            sample_format=config.sample_format,
            rate=config.sample_rate,
            channels=config.channels,
            block_s=block_s,
        )
    from agent.sources.audio_file import AudioFileSource

    return AudioFileSource(
        resolver.path(config.path or ""),
        loop=config.loop,
        realtime=config.realtime,
        block_s=block_s,
        poll_s=config.poll_s,
    )
