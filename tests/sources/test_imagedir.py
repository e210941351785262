"""The image-directory source on real PNG/JPEG files of digits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.pipeline import imageops
from agent.sources.base import Frame, FrameNeed
from agent.sources.imagedir import ImageDirSource, image_dimensions
from tests.sources.media import digit_frames


def _write(path: Path, image: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _take(source: ImageDirSource, n: int, limit: float = 3.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + limit
    while len(frames) < n and time.monotonic() < deadline:
        frame = source.get(0.05)
        if frame is not None:
            frames.append(frame)
    return frames


def test_existing_and_new_images_are_each_yielded_once(tmp_path: Path) -> None:
    images = digit_frames(3)
    _write(tmp_path / "a.png", images[0])
    source = ImageDirSource(tmp_path, poll_interval=0.02)
    (first,) = _take(source, 1)
    assert first.file == "a.png"
    np.testing.assert_array_equal(first.image, images[0])
    _write(tmp_path / "b.png", images[1])
    _write(tmp_path / "c.jpg", images[2])
    later = _take(source, 2)
    assert sorted(f.file for f in later) == ["b.png", "c.jpg"]
    assert [f.seq for f in [first, *later]] == [1, 2, 3]
    assert source.get(0.1) is None  # nothing is yielded twice


def test_include_existing_false_skips_files_present_at_start(tmp_path: Path) -> None:
    _write(tmp_path / "old.png", digit_frames(1)[0])
    source = ImageDirSource(tmp_path, poll_interval=0.02, include_existing=False)
    assert source.get(0.1) is None
    _write(tmp_path / "new.png", digit_frames(1)[0])
    assert [f.file for f in _take(source, 1)] == ["new.png"]


def test_hidden_and_other_extensions_are_ignored(tmp_path: Path) -> None:
    image = digit_frames(1)[0]
    _write(tmp_path / ".partial.png", image)
    (tmp_path / "notes.txt").write_text("hello")
    _write(tmp_path / "upload.png", image).rename(tmp_path / "upload.png.tmp")
    source = ImageDirSource(tmp_path, poll_interval=0.02)
    assert source.get(0.15) is None
    assert source.stats()["errors"] == 0


def test_undecodable_and_oversized_files_are_counted_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "a_garbage.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "b_huge.png").write_bytes(b"\x89PNG" + b"\0" * 5000)
    _write(tmp_path / "c_good.png", digit_frames(1)[0])
    source = ImageDirSource(tmp_path, poll_interval=0.02, max_bytes=4096)
    frames = _take(source, 1)
    assert [f.file for f in frames] == ["c_good.png"]
    stats = source.stats()
    assert stats["error.undecodable"] == 1
    assert stats["error.too_large"] == 1


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    _write(tmp_path / "big.png", np.zeros((300, 400, 3), dtype=np.uint8))
    source = ImageDirSource(tmp_path, poll_interval=0.02, max_pixels=100_000)
    assert source.get(0.2) is None
    assert source.stats()["error.too_large"] == 1


def test_a_file_still_growing_is_not_read_until_stable(tmp_path: Path) -> None:
    ok, encoded = cv2.imencode(".png", digit_frames(1)[0])
    assert ok
    data = encoded.tobytes()
    path = tmp_path / "slow.png"
    source = ImageDirSource(tmp_path, poll_interval=0.05)
    with path.open("wb") as handle:
        for i in range(0, len(data), 64):
            handle.write(data[i : i + 64])
            handle.flush()
            assert source.get(0.0) is None
            time.sleep(0.06)
    frames = _take(source, 1)
    assert [f.file for f in frames] == ["slow.png"]
    assert source.stats()["errors"] == 0


def test_image_dimensions_from_headers() -> None:
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    for ext in (".png", ".jpg", ".bmp"):
        ok, encoded = cv2.imencode(ext, image)
        assert ok
        assert image_dimensions(encoded.tobytes()) == (40, 30)
    assert image_dimensions(b"GIF89a") is None


def test_jpegs_are_decoded_at_the_model_size_and_pngs_in_full(tmp_path: Path) -> None:
    image = digit_frames(1)[0]  # 64x64
    _write(tmp_path / "a.jpg", image)
    _write(tmp_path / "b.png", image)
    source = ImageDirSource(tmp_path, poll_interval=0.02, need=lambda: FrameNeed(16, 16, gray=True))
    frames = {f.file: f.image for f in _take(source, 2)}
    assert frames["a.jpg"].shape == (16, 16)  # 1/4 scale, straight to gray
    assert frames["b.png"].shape == (64, 64, 3)  # PNG has no scaled decode: full size


def test_without_opencv_jpegs_decode_by_simplejpeg_and_pngs_by_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(imageops.ENV, "off")
    image = cv2.resize(digit_frames(1)[0], (640, 480), interpolation=cv2.INTER_NEAREST)
    _write(tmp_path / "a.jpg", image)
    png = _write(tmp_path / "b.png", image)
    os.utime(png, ns=(time.time_ns() + 10**9,) * 2)  # listed after the JPEG
    source = ImageDirSource(tmp_path, poll_interval=0.01, need=lambda: FrameNeed(224, 224))
    jpeg_frame, png_frame = _take(source, 2)
    assert (jpeg_frame.file, jpeg_frame.image.shape) == ("a.jpg", (240, 320, 3))
    assert (png_frame.file, png_frame.image.shape) == ("b.png", (480, 640, 3))
    np.testing.assert_array_equal(png_frame.image, image)  # lossless, BGR as OpenCV gives it


def test_without_opencv_or_pillow_a_png_is_counted_as_no_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(imageops.ENV, "off")
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    _write(tmp_path / "b.png", digit_frames(1)[0])
    source = ImageDirSource(tmp_path, poll_interval=0.01)
    assert _take(source, 1, limit=0.5) == []
    assert source.stats()["error.no_decoder"] == 1
