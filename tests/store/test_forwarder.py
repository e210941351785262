"""The forwarder's decisions, against a publisher that implements the client's interface."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.errors import TransportError
from agent.mqtt.events import BoundedQueue, Connected, Disconnected, Event, Published
from agent.mqtt.messages import ModelRef, ResultMessage
from agent.mqtt.topics import Topic
from agent.store.forwarder import Forwarder, free_slots
from agent.store.outbox import Outbox, OutboxError, OutboxItem

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
