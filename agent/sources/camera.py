"""Camera frames through OpenCV: V4L2 devices, RTSP/HTTP streams and video files.

A capture thread reads continuously and hands frames over through a :class:`LatestSlot`, so the
consumer always gets the newest frame and stale ones are dropped (and counted). When a live
device or stream fails it is released and reopened with jittered backoff. A video file can loop,
and can be paced at its own fps (``pace="realtime"``) or read as fast as possible
(``pace="unthrottled"``, for benchmarks; frames are then not dropped but wait for the consumer).

Decode work is spent only on frames the consumer can use:

* Motion-JPEG from a file or stream is read undecoded (FFmpeg's raw mode) and decoded by
  libjpeg-turbo at the smallest 1/2, 1/4 or 1/8 scale that still covers the model input
  (:class:`~agent.sources.base.FrameNeed`, asked of the consumer for every frame so a model swap
  takes effect at once), straight to gray for a gray model. A stream whose packets do not decode
  this way is reopened in ordinary mode.
* With an fps cap (``min_period_s``) a live source grabs frames that are not due without
  decoding them; they count as dropped, as a replaced frame does.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import cv2

from agent.backoff import Backoff
from agent.sources.base import CaptureSource, Frame, FrameNeed, SourceHealth
from agent.sources.jpeg import decode_jpeg_for

logger = logging.getLogger(__name__)

CameraKind = Literal["device", "stream", "file"]
Pace = Literal["realtime", "unthrottled"]
_RAW_FOURCCS = (b"MJPG",)
_STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class CameraTarget:
    """What to open: ``value`` is passed to ``cv2.VideoCapture`` with ``api``."""

    value: str | int
    kind: CameraKind
    api: int


def parse_camera_target(target: str | int) -> CameraTarget:
    """Classify ``target``: a V4L2 index or ``/dev/video*`` path, a stream URL, or a file."""
    v4l2 = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return CameraTarget(int(target), "device", v4l2)
    if target.startswith("/dev/"):
        return CameraTarget(target, "device", v4l2)
    if target.lower().startswith(_STREAM_SCHEMES):
        return CameraTarget(target, "stream", cv2.CAP_FFMPEG)
    return CameraTarget(target, "file", cv2.CAP_ANY)


class CameraSource(CaptureSource):
    """Newest-frame-only capture from a camera, stream or video file."""

    def __init__(
        self,
        target: str | int,
        *,
        loop: bool = False,
        pace: Pace = "realtime",
        keep_all: bool | None = None,
        backoff: Backoff | None = None,
        name: str = "",
        need: Callable[[], FrameNeed | None] | None = None,
        min_period_s: float = 0.0,
    ) -> None:
        self.target = parse_camera_target(target)
        self.loop = loop
        self.pace: Pace = pace
        if keep_all is None:
            keep_all = self.target.kind == "file" and pace == "unthrottled"
        health = SourceHealth(name or f"camera:{target}", logger)
        self._init_capture(health, keep_all=keep_all, backoff=backoff)
        self._need = need
        self._min_period = 0.0 if keep_all else min_period_s
        self._last_delivered = -1e9
        self._skipped = 0
        self._raw_allowed = need is not None and self.target.kind != "device"
        self.raw_mode = False
        self._start_capture(self.health.name)

    def _session(self) -> str:
        cap = cv2.VideoCapture(self.target.value, self.target.api)
        try:
            if not cap.isOpened():
                self.health.bad("open_failed", f"cannot open {self.target.value!r}")
                return "failed"
            if self.target.kind != "file":
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            self.raw_mode = self._raw_mjpeg(cap)
            return self._read_frames(cap)
        finally:
            cap.release()

    def _raw_mjpeg(self, cap: Any) -> bool:
        """Switch ``cap`` to undecoded packets when they are JPEGs we can decode at size."""
        if not self._raw_allowed or cap.getBackendName() != "FFMPEG":
            return False
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").upper()
        return fourcc in _RAW_FOURCCS and bool(cap.set(cv2.CAP_PROP_FORMAT, -1))

    def _read_frames(self, cap: Any) -> str:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        paced = self.target.kind == "file" and self.pace == "realtime" and fps > 0
        period = 1.0 / fps if paced else 0.0
        # Deliver a frame half a frame early rather than one frame late.
        early = 0.5 / fps if fps > 0 else 0.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        due = time.monotonic()
        frames = decoded = 0
        while not self._stop.is_set():
            if not cap.grab():
                return self._end_of_frames(frames)
            frames += 1
            self._backoff.reset()
            if time.monotonic() - self._last_delivered < self._min_period - early:
                self._skipped += 1  # not due under the fps cap: never decoded
                self.health.next_seq()
            else:
                image = self._retrieve(cap, size)
                if image is None:
                    if self.raw_mode and decoded == 0:
                        self._raw_allowed = False
                        return "reopen"
                    self.health.bad("undecodable", f"{self.target.value!r}: a frame did not decode")
                else:
                    decoded += 1
                    if not self._deliver(image):
                        return "closed"
            if period:
                due += period
                self._stop.wait(max(0.0, due - time.monotonic()))
        return "closed"

    def _retrieve(self, cap: Any, size: tuple[int, int]) -> Any:
        ok, image = cap.retrieve()
        if not ok or image is None:
            return None
        if not self.raw_mode:
            return image
        return decode_jpeg_for(image, size, self._need() if self._need is not None else None)

    def _deliver(self, image: Any) -> bool:
        now = time.monotonic()
        self._last_delivered = now
        return self._slot.put(Frame(image, now, self.health.next_seq(), self.health.name))

    def _end_of_frames(self, frames: int) -> str:
        if self.target.kind != "file":
            self.health.bad("read_failed", f"{self.target.value!r} stopped delivering frames")
            return "failed"
        if frames == 0:
            self.health.bad("read_failed", f"{self.target.value!r} has no readable frames")
            return "failed" if self.loop else "ended"
        return "reopen" if self.loop else "ended"
