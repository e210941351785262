"""The transfer state machine: window, resume from a bitmap, bad blocks, deadline, watermark."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff
from agent.errors import BundleRejected
from agent.update.transfer import Bitmap, Transfer, TransferLimits, block_sizes, check_block_fits

SIZES = block_sizes(10 * 1024 + 100, 1024)  # 11 blocks, the last one 100 bytes


def _transfer(held: Bitmap | None = None, **limits: float) -> Transfer:
    bitmap = held or Bitmap(len(SIZES))
    backoff = Backoff(base=1.0, max_delay=1.0, rng=random.Random(0))
    return Transfer(bitmap, SIZES, TransferLimits(**limits), now=0.0, backoff=backoff)  # type: ignore[arg-type]


def test_block_sizes_cover_the_payload_with_a_short_last_block() -> None:
    assert SIZES == [1024] * 10 + [100]


def test_at_most_window_blocks_are_requested_at_once() -> None:
    transfer = _transfer(window=4)
    assert transfer.requests(0.0) == [0, 1, 2, 3]
    assert transfer.requests(0.0) == []
    transfer.arrived(1, 0.1)
    assert transfer.requests(0.1) == [4]
    assert transfer.requested == 5


def test_a_resumed_transfer_never_requests_blocks_it_holds() -> None:
    held = Bitmap(len(SIZES))
    for index in (0, 1, 2, 5, 9):
        held.set(index)
    transfer = _transfer(held, window=8)
    asked = transfer.requests(0.0)
    assert asked == [3, 4, 6, 7, 8, 10]
    assert not set(asked) & set(held.held())


def test_the_transfer_completes_when_every_block_arrived() -> None:
    transfer = _transfer(window=16)
    for index in transfer.requests(0.0):
        transfer.arrived(index, 0.5)
    assert transfer.complete
    assert transfer.verdict(1e9) is None


def test_a_block_that_was_not_requested_is_not_accepted() -> None:
    transfer = _transfer(window=2)
    transfer.requests(0.0)
    assert not transfer.is_expected(5)
    with pytest.raises(ValueError, match="not requested"):
        transfer.arrived(5, 0.0)


def test_a_corrupt_block_is_counted_and_requested_again_after_a_backoff() -> None:
    transfer = _transfer(window=1)
    assert transfer.requests(0.0) == [0]
    delay = transfer.corrupt(0, 0.0)
    assert transfer.bad_blocks == 1
    assert 0.5 <= delay <= 1.0
    assert transfer.requests(0.0) == [1]  # the window goes on with the next block
    transfer.arrived(1, 0.1)
    assert transfer.requests(delay) == [0]


def test_a_transfer_past_its_deadline_is_abandoned() -> None:
    transfer = _transfer(deadline_s=60.0, min_bytes_per_s=0.0)
    assert transfer.verdict(59.0) is None
    assert transfer.verdict(61.0) == "deadline"


def test_throughput_under_the_watermark_is_too_slow_after_a_whole_window() -> None:
    transfer = _transfer(window=16, min_bytes_per_s=1000.0, rate_window_s=10.0)
    transfer.requests(0.0)
    transfer.arrived(0, 1.0)  # 1024 bytes in 10 s: ~102 B/s
    assert transfer.verdict(9.0) is None  # grace: not a whole rate window yet
    assert transfer.verdict(10.0) == "too_slow"


def test_throughput_at_the_watermark_is_fine() -> None:
    transfer = _transfer(window=16, min_bytes_per_s=1000.0, rate_window_s=2.0)
    transfer.requests(0.0)
    for index in range(4):
        transfer.arrived(index, 0.5 * index + 0.5)
    assert transfer.bytes_per_s(2.0) == pytest.approx(4 * 1024 / 2.0)
    assert transfer.verdict(2.0) is None


def test_a_reconnect_restarts_the_grace_period_of_the_watermark() -> None:
    transfer = _transfer(min_bytes_per_s=1000.0, rate_window_s=10.0)
    transfer.resumed(100.0)
    assert transfer.verdict(105.0) is None
    assert transfer.verdict(110.0) == "too_slow"


def test_a_bitmap_survives_serialisation_and_rejects_a_foreign_one() -> None:
    bitmap = Bitmap(11)
    for index in (0, 7, 10):
        bitmap.set(index)
    again = Bitmap.from_bytes(bitmap.to_bytes(), 11)
    assert again.held() == [0, 7, 10]
    assert again.count == 3
    with pytest.raises(ValueError, match="not one for 12 blocks"):
        Bitmap.from_bytes(bitmap.to_bytes(), 12)


def test_a_bitmap_with_bits_past_the_last_block_is_refused() -> None:
    data = bytearray(Bitmap(11).to_bytes())
    data[-1] = 0xFF
    with pytest.raises(ValueError, match="past the last block"):
        Bitmap.from_bytes(bytes(data), 11)


def test_blocks_larger_than_the_announced_packet_size_are_refused_at_the_header() -> None:
    check_block_fits(128 * 1024, 1_049_600)
    with pytest.raises(BundleRejected) as info:
        check_block_fits(2 << 20, 1_049_600)
    assert (info.value.code, info.value.reason) == (
        "too_large",
        "blocks are 2097152 bytes; this device accepts MQTT packets of at most 1049600 bytes "
        "(mqtt.max_packet_bytes)",
    )
