"""fleet/cluster.py against two real mosquittos standing in for the nodes of a cluster that keeps
retained messages per node (as RabbitMQ does; the real 2-node RabbitMQ cluster is in
test_fleet_rabbitmq_broker.py). Two unbridged brokers keep everything per node, so what the
fleet must do on every node shows here on a default mosquitto, quickly."""

from __future__ import annotations

import time
from collections.abc import Callable

import paho.mqtt.publish as paho_publish
import pytest

from agent.errors import TransportError
from agent.mqtt.events import BoundedQueue, IncomingMessage
from agent.mqtt.messages import StatusMessage
from agent.mqtt.topics import Topic, TopicFilter
from fleet.connection import connect
from fleet.publish import publish_all
from fleet.registry import Registry
from fleet.session import FleetSession
from fleet.settings import FleetSettings
from tests.support.broker import MosquittoBroker, Subscriber, free_port

pytestmark = pytest.mark.broker


def cluster_settings(*brokers: MosquittoBroker) -> FleetSettings:
    nodes = tuple(f"{b.host}:{b.port}" for b in brokers)
    return FleetSettings(nodes=nodes, client_id="edge-fleet-test")


def retained(broker: MosquittoBroker, topic_filter: str) -> dict[str, bytes]:
    subscriber = Subscriber(broker, topic_filter)
    time.sleep(0.5)  # retained messages come right after the SUBACK
    subscriber.close()
    return {m.topic: m.payload for m in subscriber.messages if m.retain}


def status(ts: float, state: str) -> bytes:
    return StatusMessage(ts=ts, state=state).to_json()


def test_every_retained_publish_is_on_every_node_when_publish_all_returns(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    a, b = make_broker(), make_broker()
    messages = [(Topic(f"edge/bundles/x/blocks/{i}"), bytes([i]) * 1000) for i in range(40)]
    with connect(cluster_settings(a, b)) as client:
        publish_all(client, messages, window=4)
    expected = {str(t): p for t, p in messages}
    assert retained(a, "edge/bundles/#") == expected
    assert retained(b, "edge/bundles/#") == expected


def test_the_view_is_read_from_every_node_and_the_newest_status_wins(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    """pi-1 is on node b only; pi-2 moved from a to b (a keeps its old status and its will)."""
    a, b = make_broker(), make_broker()
    for node, topic, payload in [
        (b, "edge/pi-1/availability", b"online"),
        (b, "edge/pi-1/status", status(2000.0, "running")),
        (a, "edge/pi-2/availability", b"offline"),
        (a, "edge/pi-2/status", status(1000.0, "degraded")),
        (b, "edge/pi-2/availability", b"online"),
        (b, "edge/pi-2/status", status(2000.0, "running")),
    ]:
        paho_publish.single(topic, payload, qos=1, retain=True, hostname=node.host,
                            port=node.port)  # fmt: skip
    registry = Registry().with_devices({"pi-1": (), "pi-2": ()})
    with connect(cluster_settings(a, b)) as client:
        session = FleetSession(client, "edge", registry=registry)
    assert session.report.complete
    rows = [(r.device_id, r.online, r.state) for r in session.known.rows()]
    assert rows == [("pi-1", True, "running"), ("pi-2", True, "running")]


def test_a_live_message_that_arrives_from_each_node_is_heard_once(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    """The copies come over two connections, so they interleave (a1 a2 b1 b2); a payload that
    comes back later (online, offline, online) is heard again."""
    a, b = make_broker(), make_broker()
    sent = [
        ("edge/pi-1/status", status(1.0, "running")),
        ("edge/pi-1/status", status(2.0, "degraded")),
        ("edge/pi-1/availability", b"online"),
        ("edge/pi-1/availability", b"offline"),
        ("edge/pi-1/availability", b"online"),
    ]
    inbox: BoundedQueue[IncomingMessage] = BoundedQueue(100)
    with connect(cluster_settings(a, b)) as client:
        filters = [TopicFilter("edge/pi-1/status"), TopicFilter("edge/pi-1/availability")]
        subscriptions = client.subscribe_many(filters, messages=inbox)
        deadline = time.monotonic() + 10
        while not all(s.acked.is_set() for s in subscriptions) and time.monotonic() < deadline:
            time.sleep(0.02)
        for node in (a, b):  # what a cluster does with a live publish: every node sends it
            messages = [{"topic": t, "payload": p, "qos": 1} for t, p in sent]
            paho_publish.multiple(messages, hostname=node.host, port=node.port)  # type: ignore[arg-type]
        time.sleep(1.0)
    heard = [(m.topic, m.payload) for m in inbox.drain()]
    assert [p for t, p in heard if t.endswith("/status")] == [p for _t, p in sent[:2]]
    assert [p for t, p in heard if t.endswith("/availability")] == [
        b"online",
        b"offline",
        b"online",
    ]


def test_a_node_with_nothing_listening_is_named() -> None:
    port = free_port()
    settings = FleetSettings(nodes=("127.0.0.1:1", f"127.0.0.1:{port}"))
    with (
        pytest.raises(TransportError, match=r"node 127\.0\.0\.1:1 refused the connection"),
        connect(settings, timeout_s=1.0),
    ):
        pass
