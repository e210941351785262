"""Images dropped into a directory: each new file is decoded and yielded once.

The directory is polled in the consumer's thread (no watcher thread). A file is taken only when
its size and mtime are unchanged between two scans, so half-written files are left alone; hidden
files (``.name``) and other extensions are ignored, so writers can also write ``.tmp`` and rename.
A file rewritten under the same name (new size or mtime) counts as new. Oversized files are
refused before reading; undecodable ones are counted and skipped.

JPEGs are decoded by libjpeg-turbo at the model's size (:mod:`agent.sources.jpeg`). PNG and BMP
need OpenCV (the ``video`` extra) or Pillow (the ``png`` extra); without either such a file is
counted as ``error.no_decoder`` and skipped.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent.errors import InputError
from agent.fsutil import read_capped
from agent.pipeline import imageops
from agent.pipeline.geometry import MAX_FRAME_PIXELS, validate_frame
from agent.sources.base import Frame, FrameNeed, SourceHealth
from agent.sources.jpeg import decode_jpeg_for, jpeg_dimensions

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG or BMP header, or None when not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(int(width)), abs(int(height))
    if data[:2] == b"\xff\xd8":
        return jpeg_dimensions(data)
    return None


class ImageDirSource:
    """New image files in ``directory``, oldest first, each decoded to a BGR :class:`Frame`."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
        poll_interval: float = 0.5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = MAX_FRAME_PIXELS,
        include_existing: bool = True,
        need: Callable[[], FrameNeed | None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.extensions = tuple(e.lower() for e in extensions)
        self.poll_interval = poll_interval
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._need = need
        self.health = SourceHealth(f"imagedir:{directory}", logger)
        self._done: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, tuple[int, int]] = {}
        self._ready: deque[str] = deque()
        self._next_scan = 0.0
        self._closed = False
        if not include_existing:
            self._done = dict(self._listing())

    @property
    def finished(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, int]:
        return self.health.stats(0)

    def close(self) -> None:
        self._closed = True

    def get(self, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            while self._ready:
                frame = self._load(self._ready.popleft())
                if frame is not None:
                    return frame
            now = time.monotonic()
            if now >= self._next_scan:
                self._scan()
                self._next_scan = now + self.poll_interval
                continue
            if deadline is not None and now >= deadline:
                return None
            wake = self._next_scan if deadline is None else min(self._next_scan, deadline)
            time.sleep(max(0.0, wake - now))
        return None

    def _listing(self) -> list[tuple[str, tuple[int, int]]]:
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            self.health.bad("scan_failed", f"cannot list {self.directory}: {exc.strerror}")
            return []
        found = []
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.lower().endswith(self.extensions):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.is_file():
                found.append((st.st_mtime_ns, name, (st.st_size, st.st_mtime_ns)))
        found.sort()
        return [(name, sig) for _, name, sig in found]

    def _scan(self) -> None:
        listing = self._listing()
        present = {name for name, _ in listing}
        for name, sig in listing:
            if self._done.get(name) == sig:
                continue
            if self._pending.get(name) == sig:
                del self._pending[name]
                self._done[name] = sig
                self._ready.append(name)
            else:
                self._pending[name] = sig
        for table in (self._done, self._pending):
            for name in [n for n in table if n not in present]:
                del table[name]

    def _decode(self, name: str, data: bytes, dims: tuple[int, int] | None) -> np.ndarray | None:
        """The image, or None (counted) when it does not decode or nothing here can decode it."""
        if data[:2] != b"\xff\xd8" and not _can_decode_other():
            self.health.bad("no_decoder", f"{name}: PNG/BMP need {NO_DECODER_HINT}")
            return None
        image = self._decoded(data, dims)
        if image is None:
            self.health.bad("undecodable", f"{name} is not a decodable image")
        return image

    def _decoded(self, data: bytes, dims: tuple[int, int] | None) -> np.ndarray | None:
        array = np.frombuffer(data, dtype=np.uint8)
        if dims is not None and data[:2] == b"\xff\xd8":  # JPEG: decode at the model's size
            return decode_jpeg_for(array, dims, self._need() if self._need is not None else None)
        cv2 = imageops.opencv()
        if cv2 is not None:
            image: np.ndarray | None = cv2.imdecode(array, cv2.IMREAD_COLOR)
            return image
        return _pillow_decode(data)

    def _load(self, name: str) -> Frame | None:
        path = self.directory / name
        try:
            data = read_capped(path, self.max_bytes)
        except ValueError:
            self.health.bad("too_large", f"{name} is larger than {self.max_bytes} bytes")
            return None
        except OSError as exc:
            self.health.bad("read_failed", f"cannot read {name}: {exc.strerror}")
            return None
        dims = image_dimensions(data)
        if dims is not None and dims[0] * dims[1] > self.max_pixels:
            self.health.bad("too_large", f"{name} is {dims[0]}x{dims[1]} pixels")
            return None
        image = self._decode(name, data, dims)
        if image is None:
            return None
        try:
            validate_frame(image, max_pixels=self.max_pixels)
        except InputError as exc:
            self.health.bad("bad_frame", f"{name}: {exc}")
            return None
        return Frame(image, time.monotonic(), self.health.next_seq(), self.health.name, name)


NO_DECODER_HINT = "Pillow (pip install 'edge-agent[png]') or OpenCV (the video extra)"


def _can_decode_other() -> bool:
    if imageops.opencv() is not None:
        return True
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _pillow_decode(data: bytes) -> np.ndarray | None:
    """A PNG/BMP as BGR (or gray kept as BGR, as OpenCV's IMREAD_COLOR), None if undecodable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            rgb = np.asarray(opened.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return np.ascontiguousarray(rgb[:, :, ::-1])
