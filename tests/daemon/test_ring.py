"""The ring between the prepare and the interpreter stage: newest frame wins for a live source
(the replaced frame counted as dropped), a blocking source loses nothing, other items are never
dropped, and the input buffers are allocated once and reused."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from agent.daemon.ring import TensorRing
from agent.sources.base import Frame, Reading

SHAPE = (1, 4, 4, 3)


def _frame(seq: int) -> Frame:
    return Frame(np.zeros((4, 4, 3), np.uint8), time.monotonic(), seq)


def _put(ring: TensorRing, item: Frame | Reading, timeout: float | None = 1.0) -> None:
    slot = ring.acquire(timeout)
    assert slot is not None
    slot.item = item
    if isinstance(item, Frame):
        slot.buffer_for(SHAPE, np.dtype(np.uint8))[...] = item.seq
    ring.publish(slot)


def test_a_live_ring_keeps_only_the_newest_ready_frame_and_counts_the_replaced_ones() -> None:
    ring = TensorRing(live=True)
    for seq in range(1, 6):
        _put(ring, _frame(seq))
    assert ring.depth == 1
    assert ring.dropped == 4
    slot = ring.take(0)
    assert slot is not None
    assert slot.item is not None
    assert slot.item.seq == 5
    assert slot.buffer is not None
    assert int(slot.buffer[0, 0, 0, 0]) == 5
    assert ring.take(0) is None


def test_a_live_ring_never_drops_a_reading() -> None:
    ring = TensorRing(live=True)
    _put(ring, Reading((1.0,), 0.0, 1))
    _put(ring, _frame(2))
    assert ring.depth == 2
    assert ring.dropped == 0


def test_a_blocking_ring_loses_nothing_when_the_consumer_is_slow() -> None:
    ring = TensorRing(live=False)
    count = 40

    def produce() -> None:
        for seq in range(1, count + 1):
            _put(ring, _frame(seq), timeout=None)

    producer = threading.Thread(target=produce)
    producer.start()
    seen = []
    while len(seen) < count:
        slot = ring.take(5.0)
        assert slot is not None
        assert slot.item is not None
        assert slot.buffer is not None
        seen.append((slot.item.seq, int(slot.buffer[0, 0, 0, 0])))
        time.sleep(0.001)  # slower than the producer: it waits for a free slot
        ring.release(slot)
    producer.join(5.0)
    assert seen == [(seq, seq) for seq in range(1, count + 1)]
    assert ring.dropped == 0


def test_a_blocking_ring_makes_the_producer_wait_for_a_free_slot() -> None:
    ring = TensorRing(size=3, live=False)
    for seq in range(1, 4):
        _put(ring, _frame(seq))
    assert ring.acquire(0.05) is None  # all three ready, none taken
    taken = ring.take(0)
    assert taken is not None
    ring.release(taken)
    assert ring.acquire(0.05) is not None


def test_buffers_are_allocated_once_and_reused_until_the_shape_changes() -> None:
    ring = TensorRing(size=3, live=False)
    buffers = set()
    for seq in range(1, 10):
        _put(ring, _frame(seq))
        slot = ring.take(0)
        assert slot is not None
        assert slot.buffer is not None
        buffers.add(id(slot.buffer))
        ring.release(slot)
    assert len(buffers) <= 3
    slot = ring.acquire(0)
    assert slot is not None
    before = slot.buffer_for(SHAPE, np.dtype(np.uint8))
    assert slot.buffer_for(SHAPE, np.dtype(np.uint8)) is before
    other = slot.buffer_for((1, 8, 8, 1), np.dtype(np.float32))
    assert (other.shape, other.dtype) == ((1, 8, 8, 1), np.dtype(np.float32))


def test_close_wakes_a_waiting_consumer_and_ready_slots_can_still_be_taken() -> None:
    ring = TensorRing(live=False)
    _put(ring, _frame(1))
    ring.close()
    assert ring.take(0) is not None
    started = time.monotonic()
    assert ring.take(5.0) is None
    assert time.monotonic() - started < 1.0


def test_a_ring_needs_three_slots() -> None:
    with pytest.raises(ValueError, match="at least 3 slots"):
        TensorRing(size=2)
