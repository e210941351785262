"""The MQTT adapter against a real mosquitto: availability, auth, reconnects, limits, TLS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import TransportError
from agent.mqtt.client import MqttClient
from agent.mqtt.events import (
    BoundedQueue,
    Connected,
    ConnectRefused,
    IncomingMessage,
    Published,
    Subscription,
)
from agent.mqtt.policy import Protocol
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics, Topic, TopicFilter
from tests.support.broker import BrokerTLS, MosquittoBroker, Received, Subscriber, free_port

pytestmark = pytest.mark.broker

TOPICS = DeviceTopics("edge", "pi-1")


def _client(url: str, **options: Any) -> MqttClient:
    settings = MqttSettings.from_url(
        url,
        client_id="pi-1",
        backoff_min_s=0.1,
        backoff_max_s=0.5,
        **options,
    )
    return MqttClient(settings, TOPICS)


@pytest.fixture
def started() -> Iterator[list[MqttClient]]:
    """Clients a test started; stopped at teardown even when the test fails."""
    clients: list[MqttClient] = []
    yield clients
    for client in clients:
        client.stop(timeout=2.0)


def _start(clients: list[MqttClient], client: MqttClient) -> MqttClient:
    clients.append(client)
    client.start()
    return client


def _last_payload(messages: list[Received]) -> bytes | None:
    return messages[-1].payload if messages else None


def test_independent_subscriber_receives_what_the_client_publishes(
    broker: MosquittoBroker, started: list[MqttClient]
) -> None:
    watcher = Subscriber(broker, str(TOPICS.results))
    client = _start(started, _client(broker.url))
    client.wait_connected(5)
    token = client.publish(TOPICS.results, b'{"seq":1}', qos=1)
    watcher.wait_for(lambda got: [m.payload for m in got] == [b'{"seq":1}'])
    deadline = time.monotonic() + 5
    events: list[object] = []
    while Published(token) not in events and time.monotonic() < deadline:
        event = client.events.get(0.1)
        if event is not None:
            events.append(event)
    assert Published(token) in events
    assert isinstance(events[0], Connected)
    assert client.protocol is Protocol.MQTT5
    watcher.close()


def test_availability_is_online_retained_then_offline_on_clean_stop(
    broker: MosquittoBroker,
) -> None:
    client = _client(broker.url)
    client.start()
    client.wait_connected(5)
    # CONNACK can arrive before the broker has taken the retained "online": the first subscriber
    # may get it live; once it has, a new subscriber must get the retained copy.
    late = Subscriber(broker, str(TOPICS.availability))
    late.wait_for(lambda got: _last_payload(got) == b"online")
    retained = Subscriber(broker, str(TOPICS.availability))
    retained.wait_for(lambda got: got == [Received(str(TOPICS.availability), b"online", True)])
    retained.close()
    client.stop(timeout=5)
    late.wait_for(lambda got: _last_payload(got) == b"offline")
    after = Subscriber(broker, str(TOPICS.availability))
    after.wait_for(lambda got: got == [Received(str(TOPICS.availability), b"offline", True)])
    late.close()
    after.close()


_CHILD = """
import sys, time
from agent.mqtt.client import MqttClient
from agent.mqtt.settings import MqttSettings
from agent.mqtt.topics import DeviceTopics, Topic
settings = MqttSettings.from_url(sys.argv[1], client_id="pi-1")
client = MqttClient(settings, DeviceTopics("edge", "pi-1"))
client.start()
client.wait_connected(10)
print("connected", flush=True)
time.sleep(60)
"""


def test_will_marks_the_device_offline_when_its_process_is_killed(
    broker: MosquittoBroker,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, broker.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connected"
        watcher = Subscriber(broker, str(TOPICS.availability))
        watcher.wait_for(lambda got: _last_payload(got) == b"online")
        os.kill(child.pid, signal.SIGKILL)
        watcher.wait_for(lambda got: _last_payload(got) == b"offline")
        watcher.close()
    finally:
        child.kill()
        child.wait()
    retained = Subscriber(broker, str(TOPICS.availability))
    retained.wait_for(lambda got: got == [Received(str(TOPICS.availability), b"offline", True)])
    retained.close()


def test_wrong_password_is_a_clear_error_and_never_connected(
    make_broker: Callable[..., MosquittoBroker], started: list[MqttClient]
) -> None:
    secured = make_broker(username="device", password="right")
    client = _start(started, _client(secured.url, username="device", password="wrong"))
    with pytest.raises(TransportError) as info:
        client.wait_connected(1.5)
    assert "broker refused the connection: not authorised (code 0x87)" in str(info.value)
    assert client.connected is False
    events = client.events.drain()
    refused = [e for e in events if isinstance(e, ConnectRefused)]
    assert refused
    assert refused[0].code == 0x87
    assert not any(isinstance(e, Connected) for e in events)
    # Backoff, not a spin: delays of at least 0.05, 0.1, 0.2, 0.25, 0.25 ... s fit <= 8 in 1.5 s.
    assert 2 <= len(refused) <= 8


def test_right_password_connects(
    make_broker: Callable[..., MosquittoBroker], started: list[MqttClient]
) -> None:
    secured = make_broker(username="device", password="right")
    client = _start(started, _client(secured.url, username="device", password="right"))
    client.wait_connected(5)
    assert client.connected


def test_subscriptions_are_renewed_after_the_broker_restarts(
    broker: MosquittoBroker, started: list[MqttClient]
) -> None:
    client = _start(started, _client(broker.url))
    commands = client.subscribe(TOPICS.commands)
    client.wait_connected(5)
    broker.kill()
    time.sleep(0.3)
    assert not client.connected
    broker.start()
    client.wait_connected(10)
    time.sleep(0.3)  # SUBSCRIBE was sent with the CONNACK handling; let the broker apply it
    sender_settings = MqttSettings.from_url(broker.url, client_id="operator")
    sender = _start(started, MqttClient(sender_settings, DeviceTopics("edge", "operator")))
    sender.wait_connected(5)
    sender.publish(TOPICS.command("reload"), b"now")
    message = commands.get(timeout=5)
    assert message is not None
    assert (message.topic, message.payload) == ("edge/pi-1/commands/reload", b"now")


def _until_delivered(sender: MqttClient, subscription: Subscription) -> None:
    """Probe until the subscription is live at the broker (SUBACK timing varies under load)."""
    topic = Topic(subscription.topic_filter.value.replace("+", "probe").replace("#", "probe"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sender.publish(topic, b"probe")
        if subscription.get(timeout=0.2) is not None:
            while subscription.get(timeout=0.2) is not None:
                pass  # drain late probes
            return
    pytest.fail(f"subscription {subscription.topic_filter} never became live")


def test_oversize_incoming_message_is_dropped_and_counted(
    broker: MosquittoBroker, started: list[MqttClient]
) -> None:
    client = _start(started, _client(broker.url))
    sensors = client.subscribe(TOPICS.sensors, max_payload=100)
    client.wait_connected(5)
    sender = _start(
        started,
        MqttClient(MqttSettings.from_url(broker.url, client_id="sensor"), DeviceTopics("s", "x")),
    )
    sender.wait_connected(5)
    _until_delivered(sender, sensors)
    sender.publish(TOPICS.sensor("t"), b"x" * 101)
    sender.publish(TOPICS.sensor("t"), b"21.5")
    message = sensors.get(timeout=5)
    assert message is not None
    assert message.payload == b"21.5"
    assert sensors.dropped_oversize == 1
    assert sensors.get(timeout=0) is None


def test_falls_back_to_mqtt311_when_the_broker_refuses_mqtt5(
    mqtt311_gate: Any, started: list[MqttClient]
) -> None:
    gate = mqtt311_gate
    client = _start(started, _client(gate.url))
    client.wait_connected(5)
    assert client.protocol is Protocol.MQTT311
    assert gate.refused_v5 == 1
    watcher = Subscriber(gate.upstream, str(TOPICS.availability))
    watcher.wait_for(lambda got: _last_payload(got) == b"online")
    watcher.close()


def _tls_broker(make_broker: Callable[..., MosquittoBroker], tls_material: Any) -> MosquittoBroker:
    material = tls_material
    return make_broker(
        tls=BrokerTLS(
            ca_file=material.ca_file,
            cert_file=material.server_cert,
            key_file=material.server_key,
            require_certificate=True,
        )
    )


def test_tls_with_a_client_certificate_connects(
    make_broker: Callable[..., MosquittoBroker], tls_material: Any, started: list[MqttClient]
) -> None:
    secure = _tls_broker(make_broker, tls_material)
    files = TLSFiles(
        ca_file=tls_material.ca_file,
        cert_file=tls_material.client_cert,
        key_file=tls_material.client_key,
    )
    client = _start(started, _client(secure.url, tls=files))
    assert secure.url.startswith("mqtts://")
    client.wait_connected(5)
    client.publish(TOPICS.results, b"{}")


def test_tls_without_a_client_certificate_fails_clearly(
    make_broker: Callable[..., MosquittoBroker], tls_material: Any, started: list[MqttClient]
) -> None:
    secure = _tls_broker(make_broker, tls_material)
    files = TLSFiles(ca_file=tls_material.ca_file)
    client = _start(started, _client(secure.url, tls=files))
    with pytest.raises(TransportError, match="may require a client certificate") as info:
        client.wait_connected(2)
    assert f"not connected to 127.0.0.1:{secure.port}" in str(info.value)
    assert client.connected is False


def test_tls_rejects_a_broker_signed_by_another_ca(
    make_broker: Callable[..., MosquittoBroker],
    tls_material: Any,
    tmp_path: Path,
    started: list[MqttClient],
) -> None:
    secure = _tls_broker(make_broker, tls_material)
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(Path(tls_material.client_cert).read_bytes())
    client = _start(started, _client(secure.url, tls=TLSFiles(ca_file=other_ca)))
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        client.wait_connected(2)


def test_stop_returns_promptly_while_the_broker_is_unreachable() -> None:
    client = _client(f"mqtt://127.0.0.1:{free_port()}")
    client.start()
    time.sleep(0.3)
    started_at = time.monotonic()
    client.stop(timeout=3)
    assert time.monotonic() - started_at < 1.0
    assert "Connection refused" in client.last_error


def test_several_filters_share_one_queue_and_an_unsubscribed_one_stops_delivering(
    broker: MosquittoBroker, started: list[MqttClient]
) -> None:
    sender = _start(
        started,
        MqttClient(MqttSettings.from_url(broker.url, client_id="fleet"), DeviceTopics("s", "x")),
    )
    sender.wait_connected(5)
    for name in ("a", "b"):
        sender.publish(Topic(f"bundles/{name}"), name.encode(), retain=True)
    client = _start(started, _client(broker.url))
    client.wait_connected(5)
    inbox: BoundedQueue[IncomingMessage] = BoundedQueue(10)
    subs = client.subscribe_many(
        [TopicFilter("bundles/a"), TopicFilter("bundles/b")], messages=inbox
    )
    got = {m.payload for m in (inbox.get(timeout=5), inbox.get(timeout=5)) if m is not None}
    assert got == {b"a", b"b"}  # both retained copies, through one SUBSCRIBE
    client.unsubscribe(subs[0])
    sender.publish(Topic("bundles/a"), b"a2", retain=True)
    sender.publish(Topic("bundles/b"), b"b2", retain=True)
    late = inbox.get(timeout=5)  # a2 was published first: had it been delivered, it would be here
    assert late is not None
    assert late.payload == b"b2"
    client.subscribe(TopicFilter("bundles/a"), messages=inbox)  # subscribing again: retained copy
    again = inbox.get(timeout=5)
    assert again is not None
    assert again.payload == b"a2"


def test_the_client_socket_sends_small_packets_at_once(
    broker: MosquittoBroker, started: list[MqttClient]
) -> None:
    """TCP_NODELAY: a SUBSCRIBE must not wait ~40 ms for a delayed ACK (Nagle)."""
    client = _start(started, _client(broker.url))
    client.wait_connected(10)
    paho_client = client._paho
    assert paho_client is not None
    sock = paho_client.socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
