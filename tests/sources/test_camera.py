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
from agent.sources.base import Frame, FrameNeed
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


def test_mjpeg_is_decoded_at_the_smallest_jpeg_scale_that_covers_the_model_input(
    make_video: Callable[..., Path],
) -> None:
    need = FrameNeed(32, 32)
    source = CameraSource(str(make_video(count=6)), pace="unthrottled", need=lambda: need)
    try:
        frames = _drain(source)
    finally:
        source.close()
    assert source.raw_mode
    assert [f.seq for f in frames] == list(range(1, 7))
    assert all(f.image.shape == (32, 32, 3) for f in frames)  # 64x64 decoded at 1/2


def test_a_gray_model_gets_gray_frames_and_a_model_swap_applies_to_the_next_frame(
    make_video: Callable[..., Path],
) -> None:
    needs = [FrameNeed(8, 8, gray=True)]
    source = CameraSource(str(make_video(count=8)), pace="unthrottled", need=lambda: needs[-1])
    try:
        first = source.get(10)
        needs.append(FrameNeed(64, 64))  # e.g. an update installed a larger colour model
        rest = _drain(source)
    finally:
        source.close()
    assert first is not None
    assert first.image.shape == (8, 8)  # 1/8 scale, straight to gray
    assert rest[-1].image.shape == (64, 64, 3)
    reference = cv2.VideoCapture(str(make_video(count=8, name="ref.avi")))
    ok, full = reference.read()
    reference.release()
    assert ok
    assert (
        np.abs(
            cv2.resize(
                cv2.cvtColor(full, cv2.COLOR_BGR2GRAY), (8, 8), interpolation=cv2.INTER_AREA
            ).astype(int)
            - first.image.astype(int)
        ).mean()
        < 8
    )  # same picture, not noise


def test_non_mjpeg_video_is_decoded_normally(tmp_path: Path) -> None:
    path = tmp_path / "digits.mp4"
    images = digit_frames(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 64))
    for image in images:
        writer.write(image)
    writer.release()
    source = CameraSource(str(path), pace="unthrottled", need=lambda: FrameNeed(8, 8))
    try:
        frames = _drain(source)
    finally:
        source.close()
    assert not source.raw_mode
    assert len(frames) == 5
    assert all(f.image.shape == (64, 64, 3) for f in frames)


def test_fps_cap_skips_decoding_frames_that_are_not_due_and_counts_them_dropped(
    make_video: Callable[..., Path],
) -> None:
    video = make_video(count=40, fps=40.0)
    source = CameraSource(str(video), pace="realtime", min_period_s=0.2, need=lambda: None)
    try:
        frames = _drain(source, limit=20)
    finally:
        source.close()
    stats = source.stats()
    assert stats["produced"] == 40
    assert len(frames) + stats["dropped"] == 40
    assert 2 <= len(frames) <= 20  # 1 s of video at a 5 fps cap: about 5 frames
