"""The forwarder's decisions, against a publisher that implements the client's interface."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.errors import TransportError
from agent.mqtt.batch import MAX_BATCH_BYTES, results_in
from agent.mqtt.events import BoundedQueue, Connected, Disconnected, Event, Published
from agent.mqtt.messages import ModelRef, ResultMessage
from agent.mqtt.topics import Topic
from agent.store.forwarder import Forwarder, free_slots, plan_messages
from agent.store.inflight import OutboxItem
from agent.store.outbox import Outbox, OutboxError

TOPIC = "edge/pi-1/results"
MODEL = ModelRef("digits", "1", "0" * 64)


def _result(seq: int) -> bytes:
    return ResultMessage(seq, 1.0, MODEL, 2.0, {"class": seq % 10}).to_json()


class RecordingPublisher:
    """Accepts publishes like the client does, numbering them; can be 'disconnected'."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []
        self.up = True

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        if not self.up:
            raise TransportError("not connected to the broker")
        self.sent.append((str(topic), payload, qos))
        return 1000 + len(self.sent)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.db")


def _seqs(sent: list[tuple[str, bytes, int]]) -> list[tuple[int, bool]]:
    return [(json.loads(p)["seq"], json.loads(p)["historical"]) for _t, p, _q in sent]


def test_free_slots_is_zero_when_disconnected_and_never_negative() -> None:
    assert free_slots(False, 8, 0) == 0
    assert free_slots(True, 8, 3) == 5
    assert free_slots(True, 8, 9) == 0


def test_nothing_is_sent_before_the_first_connection(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher)
    outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 0
    assert publisher.sent == []


def test_window_bounds_what_is_in_flight_and_pubacks_open_it(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher, window=2)
    forwarder.handle(Connected(1, "5"))
    for _ in range(5):
        outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 2
    assert forwarder.pump() == 0
    forwarder.handle(Published(1001))
    assert forwarder.pump() == 1
    assert _seqs(publisher.sent) == [(1, False), (2, False), (3, False)]
    assert all(qos == 1 for _t, _p, qos in publisher.sent)
    assert outbox.stats().depth == 4


def test_unacked_and_outage_items_are_sent_as_historical_live_ones_are_not(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher, window=10)
    forwarder.handle(Connected(1, "5"))
    outbox.enqueue(TOPIC, _result)
    outbox.enqueue(TOPIC, _result)
    forwarder.pump()
    forwarder.handle(Published(1001))
    forwarder.handle(Disconnected(1, "connection lost"))
    outbox.enqueue(TOPIC, _result)  # produced during the outage
    assert forwarder.pump() == 0
    forwarder.handle(Connected(2, "5"))
    outbox.enqueue(TOPIC, _result)  # produced live on the new connection
    forwarder.pump()
    assert _seqs(publisher.sent) == [(1, False), (2, False), (2, True), (3, True), (4, False)]


def test_a_stale_disconnect_does_not_stop_a_newer_connection(outbox: Outbox) -> None:
    forwarder = Forwarder(outbox, RecordingPublisher())
    forwarder.handle(Connected(3, "5"))
    forwarder.handle(Disconnected(2, "old attempt"))
    assert forwarder.connected is True


def test_publish_failure_pauses_without_marking_anything_sent(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher)
    forwarder.handle(Connected(1, "5"))
    outbox.enqueue(TOPIC, _result)
    publisher.up = False
    assert forwarder.pump() == 0
    assert outbox.in_flight == 0
    publisher.up = True
    assert forwarder.pump() == 1


def test_missing_puback_is_resent_after_the_in_flight_timeout(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher, inflight_timeout_s=0.0)
    forwarder.handle(Connected(1, "5"))
    outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 1
    assert forwarder.pump() == 1
    assert _seqs(publisher.sent) == [(1, False), (1, True)]


class FullDiskOutbox(Outbox):
    """An outbox whose reads fail the way a full or vanished state directory makes them fail."""

    def next_batch(self, limit: int) -> list[OutboxItem]:
        self.write_errors += 1
        raise OutboxError(f"outbox {self.path}: cannot read results: database or disk is full")


def test_outbox_trouble_is_logged_once_a_minute_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = FullDiskOutbox(tmp_path / "outbox.db")
    forwarder = Forwarder(outbox, RecordingPublisher())
    forwarder.handle(Connected(1, "5"))
    outbox.enqueue(TOPIC, _result)
    events: BoundedQueue[Event] = BoundedQueue(8)
    with caplog.at_level(logging.DEBUG, logger="agent.store"):
        for _ in range(50):
            forwarder.step(events, 0.0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "database or disk is full" in errors[0].getMessage()
    assert outbox.write_errors == 50


EVENTS = "edge/pi-1/events"


def _batched(outbox: Outbox, window: int = 32) -> tuple[Forwarder, RecordingPublisher]:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher, window=window, coalesce=frozenset({TOPIC}))
    forwarder.handle(Connected(1, "5"))
    return forwarder, publisher


def _carried(sent: list[tuple[str, bytes, int]]) -> list[list[int]]:
    return [[r.seq for r in results_in(p)] for _t, p, _q in sent]


def test_a_lone_result_goes_out_alone_even_with_coalescing_on(outbox: Outbox) -> None:
    forwarder, publisher = _batched(outbox)
    outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 1
    assert ResultMessage.from_json(publisher.sent[0][1]).seq == 1  # a plain result message


