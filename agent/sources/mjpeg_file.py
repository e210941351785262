"""Motion-JPEG files without OpenCV: raw concatenated JPEGs (``.mjpeg``, ``.mjpg``) and AVI/MJPEG.

:class:`MjpegFileReader` is the file adapter of :mod:`agent.sources.mjpeg` (the container is
told by its first bytes, not its name); :func:`mjpeg_file_source` runs it in a
:class:`~agent.sources.jpegstream.JpegStreamSource`. A raw file states no frame rate: it plays at
``default_fps`` (30) when paced; an AVI plays at the rate its header states.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from agent.sources.base import FrameNeed
from agent.sources.jpegstream import JpegStreamSource, Pace, SourceOpenError
from agent.sources.mjpeg import DEFAULT_MAX_FRAME, AviMjpegParser, JpegSplitter

MJPEG_EXTENSIONS = (".mjpeg", ".mjpg", ".avi")
_READ = 64 * 1024


class MjpegFileReader:
    """One pass over a Motion-JPEG file."""

    def __init__(self, path: str | os.PathLike[str], max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise SourceOpenError(f"cannot open {self.path}: {exc.strerror}") from None
        head = self._file.read(_READ)
        self._parser: JpegSplitter | AviMjpegParser
        if head[:4] == b"RIFF":
            self._parser = AviMjpegParser(max_frame)
        else:
            self._parser = JpegSplitter(max_frame)
        self._pending = self._parser.feed(head)
        info = getattr(self._parser, "info", None)
        self.fps: float = info.fps if info is not None else 0.0

    def frames(self) -> Iterator[bytes]:
        yield from self._pending
        self._pending = []
        while chunk := self._file.read(_READ):
            yield from self._parser.feed(chunk)
        self._parser.end()

    def close(self) -> None:
        self._file.close()


def mjpeg_file_source(
    path: str | os.PathLike[str],
    *,
    loop: bool = False,
    pace: Pace = "realtime",
    name: str = "",
    need: Callable[[], FrameNeed | None] | None = None,
    min_period_s: float = 0.0,
    default_fps: float = 30.0,
) -> JpegStreamSource:
    return JpegStreamSource(
        lambda: MjpegFileReader(path),
        name=name or f"mjpeg:{path}",
        live=False,
        loop=loop,
        pace=pace,
        need=need,
        min_period_s=min_period_s,
        default_fps=default_fps,
    )
