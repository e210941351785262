"""What is in flight and the in-memory tail: the outbox never skips a row it must still send.

Against a brute-force model: after any sequence of commits, sends (as the forwarder does them,
a prefix of what was offered, or out of that order), PUBACKs, drops and releases, the outbox
offers exactly the committed rows that are not in flight, oldest first."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.store.inflight import InFlight
from agent.store.outbox import Outbox

TOPIC = "edge/pi-1/results"


def _payload(seq: int) -> bytes:
    return b'{"seq":%d}' % seq


def test_rows_sent_as_a_prefix_of_the_offer_raise_the_floor() -> None:
    flight = InFlight()
    flight.offer([1, 2, 3, 4])
    flight.sent([1, 2], token=10, at=0.0)
    flight.sent([3], token=11, at=0.0)
    assert (flight.floor, flight.mixed, flight.messages, flight.seqs) == (3, False, 2, 3)
    assert flight.acked([10, 99]) == [1, 2]  # an unknown token acknowledges nothing


def test_a_send_out_of_offer_order_falls_back_to_reading_every_row() -> None:
    flight = InFlight()
    flight.offer([1, 2, 3])
    flight.sent([2], token=10, at=0.0)
    assert (flight.floor, flight.mixed) == (0, True)
    flight.acked([10])
    assert flight.mixed is False  # nothing in flight: the floor is exact again


def test_stale_sends_are_the_head_of_the_send_order() -> None:
    flight = InFlight()
    flight.offer([1, 2, 3])
    flight.sent([1, 2], token=10, at=1.0)
    flight.sent([3], token=11, at=5.0)
    assert flight.stale(before=2.0) == [1, 2]
    assert flight.release([1, 2]) == 2
    assert (flight.floor, flight.mixed, flight.messages) == (0, True, 1)


@pytest.mark.parametrize("seed", range(6))
def test_the_outbox_offers_exactly_the_committed_rows_not_in_flight(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    outbox = Outbox(tmp_path / "outbox.db", commit_max=1000, max_bytes=4000)
    committed: dict[int, int] = {}  # seq -> token or 0 (the model)
    token = 0
    for _ in range(400):
        op = rng.random()
        if op < 0.35:
            for _ in range(rng.randint(1, 20)):
                outbox.enqueue(TOPIC, _payload)
            outbox.commit()
            stored = _stored(outbox)
            committed = {s: committed.get(s, 0) for s in stored}  # the byte bound drops oldest
        elif op < 0.7:
            offer = outbox.next_batch(rng.randint(1, 30))
            start = 0 if rng.random() < 0.9 else rng.randint(0, len(offer))  # mostly a prefix
            while start < len(offer):
                end = min(len(offer), start + rng.randint(1, 8))
                token += 1
                outbox.mark_sent_many([item.seq for item in offer[start:end]], token)
                for item in offer[start:end]:
                    committed[item.seq] = token
                start = end
        elif op < 0.9:
            tokens = sorted({t for t in committed.values() if t and rng.random() < 0.5})
            outbox.ack_many(tokens)
            committed = {s: t for s, t in committed.items() if t not in tokens}
        else:
            outbox.release_inflight()
            committed = dict.fromkeys(committed, 0)
        expected = sorted(s for s, t in committed.items() if not t)
        assert [item.seq for item in outbox.next_batch(10_000)] == expected
    outbox.close()


def _stored(outbox: Outbox) -> set[int]:
    return {seq for (seq,) in outbox._db.execute("SELECT seq FROM items")}
