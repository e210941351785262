"""The demo's fallback broker (amqtt, pure Python) with the agent's own MQTT client.

amqtt speaks MQTT 3.1.1 only and hangs up on an MQTT 5 CONNECT instead of refusing it, so the
agent is configured with ``mqtt.protocol = "3.1.1"`` for it (the demo does this).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.mqtt.client import MqttClient
from agent.mqtt.settings import MqttSettings
from agent.mqtt.topics import DeviceTopics, TopicFilter
from demo.broker import DemoBroker

pytest.importorskip("amqtt", reason="amqtt is in the dev and demo extras")


@pytest.fixture
def amqtt_broker(tmp_path: Path) -> Iterator[DemoBroker]:
    broker = DemoBroker(tmp_path, prefer_mosquitto=False).start()
    yield broker
    broker.stop()


def _client(broker: DemoBroker, device: str) -> MqttClient:
    settings = MqttSettings.from_url(
        broker.url, client_id=device, protocol="3.1.1", backoff_min_s=0.1, backoff_max_s=0.5
    )
    return MqttClient(settings, DeviceTopics("edge", device))


def test_the_agent_client_publishes_and_receives_through_amqtt(amqtt_broker: DemoBroker) -> None:
    assert amqtt_broker.kind == "amqtt"
    device, watcher = _client(amqtt_broker, "dev-1"), _client(amqtt_broker, "watcher")
    status = watcher.subscribe(TopicFilter("edge/dev-1/#"))
    watcher.start()
    device.start()
    try:
        watcher.wait_connected(15)
        device.wait_connected(15)
        assert device.protocol.value == "3.1.1"
        device.publish(device.topics.status, b'{"state":"running"}', retain=True)
        seen = {}
        while "edge/dev-1/status" not in seen:
            message = status.get(timeout=10)
            assert message is not None, seen
            seen[message.topic] = message.payload
        assert seen["edge/dev-1/availability"] == b"online"
        assert seen["edge/dev-1/status"] == b'{"state":"running"}'
    finally:
        device.stop(5)
        watcher.stop(5)
