"""The fleet manager's connection and windowed retained publisher against a real mosquitto."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from agent.mqtt.client import MqttClient
from agent.mqtt.events import BoundedQueue, Event, Published
from agent.mqtt.topics import Topic, TopicFilter
from fleet.connection import collect, connect
from fleet.publish import clear_retained, publish_all
from fleet.settings import FleetSettings
from tests.support.broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.broker


def _settings(broker: MosquittoBroker) -> FleetSettings:
    return FleetSettings(url=broker.url, topic_prefix="edge", client_id="fleet-test")


def _blocks(count: int, size: int) -> list[tuple[Topic, bytes]]:
    return [(Topic(f"edge/bundles/b1/blocks/{i}"), os.urandom(size)) for i in range(count)]


def _retained(broker: MosquittoBroker, expected: int) -> dict[str, bytes]:
    subscriber = Subscriber(broker, "edge/bundles/#")
    try:
        subscriber.wait_for(lambda got: len(got) >= expected, timeout=30.0)
        return {m.topic: m.payload for m in subscriber.messages if m.retain}
    finally:
        subscriber.close()


def test_publish_all_stores_every_message_retained_and_reports_progress(
    broker: MosquittoBroker,
) -> None:
    messages = _blocks(40, 128 * 1024)
    seen: list[int] = []
    with connect(_settings(broker)) as client:
        publish_all(client, messages, window=4, progress=lambda done, _total: seen.append(done))
    assert seen == list(range(1, 41))
    assert _retained(broker, 40) == {str(t): p for t, p in messages}


def test_publish_all_resends_what_was_in_flight_when_the_broker_restarts(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    broker = make_broker(persistence=True)
    messages = _blocks(60, 64 * 1024)
    restarted: list[int] = []

    def restart_once(done: int, _total: int) -> None:
        if done == 20 and not restarted:
            restarted.append(done)
            broker.restart()

    with connect(_settings(broker)) as client:
        publish_all(client, messages, window=8, progress=restart_once, timeout_s=60.0)
    assert restarted == [20]
    assert _retained(broker, 60) == {str(t): p for t, p in messages}


class _LosesOneAck(BoundedQueue[Event]):
    """The real client's events, except that the first PUBACK never reaches ``publish_all``."""

    def __init__(self, events: BoundedQueue[Event]) -> None:
        super().__init__(1)
        self._events = events
        self.lost: list[Published] = []

    def get(self, timeout: float | None = None) -> Event | None:
        event = self._events.get(timeout)
        if isinstance(event, Published) and not self.lost:
            self.lost.append(event)
            return None
        return event


class _Client:
    def __init__(self, client: MqttClient) -> None:
        self._client = client
        self.events = _LosesOneAck(client.events)

    @property
    def connected(self) -> bool:
        return self._client.connected

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        return self._client.publish(topic, payload, qos=qos, retain=retain)


def test_publish_all_sends_again_a_message_whose_puback_never_came(
    broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    messages = _blocks(10, 1000)
    with connect(_settings(broker)) as client:
        lossy = _Client(client)
        publish_all(lossy, messages, window=4, resend_s=1.0, timeout_s=30.0)
    assert len(lossy.events.lost) == 1
    assert "no PUBACK for 1 publishes in 1 s; sending them again" in caplog.text
    assert _retained(broker, 10) == {str(t): p for t, p in messages}


def test_clear_retained_deletes_the_messages(broker: MosquittoBroker) -> None:
    messages = _blocks(5, 1000)
    with connect(_settings(broker)) as client:
        publish_all(client, messages)
        clear_retained(client, [t for t, _ in messages])
        subscription = client.subscribe(TopicFilter("edge/bundles/#"))
        assert list(collect(subscription, first_s=1.0)) == []


def test_the_fleet_client_announces_no_availability(broker: MosquittoBroker) -> None:
    watcher = Subscriber(broker, "edge/+/availability")
    try:
        with connect(_settings(broker)) as client:
            publish_all(client, _blocks(1, 10))
        subscriber = Subscriber(broker, "edge/bundles/#")
        subscriber.wait_for(lambda got: len(got) == 1)
        subscriber.close()
        assert watcher.messages == []
    finally:
        watcher.close()
