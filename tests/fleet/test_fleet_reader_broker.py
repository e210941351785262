"""Reading retained messages by exact topic on a real mosquitto whose client queue is small."""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.publish as paho_publish
import pytest

from agent.mqtt.topics import Topic, TopicFilter
from fleet.connection import collect, connect
from fleet.reader import read_retained
from fleet.settings import FleetSettings
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker

COUNT = 600


def test_exact_reads_get_every_retained_message_a_small_queue_drops_from_a_wildcard(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    """``max_queued_messages 20``: a QoS 1 wildcard subscription loses most of 600 retained
    commands; the exact read gets all 600 and says which topic had none."""
    broker = make_broker(extra_config=["max_queued_messages 20"])
    topics = [f"edge/dev-{i:04d}/commands/desired" for i in range(COUNT)]
    paho_publish.multiple(
        [{"topic": t, "payload": t.encode(), "qos": 1, "retain": True} for t in topics],
        hostname=broker.host,
        port=broker.port,
    )
    settings = FleetSettings(url=broker.url, topic_prefix="edge", client_id="reader")
    with connect(settings) as client:
        wildcard = client.subscribe(TopicFilter("edge/+/commands/desired"), maxsize=10_000)
        seen = {m.topic for m in collect(wildcard)}
        client.unsubscribe(wildcard)
        payloads, unread = read_retained(
            client, [Topic(t) for t in [*topics, "edge/dev-none/commands/desired"]],
            max_payload=1024,
        )  # fmt: skip
    assert len(seen) < COUNT
    assert payloads == {t: t.encode() for t in topics}
    assert unread == []
