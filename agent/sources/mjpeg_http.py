"""MJPEG over HTTP without OpenCV: the socket adapter of :mod:`agent.sources.multipart`.

``GET`` the URL (``http://`` or ``https://``, the system's CA store for TLS), check the status
and the ``multipart/x-mixed-replace`` content type, then feed the body to a
:class:`~agent.sources.multipart.MultipartParser` as it arrives. Connect and read time out after
``timeout_s``; a failed or ended stream is reopened with jittered backoff by
:class:`~agent.sources.jpegstream.JpegStreamSource`.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from agent.sources.base import FrameNeed
from agent.sources.jpegstream import JpegStreamSource, SourceOpenError
from agent.sources.multipart import DEFAULT_MAX_PART, MultipartParser, boundary_of

_READ = 64 * 1024
USER_AGENT = "edge-agent"


class MjpegHttpReader:
    """One HTTP connection's parts."""

    fps = 0.0

    def __init__(self, url: str, *, timeout_s: float = 10.0, max_part: int = DEFAULT_MAX_PART):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceOpenError(f"{url!r} is not an http:// or https:// URL")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._conn = cls(parts.hostname, parts.port, timeout=timeout_s)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            self._conn.request("GET", target, headers={"User-Agent": USER_AGENT})
            self._response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise SourceOpenError(f"cannot open {_safe(url)}: {exc}") from None
        if self._response.status != 200:
            self._conn.close()
            raise SourceOpenError(
                f"{_safe(url)} answered HTTP {self._response.status} {self._response.reason}"
            )
        try:
            boundary = boundary_of(self._response.getheader("Content-Type", ""))
        except ValueError:
            self._conn.close()
            raise
        self._parser = MultipartParser(boundary, max_part=max_part)

    def frames(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(_READ)
            except http.client.HTTPException as exc:
                raise OSError(f"the stream broke: {exc}") from None
            if not chunk:
                self._parser.end()
                return
            yield from self._parser.feed(chunk)

    def close(self) -> None:
        self._conn.close()


def _safe(url: str) -> str:
    """The URL without any ``user:password@`` (never logged)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def mjpeg_http_source(
    url: str,
    *,
    name: str = "mjpeg_http",
    need: Callable[[], FrameNeed | None] | None = None,
    min_period_s: float = 0.0,
    timeout_s: float = 10.0,
) -> JpegStreamSource:
    return JpegStreamSource(
        lambda: MjpegHttpReader(url, timeout_s=timeout_s),
        name=name,
        live=True,
        need=need,
        min_period_s=min_period_s,
    )