def test_waiting_results_go_out_as_one_batch_in_order_and_one_puback_deletes_them(
    outbox: Outbox,
) -> None:
    forwarder, publisher = _batched(outbox, window=1)
    for _ in range(5):
        outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 5
    assert _carried(publisher.sent) == [[1, 2, 3, 4, 5]]
    assert json.loads(publisher.sent[0][1])["v"] == 1
    assert outbox.in_flight == 1  # the batch takes one slot of the window
    forwarder.handle(Published(1001))
    assert outbox.stats().depth == 0


def test_coalescing_off_sends_one_message_per_result(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    forwarder = Forwarder(outbox, publisher, window=32)
    forwarder.handle(Connected(1, "5"))
    for _ in range(5):
        outbox.enqueue(TOPIC, _result)
    assert forwarder.pump() == 5
    assert [ResultMessage.from_json(p).seq for _t, p, _q in publisher.sent] == [1, 2, 3, 4, 5]


def test_only_consecutive_items_of_a_coalesced_topic_share_a_batch(outbox: Outbox) -> None:
    forwarder, publisher = _batched(outbox)
    for topic in (TOPIC, TOPIC, EVENTS, EVENTS, TOPIC):
        outbox.enqueue(topic, _result)
    forwarder.pump()
    assert [t for t, _p, _q in publisher.sent] == [TOPIC, EVENTS, EVENTS, TOPIC]
    assert _carried(publisher.sent) == [[1, 2], [3], [4], [5]]


def test_batches_stay_within_the_message_size_limit(outbox: Outbox) -> None:
    forwarder, publisher = _batched(outbox)
    big = {"blob": "x" * 30_000}
    for _ in range(10):
        outbox.enqueue(TOPIC, lambda seq: ResultMessage(seq, 1.0, MODEL, 2.0, big).to_json())
    assert forwarder.pump() == 10
    assert all(len(p) <= MAX_BATCH_BYTES for _t, p, _q in publisher.sent)
    assert _carried(publisher.sent) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def test_plan_puts_an_item_larger_than_a_batch_in_a_message_of_its_own() -> None:
    topics = [TOPIC] * 3
    plan = plan_messages(topics, [10, MAX_BATCH_BYTES, 10], frozenset({TOPIC}), messages=8)
    assert plan == [(0, 1), (1, 2), (2, 3)]
    assert plan_messages(topics, [10] * 3, frozenset({TOPIC}), messages=8, max_items=2) == [
        (0, 2),
        (2, 3),
    ]
    assert plan_messages(topics, [10] * 3, frozenset(), messages=2) == [(0, 1), (1, 2)]


def test_a_batch_resent_after_an_outage_carries_historical_results(outbox: Outbox) -> None:
    forwarder, publisher = _batched(outbox)
    for _ in range(3):
        outbox.enqueue(TOPIC, _result)
    forwarder.pump()
    forwarder.handle(Disconnected(1, "connection lost"))
    forwarder.handle(Connected(2, "5"))
    forwarder.pump()
    again = results_in(publisher.sent[-1][1])
    assert [(r.seq, r.historical) for r in again] == [(1, True), (2, True), (3, True)]


def test_step_commits_pending_results_before_it_waits(tmp_path: Path) -> None:
    grouped = Outbox(tmp_path / "grouped.db", commit_max=100, commit_s=10.0)
    forwarder, publisher = _batched(grouped)
    grouped.enqueue(TOPIC, _result)
    grouped.enqueue(TOPIC, _result)  # a burst: inside the 10 s bound, not yet durable
    forwarder.step(BoundedQueue[Event](8), 0.0)
    assert (grouped.pending, publisher.sent) == (2, [])
    forwarder.step(BoundedQueue[Event](8), 0.01)  # about to wait: commit first
    assert grouped.pending == 0
    assert _carried(publisher.sent) == [[1, 2]]
    grouped.close()


def test_a_failed_group_commit_is_handed_to_the_outbox_error_hook(tmp_path: Path) -> None:
    grouped = Outbox(tmp_path / "grouped.db", commit_max=100, commit_s=10.0)
    forwarder, _publisher = _batched(grouped)
    seen: list[OutboxError] = []
    forwarder.on_outbox_error = seen.append
    for _ in range(50):
        grouped.enqueue(
            TOPIC, lambda seq: ResultMessage(seq, 1.0, MODEL, 2.0, {"x": "y" * 900}).to_json()
        )
    pages = grouped._db.execute("PRAGMA page_count").fetchone()[0]
    grouped._db.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
    forwarder.step(BoundedQueue[Event](8), 0.01)
    assert [str(e).split(": ", 1)[1] for e in seen] == [
        "cannot store 50 result(s): database or disk is full"
    ]
    assert (grouped.pending, grouped.next_seq) == (0, 1)  # lost, but their numbers are reused
    grouped.close()


def test_a_replay_that_outgrows_the_batch_bound_sends_in_order_one_by_one(outbox: Outbox) -> None:
    publisher = RecordingPublisher()
    padded = {"x": "y" * 40_000}
    forwarder = Forwarder(
        outbox, publisher, coalesce=frozenset({TOPIC}), replay=lambda p: p + b" " * 30_000
    )  # planned on 40 KB each, three fit in a batch; rebuilt at 70 KB each, they do not
    for _ in range(3):
        outbox.enqueue(TOPIC, lambda seq: ResultMessage(seq, 1.0, MODEL, 2.0, padded).to_json())
    outbox.mark_backlog()  # stored as historical: each is rebuilt (here 30 KB larger) when sent
    forwarder.handle(Connected(1, "5"))
    while forwarder.pump():
        pass
    assert all(len(p) <= MAX_BATCH_BYTES for _t, p, _q in publisher.sent)
    assert _carried(publisher.sent) == [[1], [2], [3]]
