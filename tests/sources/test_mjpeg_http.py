"""MJPEG over HTTP: the multipart parser on real JPEGs and hostile bodies, then the source
against a real HTTP server thread on 127.0.0.1 serving ``multipart/x-mixed-replace``."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from agent.pipeline import imageops
from agent.sources.base import FrameNeed
from agent.sources.mjpeg import MjpegError
from agent.sources.mjpeg_http import mjpeg_http_source
from agent.sources.multipart import MultipartParser, boundary_of
from tests.sources.mjpeg_media import photo_jpegs

BOUNDARY = b"frameboundary"
HUGE_PART = b"Content-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n"


def body(jpegs: list[bytes], *, lengths: bool = True, boundary: bytes = BOUNDARY) -> bytes:
    out = b""
    for data in jpegs:
        head = b"Content-Type: image/jpeg\r\n"
        if lengths:
            head += b"Content-Length: %d\r\n" % len(data)
        out += b"--" + boundary + b"\r\n" + head + b"\r\n" + data + b"\r\n"
    return out


@pytest.fixture(autouse=True)
def no_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(imageops.ENV, "off")


def test_boundary_comes_from_the_content_type() -> None:
    assert boundary_of('multipart/x-mixed-replace; boundary="ab c"') == b"ab c"
    assert boundary_of("Multipart/X-Mixed-Replace;boundary=--myboundary") == b"--myboundary"
    with pytest.raises(MjpegError, match="no_boundary"):
        boundary_of("multipart/x-mixed-replace")
    with pytest.raises(MjpegError, match="not_multipart"):
        boundary_of("text/html; charset=utf-8")


@pytest.mark.parametrize("lengths", [True, False])
@pytest.mark.parametrize("chunk", [1, 999, 1 << 20])
def test_parts_are_the_very_jpegs_with_or_without_content_length(lengths: bool, chunk: int) -> None:
    jpegs = photo_jpegs(3)
    stream = body(jpegs, lengths=lengths) + b"--" + BOUNDARY + b"--\r\n"
    parser = MultipartParser(BOUNDARY)
    parts = []
    for i in range(0, len(stream), chunk):
        parts += parser.feed(stream[i : i + chunk])
    parser.end()
    assert parts == jpegs


def test_a_2gb_content_length_fails_before_any_body_is_kept() -> None:
    parser = MultipartParser(BOUNDARY, max_part=1 << 20)
    hostile = (
        b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n"
    )
    with pytest.raises(MjpegError) as caught:
        parser.feed(hostile + b"\xff\xd8" * 10)
    assert caught.value.reason == "part_too_large"


def test_no_boundary_unbounded_parts_and_truncation_are_named() -> None:
    with pytest.raises(MjpegError, match="no_boundary"):
        MultipartParser(BOUNDARY, max_preamble=4096).feed(photo_jpegs(1)[0])
    unbounded = MultipartParser(BOUNDARY, max_part=10_000)
    with pytest.raises(MjpegError, match="part_too_large"):
        unbounded.feed(body(photo_jpegs(1), lengths=False))
    jpeg = photo_jpegs(1)[0]
    truncated = MultipartParser(BOUNDARY)
    assert truncated.feed(body([jpeg])[:-5000]) == []
    with pytest.raises(MjpegError, match="truncated"):
        truncated.end()
    with pytest.raises(MjpegError, match="not_jpeg"):
        MultipartParser(BOUNDARY).feed(body([b"<html>not a picture</html>"]))
    with pytest.raises(MjpegError, match="bad_headers"):
        MultipartParser(BOUNDARY, max_headers=100).feed(b"--" + BOUNDARY + b"\r\n" + b"X" * 200)


Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """``server(handler)`` serves every GET with ``handler`` and returns the URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler: Handler) -> str:
        class Serve(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handler(self)

            def log_message(self, *args: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Serve)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/stream.mjpg"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _multipart_head(request: http.server.BaseHTTPRequestHandler) -> None:
    request.send_response(200)
    request.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
    request.end_headers()


def test_the_source_decodes_a_real_http_mjpeg_stream_at_the_model_size(
    server: Callable[[Handler], str],
) -> None:
    jpegs = photo_jpegs(20)

    def camera(request: http.server.BaseHTTPRequestHandler) -> None:
        _multipart_head(request)
        for data in jpegs:
            request.wfile.write(body([data]))
            request.wfile.flush()
            time.sleep(0.02)

    source = mjpeg_http_source(server(camera), need=lambda: FrameNeed(224, 224))
    frames = [f for f in (source.get(timeout=2.0) for _ in range(5)) if f is not None]
    source.close()
    assert len(frames) == 5
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


@pytest.mark.parametrize(("reply", "kind"), [
    (HUGE_PART, "bad_stream.part_too_large"),
    (b"no boundary here " * 5000, "bad_stream.no_boundary"),
    (b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0", "bad_stream.truncated"),
])  # fmt: skip
def test_a_hostile_stream_is_counted_by_its_named_error_and_retried(
    server: Callable[[Handler], str], reply: bytes, kind: str
) -> None:
    def hostile(request: http.server.BaseHTTPRequestHandler) -> None:
        _multipart_head(request)
        prefix = b"" if b"no boundary" in reply else b"--" + BOUNDARY + b"\r\n"
        request.wfile.write(prefix + reply)

    source = mjpeg_http_source(server(hostile))
    deadline = time.monotonic() + 10.0
    while source.stats().get(f"error.{kind}", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # reopened with backoff: the error counts again
    source.close()
    assert source.stats()[f"error.{kind}"] >= 2
    assert source.stats()["produced"] == 0


def test_an_http_error_or_a_wrong_content_type_is_an_open_failure(
    server: Callable[[Handler], str],
) -> None:
    def missing(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_error(404, "no such stream")

    def html(request: http.server.BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.end_headers()
        request.wfile.write(b"<html></html>")

    for handler, kind in ((missing, "open_failed"), (html, "bad_stream.not_multipart")):
        source = mjpeg_http_source(server(handler))
        deadline = time.monotonic() + 5.0
        while not source.stats().get(f"error.{kind}") and time.monotonic() < deadline:
            time.sleep(0.05)
        source.close()
        assert source.stats()[f"error.{kind}"] >= 1
