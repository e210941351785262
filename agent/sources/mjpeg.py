"""Motion-JPEG containers without OpenCV: raw concatenated JPEGs and AVI/MJPEG (pure).

Both parsers are push parsers: :meth:`feed` takes bytes as they arrive and returns the complete
JPEG frames found so far; :meth:`end` says the input is over and raises if it stopped inside a
frame. Every size is checked before anything is buffered: a frame (or AVI chunk) larger than
``max_frame`` bytes raises :class:`MjpegError` ``frame_too_large`` without being read.

* **Raw MJPEG** (``.mjpeg``, ``.mjpg``; what ``ffmpeg -f mjpeg`` writes and many cameras
  record): JPEG after JPEG. A frame is found by its markers (SOI, segments by their lengths,
  entropy-coded data up to the next marker, EOI), so a thumbnail inside an APP1 segment does not
  end a frame early.
* **AVI/MJPEG** (``.avi`` with an ``MJPG`` video stream): RIFF chunks; ``00dc`` chunks of the
  ``movi`` list are the frames, other chunks (audio, index, ``JUNK``) are skipped unread.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import InputError

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
_SOI = b"\xff\xd8"
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class MjpegError(InputError, ValueError):
    """The bytes are not the Motion-JPEG they claim to be; ``reason`` names what failed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _hold(
    parser: JpegSplitter | AviMjpegParser, exc: MjpegError, frames: list[bytes]
) -> list[bytes]:
    """Hand out the good frames before a failure; the failure comes with the next call."""
    if not frames:
        raise exc
    parser.held = exc
    return frames


def _raise_held(parser: JpegSplitter | AviMjpegParser) -> None:
    if parser.held is not None:
        raise parser.held


