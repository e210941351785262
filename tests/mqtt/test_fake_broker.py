"""The in-memory broker the updater's in-process tests use keeps the contract that mosquitto and
our MqttClient keep: every test runs against the fake and against the real pair."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from agent.mqtt.client import MqttClient
from agent.mqtt.events import IncomingMessage, Subscription
from agent.mqtt.ports import Subscriber
from agent.mqtt.settings import MqttSettings
from agent.mqtt.topics import DeviceTopics, Topic, TopicFilter
from tests.support.broker import MosquittoBroker
from tests.support.fakebroker import FakeBroker

TOPIC = "edge/bundles/0123/header"


@dataclass
class Link:
    """The device's side (``subscriber``), another client's ``put``, and how long a message
    that should not come is waited for."""

    subscriber: Subscriber
    put: Callable[[str, bytes, bool], None]
    quiet_s: float

    def take(self, subscription: Subscription, count: int) -> list[IncomingMessage]:
        got = []
        deadline = time.monotonic() + 10.0
        while len(got) < count and time.monotonic() < deadline:
            message = subscription.get(0.05)
            if message is not None:
                got.append(message)
        return got

    def nothing_more(self, subscription: Subscription) -> bool:
        return subscription.get(self.quiet_s) is None


@pytest.fixture(params=["fake", pytest.param("mosquitto", marks=pytest.mark.broker)])
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    if request.param == "fake":
        fake = FakeBroker()
        yield Link(fake, lambda topic, payload, retain: fake.put(topic, payload, retain=retain), 0)
        return
    broker: MosquittoBroker = request.getfixturevalue("broker")
    other = MqttClient(
        MqttSettings.from_url(broker.url, client_id="fleet"), DeviceTopics("edge", "fleet")
    )
    device = MqttClient(
        MqttSettings.from_url(broker.url, client_id="pi-1"), DeviceTopics("edge", "pi-1")
    )
    for client in (other, device):
        client.start()
        client.wait_connected(10)

    def put(topic: str, payload: bytes, retain: bool) -> None:
        other.publish(Topic(topic), payload, 1, retain)
        time.sleep(0.2)  # the broker has it before the next step

    yield Link(device, put, 0.5)
    device.stop(2)
    other.stop(2)


def test_a_retained_message_is_delivered_on_subscribe_and_a_live_one_after(link: Link) -> None:
    link.put(TOPIC, b"kept", True)
    subscription = link.subscriber.subscribe(TopicFilter(TOPIC))
    assert [(m.payload, m.retain) for m in link.take(subscription, 1)] == [(b"kept", True)]
    link.put(TOPIC, b"live", False)
    assert [(m.payload, m.retain) for m in link.take(subscription, 1)] == [(b"live", False)]
    assert link.nothing_more(subscription)


def test_subscribing_the_same_filter_again_sends_the_retained_message_to_both(link: Link) -> None:
    link.put(TOPIC, b"kept", True)
    first = link.subscriber.subscribe(TopicFilter(TOPIC))
    assert len(link.take(first, 1)) == 1
    second = link.subscriber.subscribe(TopicFilter(TOPIC))
    assert [m.payload for m in link.take(second, 1)] == [b"kept"]
    assert [m.payload for m in link.take(first, 1)] == [b"kept"]  # a duplicate, as on a device


def test_an_empty_retained_payload_clears_the_retained_message(link: Link) -> None:
    link.put(TOPIC, b"kept", True)
    link.put(TOPIC, b"", True)
    subscription = link.subscriber.subscribe(TopicFilter(TOPIC))
    assert link.nothing_more(subscription)


def test_after_unsubscribe_nothing_is_delivered(link: Link) -> None:
    subscription = link.subscriber.subscribe(TopicFilter(TOPIC))
    link.subscriber.unsubscribe(subscription)
    link.put(TOPIC, b"live", False)
    assert link.nothing_more(subscription)


def test_subscribe_many_delivers_each_filters_retained_message(link: Link) -> None:
    topics = [f"edge/bundles/0123/blocks/{i}" for i in range(3)]
    for index, topic in enumerate(topics):
        link.put(topic, bytes([index]), True)
    subs = link.subscriber.subscribe_many([TopicFilter(t) for t in topics], max_payload=1)
    assert [[m.payload for m in link.take(s, 1)] for s in subs] == [[b"\0"], [b"\1"], [b"\2"]]


def test_an_oversize_message_is_counted_not_delivered(link: Link) -> None:
    link.put(TOPIC, b"too long", True)
    subscription = link.subscriber.subscribe(TopicFilter(TOPIC), max_payload=4)
    assert link.nothing_more(subscription)
    assert subscription.dropped_oversize == 1
