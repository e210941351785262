from __future__ import annotations

import random
import threading
import time

import pytest

from agent.backoff import Backoff
from agent.sources.base import ErrorCounter, FrameNeed, LatestSlot, jpeg_reduction


def test_error_counter_counts_every_error_but_logs_a_kind_once_per_interval() -> None:
    counter = ErrorCounter(interval=60.0)
    decisions = [
        counter.record("bad_json", 0.0),
        counter.record("bad_json", 30.0),
        counter.record("bad_csv", 30.0),
        counter.record("bad_json", 59.9),
        counter.record("bad_json", 60.0),
    ]
    assert decisions == [True, False, True, False, True]
    assert counter.snapshot() == {"bad_json": 4, "bad_csv": 1}
    assert counter.total == 5


def test_latest_slot_keeps_only_the_newest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        assert slot.put(i)
    assert slot.take(0) == 4
    assert slot.dropped == 4
    assert slot.take(0.01) is None


def test_latest_slot_in_blocking_mode_drops_nothing() -> None:
    slot: LatestSlot[int] = LatestSlot(block=True)
    received: list[int] = []

    def consume() -> None:
        for _ in range(50):
            item = slot.take(2.0)
            assert item is not None
            received.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(50):
        slot.put(i)
    consumer.join()
    assert received == list(range(50))
    assert slot.dropped == 0


def test_closing_the_slot_wakes_a_waiting_consumer() -> None:
    slot: LatestSlot[int] = LatestSlot()
    threading.Timer(0.05, slot.close).start()
    started = time.monotonic()
    assert slot.take(5.0) is None
    assert time.monotonic() - started < 2.0
    assert slot.put(1) is False


def test_backoff_grows_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=0.5, factor=2.0, max_delay=2.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(5)]
    for delay, ceiling in zip(delays, [0.5, 1.0, 2.0, 2.0, 2.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(
    ("src", "need", "factor"),
    [
        ((640, 480), FrameNeed(224, 224), 2),
        ((640, 480), FrameNeed(160, 120), 4),
        ((64, 64), FrameNeed(8, 8, gray=True), 8),
        ((1920, 1080), FrameNeed(300, 300), 2),  # stretch: the short side decides
        ((1920, 1080), FrameNeed(300, 300, letterbox=True), 4),  # letterbox: the fitted side
        ((224, 224), FrameNeed(224, 224), 1),
        ((200, 200), FrameNeed(224, 224), 1),  # upscaling: decode at full size
        ((640, 480), None, 1),  # no model yet: full size
    ],
)
def test_jpeg_reduction_is_the_largest_scale_that_still_covers_the_model_input(
    src: tuple[int, int], need: FrameNeed | None, factor: int
) -> None:
    assert jpeg_reduction(*src, need) == factor