class JpegSplitter:
    """Raw concatenated JPEGs in, whole JPEG frames out."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.held: MjpegError | None = None
        self._buf = bytearray()
        self._pos = 2  # where the marker walk of the current frame resumes
        self._in_scan = False

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``; an error after good frames is raised next call."""
        _raise_held(self)
        self._buf += data
        frames: list[bytes] = []
        try:
            while (frame := self._next()) is not None:
                frames.append(frame)
            if len(self._buf) > self.max_frame:
                raise MjpegError("frame_too_large", f"no end of frame in {self.max_frame} bytes")
        except MjpegError as exc:
            return _hold(self, exc, frames)
        return frames

    def end(self) -> None:
        _raise_held(self)
        if self._buf.strip(b"\x00"):
            raise MjpegError("truncated", f"input ended inside a frame ({len(self._buf)} bytes)")

    def _next(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        if buf[:2] != _SOI:
            start = buf.find(_SOI)
            if start < 0 and not buf.strip(b"\x00\r\n"):
                buf.clear()
                return None
            if start < 0 or buf[:start].strip(b"\x00\r\n"):
                raise MjpegError("not_jpeg", "bytes between frames that are not a JPEG")
            del buf[:start]
        end = self._walk()
        if end is None:
            return None
        if end > self.max_frame:
            raise MjpegError("frame_too_large", f"a {end}-byte frame is over {self.max_frame}")
        frame = bytes(buf[:end])
        del buf[:end]
        self._pos, self._in_scan = 2, False
        return frame

    def _scan_end(self, i: int) -> int | None:
        """Entropy-coded data ends at the first 0xFF not followed by 00 (stuffing) or RSTn."""
        buf = self._buf
        i = buf.find(b"\xff", i)
        while i >= 0 and i + 1 < len(buf) and (buf[i + 1] == 0 or buf[i + 1] in _STANDALONE):
            i = buf.find(b"\xff", i + 2)
        if i < 0 or i + 1 >= len(buf):
            self._pos = len(buf) if i < 0 else i  # resume the scan there
            return None
        return i

    def _walk(self) -> int | None:
        """The end of the frame at the buffer's start, or None when more bytes are needed."""
        buf, i = self._buf, self._pos
        while True:
            if self._in_scan:
                found = self._scan_end(i)
                if found is None:
                    return None
                i, self._in_scan = found, False
            if i + 2 > len(buf):
                self._pos = i
                return None
            if buf[i] != 0xFF:
                raise MjpegError("not_jpeg", f"no JPEG marker at offset {i} of a frame")
            marker = buf[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker == 0xD9:
                return i + 2
            if marker in _STANDALONE:
                i += 2
                continue
            if i + 4 > len(buf):
                self._pos = i
                return None
            length = int.from_bytes(buf[i + 2 : i + 4], "big")
            if length < 2:
                raise MjpegError("not_jpeg", f"segment length {length} at offset {i}")
            if i + 2 + length > self.max_frame:
                raise MjpegError("frame_too_large", f"a segment runs past {self.max_frame} bytes")
            if i + 2 + length > len(buf):
                self._pos = i
                return None
            i += 2 + length
            self._in_scan = marker == 0xDA  # SOS: entropy-coded data follows


@dataclass(frozen=True)
class AviInfo:
    """What the AVI header says: frame size, frames per second (0 when not stated), codec."""

    width: int
    height: int
    fps: float
    handler: bytes


class AviMjpegParser:
    """AVI bytes in, the ``00dc`` JPEG frames of its first video stream out."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.held: MjpegError | None = None
        self.info: AviInfo | None = None
        self._buf = bytearray()
        self._skip = 0  # bytes of an ignored chunk still to drop
        self._started = False
        self._fps = 0.0
        self._size = (0, 0)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``; an error after good frames is raised next call."""
        _raise_held(self)
        self._buf += data
        frames: list[bytes] = []
        try:
            self._frames(frames)
        except MjpegError as exc:
            return _hold(self, exc, frames)
        return frames

    def _frames(self, frames: list[bytes]) -> None:
        if not self._started and not self._riff_header():
            return
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buf))
                del self._buf[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            if len(self._buf) < 8:
                return
            fourcc, size = bytes(self._buf[:4]), int.from_bytes(self._buf[4:8], "little")
            if fourcc == b"LIST":
                if len(self._buf) < 12:
                    return
                self._list(bytes(self._buf[8:12]), size)
                continue
            padded = size + (size & 1)
            if fourcc[2:] not in (b"dc", b"db") and fourcc not in (b"avih", b"strh", b"strf"):
                del self._buf[:8]
                self._skip = padded  # audio, index, JUNK: dropped unread
                continue
            if size > self.max_frame:
                raise MjpegError("frame_too_large", f"{fourcc!r} chunk of {size} bytes")
            if len(self._buf) < 8 + padded:
                return
            body = bytes(self._buf[8 : 8 + size])
            del self._buf[: 8 + padded]
            frame = self._chunk(fourcc, body)
            if frame is not None:
                frames.append(frame)

    def _riff_header(self) -> bool:
        if len(self._buf) < 12:
            return False
        if self._buf[:4] != b"RIFF" or self._buf[8:12] != b"AVI ":
            raise MjpegError("not_avi", "no RIFF AVI header")
        del self._buf[:12]
        self._started = True
        return True

    def end(self) -> None:
        _raise_held(self)
        if self._skip or len(self._buf) >= 8:
            raise MjpegError("truncated", "the AVI file ends inside a chunk")

    def _list(self, kind: bytes, size: int) -> None:
        if kind in (b"hdrl", b"strl", b"movi", b"rec "):
            del self._buf[:12]  # descend: its chunks follow
        else:
            del self._buf[:8]
            self._skip = size + (size & 1)  # INFO, odml, ...

    def _chunk(self, fourcc: bytes, body: bytes) -> bytes | None:
        if fourcc == b"avih" and len(body) >= 40:
            per_frame = int.from_bytes(body[0:4], "little")
            self._fps = 1e6 / per_frame if per_frame else 0.0
            width, height = body[32:36], body[36:40]
            self._size = (int.from_bytes(width, "little"), int.from_bytes(height, "little"))
        elif fourcc == b"strh" and len(body) >= 8 and body[:4] == b"vids" and self.info is None:
            handler = body[4:8]
            if handler.upper() not in (b"MJPG", b"AVRN", b"LJPG", b"JPEG"):
                raise MjpegError("not_mjpeg", f"the AVI video stream is {handler!r}, not MJPG")
            self.info = AviInfo(self._size[0], self._size[1], self._fps, handler)
        elif fourcc == b"00dc":
            if self.info is None:
                raise MjpegError("not_mjpeg", "frames before a video stream header")
            return body if body[:2] == _SOI else None  # a zero-length dropped frame is skipped
        elif fourcc == b"00db":
            raise MjpegError("not_mjpeg", "the AVI video stream is uncompressed")
        return None
