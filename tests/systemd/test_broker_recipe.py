"""The broker recipe (systemd/mosquitto/) on real mosquitto with certificates from its script.

Every client authenticates with a certificate whose CN is its MQTT username; the ACL gives each
device its own topics only. The negative checks are ordered, not timed: the broker handles one
packet at a time, so a message that a later marker overtook was never delivered.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt.client import MqttClient
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics, TopicFilter
from tests.support.broker import ClientTLS, MosquittoBroker, Received, Subscriber, free_port

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "systemd" / "mosquitto"
INSTALLED = "/etc/mosquitto/edge-agent/"


def _certs(directory: Path) -> None:
    script = str(RECIPE / "make-certs.sh")
    subprocess.run([script, "ca", str(directory)], check=True, capture_output=True)
    subprocess.run([script, "broker", str(directory), "localhost", "127.0.0.1"], check=True)
    for name in ("dev-a", "dev-b", "fleet", "homeassistant"):
        subprocess.run([script, "client", str(directory), name], check=True, capture_output=True)


@dataclass(frozen=True)
class RecipeBroker:
    broker: MosquittoBroker
    certs: Path


@pytest.fixture(scope="module")
def recipe_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecipeBroker]:
    workdir = tmp_path_factory.mktemp("recipe")
    certs = workdir / "certs"
    _certs(certs)
    (certs / "acl").write_text((RECIPE / "acl").read_text())
    (workdir / "persist").mkdir()
    port = free_port()
    text = (RECIPE / "edge-agent.conf").read_text()
    text = text.replace("listener 8883", f"listener {port} 127.0.0.1")
    text = text.replace(INSTALLED, f"{certs}/")
    text = text.replace("/var/lib/mosquitto/", f"{workdir}/persist/")
    broker = MosquittoBroker(workdir, port=port, recipe=text).start()
    yield RecipeBroker(broker, certs)
    broker.close()


@pytest.fixture
def client(recipe_broker: RecipeBroker) -> Iterator[Callable[[str, str], Subscriber]]:
    made: list[Subscriber] = []
    certs = recipe_broker.certs

    def connect(identity: str, topic_filter: str) -> Subscriber:
        tls = ClientTLS(certs / "ca.crt", certs / f"{identity}.crt", certs / f"{identity}.key")
        sub = Subscriber(recipe_broker.broker, topic_filter, tls=tls)
        made.append(sub)
        return sub

    yield connect
    for sub in made:
        sub.close()


def _payloads(sub: Subscriber) -> list[bytes]:
    return [m.payload for m in sub.messages]


def _has(payload: bytes) -> Callable[[list[Received]], bool]:
    return lambda got: any(m.payload == payload for m in got)


def test_a_device_reads_its_own_commands_and_the_bundles_but_not_another_devices_commands(
    client: Callable[[str, str], Subscriber],
) -> None:
    fleet = client("fleet", "edge/+/status")
    fleet.publish("edge/dev-b/commands/desired", b"for-b", retain=True)
    fleet.publish("edge/dev-a/commands/desired", b"for-a", retain=True)
    fleet.publish("edge/bundles/0123abcd/header", b"header", retain=True)

    device_a = client("dev-a", "edge/dev-a/commands/#")
    device_a.subscribe("edge/dev-b/commands/#")  # mosquitto grants it, then filters delivery
    device_a.subscribe("edge/+/commands/#")
    device_a.subscribe("edge/bundles/#")
    fleet.publish("edge/dev-b/commands/desired", b"for-b-again")
    fleet.publish("edge/dev-a/commands/marker", b"marker")
    device_a.wait_for(_has(b"marker"))
    got = _payloads(device_a)
    assert b"for-b" not in got
    assert b"for-b-again" not in got
    assert {b"for-a", b"header", b"marker"} <= set(got)
    own_b = client("dev-b", "edge/dev-b/commands/#")
    own_b.wait_for(_has(b"for-b"))


def test_a_device_cannot_publish_as_another_device_nor_forge_commands_or_bundles(
    client: Callable[[str, str], Subscriber],
) -> None:
    results = client("fleet", "edge/+/results")
    status = client("homeassistant", "edge/+/status")
    device_a = client("dev-a", "edge/+/commands/#")
    device_a.publish("edge/dev-b/results", b"forged-result")
    device_a.publish("edge/dev-b/status", b"forged-status", retain=True)
    device_a.publish("edge/dev-a/commands/desired", b"forged-command", retain=True)
    device_a.publish("edge/bundles/0123abcd/blocks/0", b"forged-block", retain=True)
    device_a.publish("edge/dev-a/results", b"own-result")
    device_a.publish("edge/dev-a/status", b"own-status", retain=True)
    results.wait_for(_has(b"own-result"))
    status.wait_for(_has(b"own-status"))
    assert _payloads(results) == [b"own-result"]
    assert b"forged-status" not in _payloads(status)

    fleet = client("fleet", "edge/+/status")
    fleet.publish("edge/dev-a/commands/marker-2", b"marker-2")
    device_a.wait_for(_has(b"marker-2"))
    assert b"forged-command" not in _payloads(device_a)
    late = client("dev-b", "edge/bundles/#")
    fleet.publish("edge/bundles/0123abcd/blocks/1", b"fleet-block", retain=True)
    late.wait_for(_has(b"fleet-block"))
    assert b"forged-block" not in _payloads(late)


def test_home_assistant_discovery_and_birth_topics_are_per_device(
    client: Callable[[str, str], Subscriber],
) -> None:
    hass = client("homeassistant", "homeassistant/#")
    device_a = client("dev-a", "homeassistant/status")
    device_a.publish("homeassistant/sensor/dev-b/fps/config", b"forged-config", retain=True)
    device_a.publish("homeassistant/status", b"forged-birth")
    device_a.publish("homeassistant/sensor/dev-a/fps/config", b"own-config", retain=True)
    hass.wait_for(_has(b"own-config"))
    assert _payloads(hass) == [b"own-config"]
    hass.publish("homeassistant/status", b"online")
    device_a.wait_for(_has(b"online"))


def test_a_client_without_a_certificate_is_refused(recipe_broker: RecipeBroker) -> None:
    certs, broker = recipe_broker.certs, recipe_broker.broker
    anonymous = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    anonymous.tls_set(str(certs / "ca.crt"))
    connacks: list[object] = []
    anonymous.on_connect = lambda *args: connacks.append(args[3])
    failure: object = None
    try:
        anonymous.connect(broker.host, broker.port, keepalive=5)
        for _ in range(50):
            code = anonymous.loop(0.2)
            if code != paho.MQTT_ERR_SUCCESS:
                failure = code
                break
    except OSError as exc:  # TLS 1.2: the handshake itself fails
        failure = exc
    assert failure is not None
    assert connacks == []


def test_the_agents_own_client_works_within_its_acl(
    recipe_broker: RecipeBroker, client: Callable[[str, str], Subscriber]
) -> None:
    certs, broker = recipe_broker.certs, recipe_broker.broker
    watcher = client("fleet", "edge/dev-a/availability")
    fleet = client("fleet", "edge/+/status")
    fleet.publish("edge/dev-a/commands/desired", b"offer", retain=True)
    fleet.publish("edge/bundles/feedface/blocks/0", b"block-0", retain=True)
    settings = MqttSettings.from_url(
        f"mqtts://127.0.0.1:{broker.port}",
        client_id="dev-a",
        tls=TLSFiles(certs / "ca.crt", certs / "dev-a.crt", certs / "dev-a.key"),
    )
    topics = DeviceTopics("edge", "dev-a")
    agent = MqttClient(settings, topics)
    commands = agent.subscribe(topics.commands)
    blocks = agent.subscribe(TopicFilter("edge/bundles/feedface/blocks/0"))
    agent.start()
    try:
        agent.wait_connected(15)
        desired = commands.get(timeout=10)
        assert desired is not None
        assert desired.payload == b"offer"
        block = blocks.get(timeout=10)
        assert block is not None
        assert block.payload == b"block-0"
        agent.publish(topics.status, b"{}", retain=True)
        fleet.wait_for(_has(b"{}"))
        watcher.wait_for(lambda got: any(m.payload == b"online" for m in got))
    finally:
        agent.stop(5)
    watcher.wait_for(lambda got: got[-1].payload == b"offline")
