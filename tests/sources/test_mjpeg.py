"""Motion-JPEG files without OpenCV: the raw and AVI parsers, and the file source over them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.pipeline import imageops
from agent.sources.base import Frame, FrameNeed
from agent.sources.jpeg import decode_jpeg_for, jpeg_dimensions
from agent.sources.jpegstream import JpegStreamSource
from agent.sources.mjpeg import AviMjpegParser, JpegSplitter, MjpegError
from agent.sources.mjpeg_file import mjpeg_file_source
from tests.sources.mjpeg_media import photo_jpegs, write_avi, write_mjpeg


@pytest.fixture(autouse=True)
def no_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(imageops.ENV, "off")


def _feed(parser: JpegSplitter | AviMjpegParser, data: bytes, chunk: int) -> list[bytes]:
    frames = []
    for i in range(0, len(data), chunk):
        frames += parser.feed(data[i : i + chunk])
    parser.end()
    return frames


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_raw_mjpeg_splits_into_the_very_jpegs_in_any_chunking(chunk: int) -> None:
    jpegs = photo_jpegs(4)
    assert _feed(JpegSplitter(), b"".join(jpegs), chunk) == jpegs


def test_a_thumbnail_inside_an_app1_segment_does_not_end_the_frame() -> None:
    small, big = photo_jpegs(1, (64, 48))[0], photo_jpegs(2)[1]
    app1 = b"Exif\x00\x00" + small  # a JPEG (with its own EOI) inside the segment
    framed = big[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + big[2:]
    assert _feed(JpegSplitter(), framed + big, 1000) == [framed, big]


def test_a_frame_over_the_cap_fails_before_it_is_buffered_whole() -> None:
    splitter = JpegSplitter(max_frame=10_000)
    with pytest.raises(MjpegError) as caught:
        splitter.feed(photo_jpegs(1)[0])
    assert caught.value.reason == "frame_too_large"


def test_a_truncated_last_frame_and_garbage_are_named() -> None:
    jpeg = photo_jpegs(1)[0]
    splitter = JpegSplitter()
    assert splitter.feed(jpeg + jpeg[:5000]) == [jpeg]
    with pytest.raises(MjpegError, match="truncated"):
        splitter.end()
    with pytest.raises(MjpegError, match="not_jpeg"):
        JpegSplitter().feed(b"GIF89a" + jpeg)


def test_avi_frames_are_its_00dc_chunks_with_its_frame_rate(tmp_path: Path) -> None:
    jpegs = photo_jpegs(3)
    avi = write_avi(tmp_path / "photos.avi", jpegs, 12.0, (640, 480)).read_bytes()
    parser = AviMjpegParser()
    frames = _feed(parser, avi, 13)
    assert len(frames) == 3
    assert parser.info is not None
    assert (parser.info.width, parser.info.height, round(parser.info.fps, 3)) == (640, 480, 12.0)
    assert all(jpeg_dimensions(f) == (640, 480) for f in frames)


def test_avi_chunk_sizes_are_checked_before_reading_and_other_codecs_refused(
    tmp_path: Path,
) -> None:
    avi = write_avi(tmp_path / "photos.avi", photo_jpegs(2), 10.0, (640, 480)).read_bytes()
    with pytest.raises(MjpegError) as caught:
        _feed(AviMjpegParser(max_frame=1000), avi, 65536)
    assert caught.value.reason == "frame_too_large"
    at = avi.index(b"MJPG")
    with pytest.raises(MjpegError, match="not_mjpeg"):
        AviMjpegParser().feed(avi[:at] + b"H264" + avi[at + 4 :])
    with pytest.raises(MjpegError, match="truncated"):
        _feed(AviMjpegParser(), avi[: len(avi) // 2], 65536)
    with pytest.raises(MjpegError, match="not_avi"):
        AviMjpegParser().feed(b"RIFF\x00\x00\x00\x00WAVE")


@pytest.mark.parametrize(("need", "shape"), [
    (None, (480, 640, 3)),
    (FrameNeed(224, 224), (240, 320, 3)),
    (FrameNeed(96, 96), (120, 160, 3)),
    (FrameNeed(64, 64, gray=True), (120, 160)),
    (FrameNeed(80, 60, gray=True), (60, 80)),
])  # fmt: skip
def test_simplejpeg_decodes_at_the_smallest_scale_that_covers_the_model(
    need: FrameNeed | None, shape: tuple[int, ...]
) -> None:
    image = decode_jpeg_for(photo_jpegs(1)[0], (640, 480), need)
    assert image is not None
    assert image.shape == shape
    assert image.dtype == np.uint8


def test_simplejpeg_and_opencv_decode_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    jpeg = photo_jpegs(1)[0]
    ours = decode_jpeg_for(jpeg, (640, 480), FrameNeed(300, 200))
    monkeypatch.setenv(imageops.ENV, "on")
    theirs = decode_jpeg_for(jpeg, (640, 480), FrameNeed(300, 200))
    assert ours is not None
    assert theirs is not None
    assert ours.shape == theirs.shape == (240, 320, 3)
    assert int(np.abs(ours.astype(int) - theirs.astype(int)).max()) <= 2
    assert decode_jpeg_for(b"\xff\xd8garbage", (640, 480), None) is None


def _drain(source: JpegStreamSource, limit: float = 10.0) -> list[Frame]:
    frames, deadline = [], time.monotonic() + limit
    while not source.finished and time.monotonic() < deadline:
        frame = source.get(timeout=0.1)
        if frame is not None:
            frames.append(frame)
    source.close()
    return frames


@pytest.mark.parametrize("suffix", [".mjpeg", ".avi"])
def test_an_unthrottled_file_yields_every_frame_in_order_then_finishes(
    tmp_path: Path, suffix: str
) -> None:
    jpegs = photo_jpegs(6)
    path = tmp_path / f"photos{suffix}"
    if suffix == ".avi":
        write_avi(path, jpegs, 25.0, (640, 480))
    else:
        write_mjpeg(path, jpegs)
    source = mjpeg_file_source(path, pace="unthrottled", need=lambda: FrameNeed(224, 224))
    frames = _drain(source)
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5, 6]
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    assert source.stats()["errors"] == 0


def test_a_realtime_raw_file_plays_at_the_default_rate_and_loops(tmp_path: Path) -> None:
    path = write_mjpeg(tmp_path / "photos.mjpg", photo_jpegs(3))
    source = mjpeg_file_source(path, loop=True, default_fps=20.0)
    started = time.monotonic()
    seen = [f for f in (source.get(timeout=1.0) for _ in range(8)) if f is not None]
    elapsed = time.monotonic() - started
    source.close()
    assert len(seen) == 8
    assert seen[-1].seq >= 8
    assert elapsed >= 7 / 20.0 * 0.8


def test_a_missing_or_corrupt_file_is_counted_by_kind_and_ends(tmp_path: Path) -> None:
    missing = mjpeg_file_source(tmp_path / "absent.mjpeg", pace="unthrottled")
    assert _drain(missing) == []
    assert missing.stats()["error.open_failed"] == 1
    bad = write_mjpeg(tmp_path / "bad.mjpeg", [photo_jpegs(1)[0], b"not a jpeg at all"])
    corrupt = mjpeg_file_source(bad, pace="unthrottled")
    assert len(_drain(corrupt)) == 1
    assert corrupt.stats()["error.bad_stream.not_jpeg"] == 1
