"""USB cameras delivering Motion-JPEG through V4L2, without OpenCV (``linuxpy``).

:func:`choose_mode` is the pure negotiation: of the modes a camera offers (pixel format, size,
frame rate, as ``VIDIOC_ENUM_FMT`` / ``ENUM_FRAMESIZES`` / ``ENUM_FRAMEINTERVALS`` list them)
it takes the MJPEG mode with the smallest frame that still covers the model input (after the
decoder's own 1/2-1/8 scaling there is nothing to gain from a larger one), then the highest
frame rate not above the fps cap. :class:`V4l2MjpegReader` is the thin ``linuxpy`` adapter: open,
enumerate, set the format and rate, stream memory-mapped buffers; each failure is a
:class:`~agent.sources.jpegstream.SourceOpenError` naming the device and what failed.

A camera that offers no MJPEG (raw YUYV only) needs the ``video`` extra (OpenCV). Not run on
hardware here (the test machine has no camera): the negotiation is tested on mode lists, the
frame path on real MJPEG bytes, the adapter on device nodes that are missing or not V4L2.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent.sources.base import FrameNeed
from agent.sources.jpegstream import JpegStreamSource, SourceOpenError

MJPEG_FORMATS = ("MJPG", "JPEG")


@dataclass(frozen=True)
class Mode:
    """One capture mode a camera offers: ``fourcc`` (``MJPG``, ``YUYV``, ...), size, max fps."""

    fourcc: str
    width: int
    height: int
    fps: float


def choose_mode(modes: Sequence[Mode], need: FrameNeed | None, max_fps: float | None) -> Mode:
    """The MJPEG mode to capture in (see the module docstring); raise when there is none."""
    mjpeg = [m for m in modes if m.fourcc in MJPEG_FORMATS]
    if not mjpeg:
        offered = ", ".join(sorted({m.fourcc for m in modes})) or "nothing"
        raise SourceOpenError(
            f"the camera offers no MJPEG mode (it offers {offered}); raw formats need the "
            "video extra: pip install 'edge-agent[video]'"
        )
    covering = [m for m in mjpeg if need is None or _covers(m, need)]
    pool = covering or [max(mjpeg, key=lambda m: m.width * m.height)]
    area = (
        min(m.width * m.height for m in pool)
        if need is not None
        else max(m.width * m.height for m in pool)
    )
    sized = [m for m in pool if m.width * m.height == area]
    within = [m for m in sized if max_fps is None or m.fps <= max_fps + 1e-6]
    if within:
        return max(within, key=lambda m: m.fps)
    return min(sized, key=lambda m: m.fps)


def _covers(mode: Mode, need: FrameNeed) -> bool:
    fx, fy = mode.width / need.width, mode.height / need.height
    return (max(fx, fy) if need.letterbox else min(fx, fy)) >= 1.0


def device_path(device: str | int) -> str:
    """``/dev/videoN`` for an index, the path itself otherwise."""
    text = str(device)
    return f"/dev/video{text}" if text.isdigit() else text


class V4l2MjpegReader:
    """One streaming session of a V4L2 camera in an MJPEG mode."""

    def __init__(self, device: str | int, need: FrameNeed | None, max_fps: float | None) -> None:
        from linuxpy.video import device as v4l2

        self.path = device_path(device)
        self._dev: Any = v4l2.Device(self.path)
        try:
            self._dev.open()
        except OSError as exc:
            raise SourceOpenError(_open_problem(self.path, exc)) from None
        try:
            self.mode = choose_mode(_modes(self._dev, v4l2), need, max_fps)
            kind = v4l2.BufferType.VIDEO_CAPTURE
            self._dev.set_format(kind, self.mode.width, self.mode.height, self.mode.fourcc)
            if self.mode.fps:
                self._dev.set_fps(kind, self.mode.fps)
            self._capture: Any = v4l2.VideoCapture(self._dev)
            self._capture.open()
        except SourceOpenError as exc:
            self._dev.close()
            raise SourceOpenError(f"{self.path}: {exc}") from None
        except OSError as exc:
            self._dev.close()
            raise SourceOpenError(f"{self.path}: cannot start MJPEG capture: {exc}") from None
        self.fps = self.mode.fps

    def frames(self) -> Iterator[bytes]:
        for frame in self._capture:
            yield bytes(frame.data)

    def close(self) -> None:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._capture.close()
        self._dev.close()


def _open_problem(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"no V4L2 device {path} (is the camera plugged in? ls /dev/video*)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot open {path}: permission denied (the service user needs the video group)"
    if exc.errno == errno.EBUSY:
        return f"{path} is busy (another program is capturing from it)"
    return f"cannot open {path}: {exc.strerror or exc}"


def _modes(dev: Any, v4l2: Any) -> list[Mode]:
    """Every (format, size, rate) the device lists; ENOTTY means it is not a V4L2 device."""
    try:
        capabilities = dev.info.device_capabilities
        if v4l2.Capability.VIDEO_CAPTURE not in capabilities:
            raise SourceOpenError("is a V4L2 device that cannot capture video")
        formats = dev.info.buffer_formats(v4l2.BufferType.VIDEO_CAPTURE)
        modes = []
        for fmt in formats:
            fourcc = v4l2.human_pixel_format(int(fmt.pixel_format))
            for size in dev.info.format_frame_sizes(fmt.pixel_format):
                w, h = _size_of(size.info)
                rates = dev.info.fps_intervals(fmt.pixel_format, w, h)
                best = max((float(r.max_fps) for r in rates), default=0.0)
                modes.append(Mode(str(fourcc).strip(), w, h, best))
    except OSError as exc:
        if exc.errno == errno.ENOTTY:
            raise SourceOpenError("is not a V4L2 capture device") from None
        raise SourceOpenError(f"cannot list its formats: {exc.strerror or exc}") from None
    return modes


def _size_of(info: Any) -> tuple[int, int]:
    if hasattr(info, "width"):
        return int(info.width), int(info.height)
    return int(info.max_width), int(info.max_height)  # stepwise: the largest it can do


def v4l2_camera_source(
    device: str | int,
    *,
    name: str = "camera",
    need: Callable[[], FrameNeed | None] | None = None,
    min_period_s: float = 0.0,
) -> JpegStreamSource:
    max_fps = 1.0 / min_period_s if min_period_s else None

    def open_reader() -> V4l2MjpegReader:
        return V4l2MjpegReader(device, need() if need is not None else None, max_fps)

    return JpegStreamSource(open_reader, name=name, live=True, need=need, min_period_s=min_period_s)
