"""A capture thread over any stream of JPEG frames: MJPEG files, MJPEG over HTTP, V4L2 MJPEG.

No OpenCV. A :class:`JpegReader` yields undecoded JPEG frames (``mjpeg_file``, ``mjpeg_http``,
``v4l2``); :class:`JpegStreamSource` runs it on its own thread and behaves as
:class:`~agent.sources.camera.CameraSource` does: newest-frame-only hand-off through a
:class:`~agent.sources.base.LatestSlot`, decode at the model's size
(:func:`~agent.sources.jpeg.decode_jpeg_for`), frames over the fps cap skipped undecoded, a
live source reopened with jittered backoff, a file looped or ended, paced at its frame rate or
read as fast as the consumer takes frames (``pace="unthrottled"``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

from agent.backoff import Backoff
from agent.pipeline.geometry import MAX_FRAME_PIXELS
from agent.sources.base import CaptureSource, Frame, FrameNeed, SourceHealth
from agent.sources.jpeg import decode_jpeg_for, jpeg_dimensions
from agent.sources.mjpeg import MjpegError

logger = logging.getLogger(__name__)

Pace = Literal["realtime", "unthrottled"]


class SourceOpenError(OSError):
    """A device, URL or file could not be opened; the message names which and why."""


class JpegReader(Protocol):
    """One open session of a JPEG frame stream."""

    #: Frames per second the stream states (0 when it states none).
    fps: float

    def frames(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class JpegStreamSource(CaptureSource):
    """Newest-frame-only capture from ``open_reader()`` sessions (``live``: reopen on failure)."""

    def __init__(
        self,
        open_reader: Callable[[], JpegReader],
        *,
        name: str,
        live: bool,
        loop: bool = False,
        pace: Pace = "realtime",
        need: Callable[[], FrameNeed | None] | None = None,
        min_period_s: float = 0.0,
        default_fps: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._open = open_reader
        self.live, self.loop, self.pace = live, loop, pace
        keep_all = not live and pace == "unthrottled"
        self._init_capture(SourceHealth(name, logger), keep_all=keep_all, backoff=backoff)
        self._need = need
        self._min_period = 0.0 if keep_all else min_period_s
        self._default_fps = default_fps
        self._last_delivered = -1e9
        self._start_capture(name)

    def _session(self) -> str:
        try:
            reader = self._open()
        except MjpegError as exc:
            self.health.bad(f"bad_stream.{exc.reason}", str(exc))
            return "failed" if self.live or self.loop else "ended"
        except OSError as exc:  # SourceOpenError names the device, URL or file
            self.health.bad("open_failed", str(exc))
            return "failed" if self.live or self.loop else "ended"
        try:
            return self._read(reader)
        except MjpegError as exc:
            self.health.bad(f"bad_stream.{exc.reason}", str(exc))
            return "failed" if self.live or self.loop else "ended"
        except OSError as exc:
            self.health.bad("read_failed", f"{self.health.name}: {exc}")
            return "failed" if self.live else "ended"
        finally:
            reader.close()

    def _read(self, reader: JpegReader) -> str:
        paced = not self.live and self.pace == "realtime"
        fps = reader.fps or self._default_fps
        period = 1.0 / fps if paced else 0.0
        early = 0.5 / fps
        due = time.monotonic()
        frames = 0
        for data in reader.frames():
            if self._stop.is_set():
                return "closed"
            frames += 1
            self._backoff.reset()
            if time.monotonic() - self._last_delivered < self._min_period - early:
                self._skipped += 1  # not due under the fps cap: never decoded
                self.health.next_seq()
            elif not self._decode_and_deliver(data):
                return "closed"
            if period:
                due += period
                self._stop.wait(max(0.0, due - time.monotonic()))
        if self._stop.is_set():
            return "closed"
        if self.live:
            self.health.bad("read_failed", f"{self.health.name} stopped delivering frames")
            return "failed"
        if frames == 0:
            self.health.bad("read_failed", f"{self.health.name} has no frames")
            return "failed" if self.loop else "ended"
        return "reopen" if self.loop else "ended"

    def _decode_and_deliver(self, data: bytes) -> bool:
        size = jpeg_dimensions(data)
        if size is not None and size[0] * size[1] > MAX_FRAME_PIXELS:
            self.health.bad("too_large", f"{self.health.name}: a {size[0]}x{size[1]} frame")
            return True
        image = None if size is None else decode_jpeg_for(data, size, self._need_now())
        if image is None:
            self.health.bad("undecodable", f"{self.health.name}: a frame did not decode")
            return True
        now = time.monotonic()
        self._last_delivered = now
        return self._slot.put(Frame(image, now, self.health.next_seq(), self.health.name))

    def _need_now(self) -> FrameNeed | None:
        return self._need() if self._need is not None else None
