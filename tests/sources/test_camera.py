"""The OpenCV source on real video files written with cv2.VideoWriter from real digit images."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.backoff import Backoff
from agent.sources.base import Frame
from agent.sources.camera import CameraSource, parse_camera_target
from tests.sources.media import digit_frames, write_video


def _drain(source: CameraSource, limit: float = 10.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        frame = source.get(0.1)
        if frame is not None:
            frames.append(frame)
        elif source.finished:
            break
    return frames


@pytest.mark.parametrize(
    ("target", "kind", "value"),
    [
        (0, "device", 0),
        ("2", "device", 2),
        ("/dev/video1", "device", "/dev/video1"),
        ("rtsp://cam.local/stream", "stream", "rtsp://cam.local/stream"),
        ("HTTP://cam.local/mjpg", "stream", "HTTP://cam.local/mjpg"),
        ("clips/door.mp4", "file", "clips/door.mp4"),
    ],
)
def test_camera_targets_are_classified(target: str | int, kind: str, value: str | int) -> None:
    parsed = parse_camera_target(target)
    assert (parsed.kind, parsed.value) == (kind, value)


def test_unthrottled_video_file_yields_every_frame_in_order_then_finishes(
    make_video: Callable[..., Path],
) -> None:
    source = CameraSource(str(make_video(count=12)), pace="unthrottled")
    try:
        frames = _drain(source)
    finally:
        source.close()
    assert [f.seq for f in frames] == list(range(1, 13))
    assert all(f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(a.t <= b.t for a, b in itertools.pairwise(frames))
    assert source.finished
    assert source.stats()["dropped"] == 0
    # MJPG is lossy: the decoded frame is close to the digit that was written.
    original = digit_frames(1)[0]
    assert np.mean(np.abs(frames[0].image.astype(int) - original.astype(int))) < 8


def test_realtime_pacing_follows_the_file_fps(make_video: Callable[..., Path]) -> None:
    source = CameraSource(str(make_video(count=10, fps=20.0)), pace="realtime", keep_all=True)
    started = time.monotonic()
    try:
        frames = _drain(source)
    finally:
        source.close()
    elapsed = time.monotonic() - started
    assert len(frames) == 10
    assert elapsed >= 0.4  # 10 frames at 20 fps: at least 9 periods of 50 ms


def test_looping_file_restarts_from_the_beginning(make_video: Callable[..., Path]) -> None:
    source = CameraSource(str(make_video(count=5)), loop=True, pace="unthrottled")
    try:
        frames = [source.get(2.0) for _ in range(12)]
    finally:
        source.close()
    assert all(f is not None for f in frames)
    images = [f.image for f in frames if f is not None]
    np.testing.assert_array_equal(images[0], images[5])
    np.testing.assert_array_equal(images[2], images[7])
    assert not np.array_equal(images[0], images[1])


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(
    make_video: Callable[..., Path],
) -> None:
    source = CameraSource(str(make_video(count=60, fps=200.0)), pace="realtime")
    taken: list[Frame] = []
    try:
        while True:
            frame = source.get(0.5)
            if frame is None:
                if source.finished:
                    break
                continue
            taken.append(frame)
            time.sleep(0.03)  # a consumer slower than 200 fps
    finally:
        source.close()
    stats = source.stats()
    assert stats["produced"] == 60
    assert stats["dropped"] > 0
    assert len(taken) + stats["dropped"] == 60
    assert taken[-1].seq == 60
    seqs = [f.seq for f in taken]
    assert seqs == sorted(seqs)
    assert any(b - a > 1 for a, b in itertools.pairwise(seqs))


def test_missing_target_is_retried_with_backoff_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "late.avi"
    source = CameraSource(str(path), pace="unthrottled", backoff=Backoff(base=0.05, max_delay=0.1))
    try:
        deadline = time.monotonic() + 5
        while source.stats().get("error.open_failed", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert source.stats()["error.open_failed"] >= 2
        write_video(tmp_path / "tmp.avi", digit_frames(3), 20.0).rename(path)
        frames = _drain(source)
    finally:
        source.close()
    assert [f.seq for f in frames] == [1, 2, 3]


def test_close_stops_a_looping_source_promptly(make_video: Callable[..., Path]) -> None:
    source = CameraSource(str(make_video(count=5)), loop=True, pace="realtime")
    assert source.get(2.0) is not None
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1.0
    assert source.finished
    assert source.get(0.05) is None


def test_video_writer_produced_a_readable_file(make_video: Callable[..., Path]) -> None:
    cap = cv2.VideoCapture(str(make_video(count=4)))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    cap.release()
