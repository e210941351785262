"""MJPEG over HTTP: a ``multipart/x-mixed-replace`` body split into JPEG parts (pure).

What IP cameras, ``mjpg-streamer``, motion and most webcam servers send. :func:`boundary_of`
reads the boundary from the response's ``Content-Type``; :class:`MultipartParser` is a push
parser (bytes in as they arrive, whole parts out) that checks every size before buffering:

* a part's ``Content-Length`` over ``max_part`` raises ``part_too_large`` before one body byte
  is kept (a hostile 2 GB length costs nothing);
* a part without ``Content-Length`` is read up to the next boundary, and raises
  ``part_too_large`` once ``max_part`` bytes pass without one;
* no boundary within ``max_preamble`` bytes raises ``no_boundary``; part headers over
  ``max_headers`` bytes raise ``bad_headers``; a non-JPEG part raises ``not_jpeg``;
* :meth:`MultipartParser.end` at the end of the body raises ``truncated`` inside a part.

The errors are :class:`~agent.sources.mjpeg.MjpegError`, like the file parsers'.
"""

from __future__ import annotations

from agent.sources.mjpeg import MjpegError

DEFAULT_MAX_PART = 16 * 1024 * 1024
MAX_HEADERS = 8 * 1024
MAX_PREAMBLE = 64 * 1024
_TYPE = "multipart/x-mixed-replace"


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/x-mixed-replace; boundary=...`` content type."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != _TYPE:
        got = kind.strip() or "untyped"
        raise MjpegError("not_multipart", f"the response is {got!r}, not {_TYPE}")
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            boundary = value.strip().strip('"')
            if boundary and len(boundary) <= 200 and boundary.isascii():
                return boundary.encode("ascii")
            break
    raise MjpegError("no_boundary", f"the content type {content_type!r} names no usable boundary")


class MultipartParser:
    """The parts of one multipart body. Not thread-safe; one per connection."""

    def __init__(
        self,
        boundary: bytes,
        *,
        max_part: int = DEFAULT_MAX_PART,
        max_headers: int = MAX_HEADERS,
        max_preamble: int = MAX_PREAMBLE,
    ) -> None:
        # Servers write "--" + boundary; some declare the boundary with the dashes already on.
        self._delims = (b"--" + boundary,) + ((boundary,) if boundary.startswith(b"--") else ())
        self.max_part = max_part
        self.max_headers = max_headers
        self.max_preamble = max_preamble
        self._buf = bytearray()
        self._state = "boundary"  # boundary -> headers -> body -> boundary ...
        self._length: int | None = None
        self.parts = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        parts: list[bytes] = []
        while True:
            step = {"boundary": self._boundary, "headers": self._headers, "body": self._body}
            progressed, part = step[self._state]()
            if part is not None:
                parts.append(part)
                self.parts += 1
            if not progressed:
                return parts

    def end(self) -> None:
        """The body ended; raise ``truncated`` when it ended inside a part."""
        if self._state != "boundary" or self._buf.strip():
            raise MjpegError("truncated", f"the stream ended inside part {self.parts + 1}")

    def _boundary(self) -> tuple[bool, bytes | None]:
        buf = self._buf
        for delim in self._delims:
            at = buf.find(delim)
            if at < 0:
                continue
            line_end = buf.find(b"\n", at)
            if line_end < 0:
                break
            if buf[at + len(delim) : at + len(delim) + 2] == b"--":  # the closing delimiter
                del buf[: line_end + 1]
                return True, None
            del buf[: line_end + 1]
            self._state = "headers"
            return True, None
        if len(buf) > self.max_preamble:
            raise MjpegError("no_boundary", f"no boundary line in {self.max_preamble} bytes")
        return False, None

    def _headers(self) -> tuple[bool, bytes | None]:
        buf = self._buf
        end, skip = buf.find(b"\r\n\r\n"), 4
        bare = buf.find(b"\n\n")
        if bare >= 0 and (end < 0 or bare < end):
            end, skip = bare, 2
        if buf[:2] == b"\r\n":  # a part with no headers at all
            end, skip = 0, 2
        if end < 0:
            if len(buf) > self.max_headers:
                raise MjpegError("bad_headers", f"part headers over {self.max_headers} bytes")
            return False, None
        if end > self.max_headers:
            raise MjpegError("bad_headers", f"part headers over {self.max_headers} bytes")
        headers = _parse_headers(bytes(buf[:end]))
        del buf[: end + skip]
        kind = headers.get("content-type", "image/jpeg").split(";")[0].strip().lower()
        if kind not in ("image/jpeg", "image/jpg", "image/pjpeg"):
            raise MjpegError("not_jpeg", f"part {self.parts + 1} is {kind!r}, not image/jpeg")
        self._length = _content_length(headers.get("content-length"), self.max_part)
        self._state = "body"
        return True, None

    def _body(self) -> tuple[bool, bytes | None]:
        buf = self._buf
        if self._length is not None:
            if len(buf) < self._length:
                return False, None
            part = bytes(buf[: self._length])
            del buf[: self._length]
        else:
            at = min((i for i in (buf.find(b"\n" + d) for d in self._delims) if i >= 0), default=-1)
            if at < 0:
                if len(buf) > self.max_part + 2:
                    raise MjpegError("part_too_large", f"no boundary after {self.max_part} bytes")
                return False, None
            cut = at - 1 if at > 0 and buf[at - 1] == 0x0D else at
            part = bytes(buf[:cut])
            del buf[: at + 1]
        self._state = "boundary"
        if part[:2] != b"\xff\xd8":
            raise MjpegError("not_jpeg", f"part {self.parts + 1} does not start with a JPEG")
        return True, part


def _parse_headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
        elif line.strip():
            raise MjpegError("bad_headers", f"a part header line without a colon: {line[:60]!r}")
    return headers


def _content_length(value: str | None, max_part: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise MjpegError("bad_headers", f"Content-Length {value[:20]!r} is not a byte count")
    length = int(value)
    if length > max_part:
        raise MjpegError("part_too_large", f"Content-Length {length} is over {max_part} bytes")
    return length
