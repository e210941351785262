"""Fuzzing the OpenCV-free MJPEG parsers (raw MJPEG, AVI/MJPEG, HTTP multipart), the JPEG header
reader and the decoder: whatever the bytes, in any chunking, only MjpegError comes out (or
None from the decoder), quickly, with memory bounded by the frame cap."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.pipeline import imageops
from agent.sources.base import FrameNeed
from agent.sources.jpeg import decode_jpeg_for, jpeg_dimensions
from agent.sources.mjpeg import AviMjpegParser, JpegSplitter, MjpegError
from agent.sources.multipart import MultipartParser
from tests.sources.mjpeg_media import photo_jpegs
from tests.support.fuzz import check_parser, fuzz_settings, outside_bytes

SMALL = photo_jpegs(2, (64, 48), quality=50)
CAP = 64 * 1024  # frame cap for the fuzzed parsers: a buffer never grows far past it


def _avi(frames: list[bytes]) -> bytes:
    """A minimal AVI/MJPEG file: RIFF, hdrl (avih, strl/strh MJPG), movi of 00dc chunks."""

    def chunk(fourcc: bytes, body: bytes) -> bytes:
        return fourcc + len(body).to_bytes(4, "little") + body + b"\x00" * (len(body) & 1)

    def listed(kind: bytes, body: bytes) -> bytes:
        return b"LIST" + (len(body) + 4).to_bytes(4, "little") + kind + body

    avih = (40000).to_bytes(4, "little") + b"\x00" * 28 + (64).to_bytes(4, "little")
    avih += (48).to_bytes(4, "little") + b"\x00" * 16
    strh = b"vidsMJPG" + b"\x00" * 48
    header = listed(b"hdrl", chunk(b"avih", avih) + listed(b"strl", chunk(b"strh", strh)))
    movi = listed(b"movi", b"".join(chunk(b"00dc", f) for f in frames))
    body = b"AVI " + header + movi
    return b"RIFF" + len(body).to_bytes(4, "little") + body


AVI = _avi(SMALL)
MULTIPART = b"".join(
    b"--b\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(f) + f + b"\r\n"
    for f in SMALL
)


@pytest.fixture(scope="module", autouse=True)
def no_opencv() -> Iterator[None]:
    """The decoder under test is simplejpeg (the device install's)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(imageops.ENV, "off")
        yield


def _chunked(make: type[JpegSplitter] | type[AviMjpegParser]) -> Callable[[bytes], list[bytes]]:
    def parse(data: bytes) -> list[bytes]:
        parser = make(max_frame=CAP)
        frames: list[bytes] = []
        for i in range(0, len(data), 97):
            frames += parser.feed(data[i : i + 97])
        parser.end()
        return frames

    return parse


def test_the_seeds_parse() -> None:
    assert _chunked(JpegSplitter)(b"".join(SMALL)) == SMALL
    assert _chunked(AviMjpegParser)(AVI) == SMALL


@fuzz_settings
@given(outside_bytes([b"".join(SMALL)], max_size=4096))
def test_raw_mjpeg_only_raises_mjpeg_error(data: bytes) -> None:
    check_parser(_chunked(JpegSplitter), data, (MjpegError,))


@fuzz_settings
@given(outside_bytes([AVI], max_size=4096))
def test_avi_only_raises_mjpeg_error(data: bytes) -> None:
    check_parser(_chunked(AviMjpegParser), data, (MjpegError,))


@fuzz_settings
@given(outside_bytes([MULTIPART], max_size=4096), st.integers(1, 512))
def test_multipart_only_raises_mjpeg_error(data: bytes, chunk: int) -> None:
    def parse(body: bytes) -> None:
        parser = MultipartParser(b"b", max_part=CAP, max_headers=1024, max_preamble=4096)
        for i in range(0, len(body), chunk):
            parser.feed(body[i : i + chunk])
        parser.end()

    check_parser(parse, data, (MjpegError,))


@fuzz_settings
@given(outside_bytes(SMALL, max_size=4096))
def test_jpeg_headers_and_decoding_never_raise(data: bytes) -> None:
    def parse(jpeg: bytes) -> None:
        size = jpeg_dimensions(jpeg)
        if size is not None and 0 < size[0] * size[1] <= 64 * 48 * 4:
            image = decode_jpeg_for(jpeg, size, FrameNeed(16, 16))
            assert image is None or image.dtype == np.uint8

    check_parser(parse, data, ())
