"""The broker recipe (systemd/mosquitto/) on real mosquitto with certificates from its script.

mosquitto runs as the Debian package runs it: the package's stock mosquitto.conf including
conf.d/edge-agent.conf (the recipe, unchanged but for its port and key directory), started as
root and dropping to the mosquitto user (tests/support/debian_mosquitto.py).

Every client authenticates with a certificate whose CN is its MQTT username; the ACL gives each
device its own topics only. The negative checks are ordered, not timed: the broker handles one
packet at a time, so a message that a later marker overtook was never delivered.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt.client import MqttClient
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics, TopicFilter
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import ClientTLS, MosquittoBroker, Received, Subscriber
from tests.support.debian_mosquitto import (
    STOCK_CONFIG,
    DebianBroker,
    config_keys,
    mosquitto_account,
    start_debian_broker,
    stock_config_text,
)
from tests.support.models import ModelFactory

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RecipeBroker:
    broker: MosquittoBroker
    certs: Path


@pytest.fixture(scope="module")
def debian() -> Iterator[DebianBroker]:
    """The recipe in conf.d of a stock Debian mosquitto, running as the mosquitto user."""
    started = start_debian_broker()
    yield started
    started.close()


@pytest.fixture(scope="module")
def recipe_broker(debian: DebianBroker) -> RecipeBroker:
    return RecipeBroker(debian.broker, debian.certs)


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


def test_a_device_reads_the_trust_roots_and_timestamp_but_cannot_forge_them(
    client: Callable[[str, str], Subscriber],
) -> None:
    fleet = client("fleet", "edge/+/status")
    fleet.publish("edge/trust/root/2", b"root-2", retain=True)
    fleet.publish("edge/trust/timestamp", b"stamp", retain=True)
    device_a = client("dev-a", "edge/trust/#")
    device_a.publish("edge/trust/root/3", b"forged-root", retain=True)
    device_a.publish("edge/trust/timestamp", b"forged-stamp", retain=True)
    fleet.publish("edge/trust/root/1", b"root-1-marker")
    device_a.wait_for(_has(b"root-1-marker"))
    late = client("dev-b", "edge/trust/#")
    late.wait_for(_has(b"root-2"))
    late.wait_for(_has(b"stamp"))
    got = _payloads(device_a) + _payloads(late)
    assert {b"root-2", b"stamp"} <= set(got)
    assert b"forged-root" not in got
    assert b"forged-stamp" not in got


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

    fleet = results  # one connection per certificate: the broker binds the client id to the CN
    fleet.publish("edge/dev-a/commands/marker-2", b"marker-2")
    device_a.wait_for(_has(b"marker-2"))
    assert b"forged-command" not in _payloads(device_a)
    # One connection per certificate (the client id is the CN): add the filter to it.
    status.subscribe("edge/+/events/#")
    device_a.publish("edge/dev-b/events", b"forged-event")
    device_a.publish("edge/dev-a/events/snapshot/event_cat_123abc", b"own-jpeg")
    device_a.publish("edge/dev-a/events", b"own-event")
    status.wait_for(_has(b"own-event"))
    got = [m.payload for m in status.messages if "/events" in m.topic]
    assert got == [b"own-jpeg", b"own-event"]
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
    hass.subscribe("edge/+/hass/result")
    device_a.publish("edge/dev-b/hass/result", b"forged-state", retain=True)
    device_a.publish("edge/dev-a/hass/result", b"own-state", retain=True)
    hass.wait_for(_has(b"own-state"))
    assert b"forged-state" not in _payloads(hass)


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
    watcher = fleet = client("fleet", "edge/dev-a/availability")
    fleet.subscribe("edge/+/status")
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


# --- Stock Debian / Raspberry Pi OS packaging ------------------------------------------------


def test_the_recipe_sets_no_key_that_the_stock_debian_config_already_sets() -> None:
    stock = config_keys(stock_config_text())
    assert {"pid_file", "persistence", "persistence_location", "log_dest"} <= stock
    recipe = config_keys((ROOT / "systemd" / "mosquitto" / "edge-agent.conf").read_text())
    assert recipe & stock == set()
    assert STOCK_CONFIG.read_text().rstrip().endswith("include_dir /etc/mosquitto/conf.d")


def test_the_stock_broker_runs_as_the_mosquitto_user_reading_a_group_readable_key(
    debian: DebianBroker,
) -> None:
    account = mosquitto_account()
    assert debian.process_uid() == account.pw_uid
    key = debian.key_file.stat()
    assert (stat.S_IMODE(key.st_mode), key.st_uid, key.st_gid) == (0o640, 0, account.pw_gid)
    made = (debian.certs / "broker.key").stat()  # as make-certs.sh left it
    assert (stat.S_IMODE(made.st_mode), made.st_gid) == (0o640, account.pw_gid)
    assert stat.S_IMODE((debian.certs / "dev-a.key").stat().st_mode) == 0o600


def _tracked_client(certs: Path, identity: str, client_id: str) -> tuple[paho.Client, list[str]]:
    """A paho client with ``identity``'s certificate that records connects and disconnects."""
    events: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.tls_set(
        str(certs / "ca.crt"), str(certs / f"{identity}.crt"), str(certs / f"{identity}.key")
    )
    client.on_connect = lambda _c, _u, _f, rc, _p: events.append(f"connect {rc}")
    client.on_disconnect = lambda _c, _u, _f, rc, _p: events.append(f"disconnect {rc}")
    return client, events


def _connect(client: paho.Client, events: list[str], broker: MosquittoBroker) -> None:
    client.connect(broker.host, broker.port, keepalive=10)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events == ["connect Success"]


def test_attack_4_a_device_certificate_cannot_take_over_another_devices_client_id(
    recipe_broker: RecipeBroker, client: Callable[[str, str], Subscriber]
) -> None:
    """Device A's certificate with client id "dev-b" must not disconnect the real dev-b: the
    broker uses the certificate's CN as the client id (use_username_as_clientid)."""
    certs, broker = recipe_broker.certs, recipe_broker.broker
    fleet = client("fleet", "edge/dev-b/status")
    real_b, b_events = _tracked_client(certs, "dev-b", "dev-b")
    attacker, attacker_events = _tracked_client(certs, "dev-a", "dev-b")
    try:
        _connect(real_b, b_events, broker)
        _connect(attacker, attacker_events, broker)
        # The takeover, if any, happened before the attacker's CONNACK. dev-b's next PUBACK
        # comes after paho has seen its socket closed, so the order below proves it stayed.
        real_b.publish("edge/dev-b/status", b"still-here", qos=1).wait_for_publish(10)
        fleet.wait_for(_has(b"still-here"))
        attacker.publish("edge/dev-b/status", b"forged", qos=1).wait_for_publish(10)
        real_b.publish("edge/dev-b/status", b"marker", qos=1).wait_for_publish(10)
        fleet.wait_for(_has(b"marker"))
        assert b_events == ["connect Success"]
        assert attacker_events == ["connect Success"]
        assert b"forged" not in _payloads(fleet)  # it is dev-a to the broker, ACL and all
    finally:
        for mqtt in (attacker, real_b):
            mqtt.disconnect()
            mqtt.loop_stop()


def test_the_agents_client_connects_to_the_stock_broker_with_its_certificate(
    debian: DebianBroker, client: Callable[[str, str], Subscriber]
) -> None:
    certs, broker = debian.certs, debian.broker
    fleet = client("fleet", "edge/dev-b/status")
    settings = MqttSettings.from_url(
        f"mqtts://127.0.0.1:{broker.port}",
        client_id="dev-b",
        tls=TLSFiles(certs / "ca.crt", certs / "dev-b.crt", certs / "dev-b.key"),
    )
    topics = DeviceTopics("edge", "dev-b")
    agent = MqttClient(settings, topics)
    agent.start()
    try:
        agent.wait_connected(15)
        agent.publish(topics.status, b"agent-status")
        fleet.wait_for(_has(b"agent-status"))
    finally:
        agent.stop(5)


def _agent_config(world: AgentWorld, debian: DebianBroker, identity: str) -> Path:
    certs = debian.certs
    world.device_id = identity
    world.bundle_path = world.write_bundle(counter=1)  # encrypted for this device id
    tls = {
        "url": f"mqtts://127.0.0.1:{debian.broker.port}",
        "ca_file": str(certs / "ca.crt"),
        "cert_file": str(certs / f"{identity}.crt"),
        "key_file": str(certs / f"{identity}.key"),
    }
    return world.write_config(mqtt=tls)


@pytest.mark.tensorflow
@pytest.mark.slow
def test_attack_4_the_real_agent_is_not_knocked_off_by_another_certificate_using_its_id(
    debian: DebianBroker,
    client: Callable[[str, str], Subscriber],
    sample_models: ModelFactory,
    tmp_path: Path,
) -> None:
    """Issue 15, attack 4, as found: a real agent (dev-b), and dev-a's certificate connecting
    again and again with client id "dev-b". Its availability must not flap: a kicked agent
    reconnects and says ``online`` again before anything else on the new connection."""
    world = AgentWorld(tmp_path / "device", sample_models("int8"), debian.broker.url)
    fleet = client("fleet", "edge/dev-b/availability")
    fleet.subscribe("edge/dev-b/status")
    agent = AgentProcess(_agent_config(world, debian, "dev-b"), tmp_path / "agent.log")
    try:
        fleet.wait_for(
            lambda got: any(m.payload == b"online" and not m.retain for m in got),
            timeout=90,
            describe=lambda _: agent.log()[-3000:],
        )
        for _ in range(5):  # each CONNACK comes after any takeover it caused
            attacker, events = _tracked_client(debian.certs, "dev-a", "dev-b")
            attacker.connect(debian.broker.host, debian.broker.port, keepalive=10)
            attacker.loop_start()
            deadline = time.monotonic() + 10
            while "connect Success" not in events and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "connect Success" in events
            attacker.disconnect()
            attacker.loop_stop()
        after = time.time() + 2.0
        fleet.wait_for(
            lambda got: any(
                m.topic.endswith("/status") and not m.retain and json.loads(m.payload)["ts"] > after
                for m in got
            ),
            timeout=30,
        )
        availability = [
            m.payload for m in fleet.messages if m.topic.endswith("/availability") and not m.retain
        ]
        assert availability == [b"online"]
        assert agent.terminate() == 0
    finally:
        agent.close()


@pytest.mark.tensorflow
@pytest.mark.slow
def test_the_real_agent_serves_over_mqtts_on_the_stock_broker(
    debian: DebianBroker,
    client: Callable[[str, str], Subscriber],
    sample_models: ModelFactory,
    tmp_path: Path,
) -> None:
    """`edge-agent run` with dev-a's certificate: results and status reach the fleet."""
    world = AgentWorld(tmp_path / "device", sample_models("int8"), debian.broker.url)
    fleet = client("fleet", "edge/dev-a/results")
    fleet.subscribe("edge/dev-a/status")
    agent = AgentProcess(_agent_config(world, debian, "dev-a"), tmp_path / "agent.log")
    try:
        live = {"edge/dev-a/results", "edge/dev-a/status"}  # not what earlier tests retained
        fleet.wait_for(
            lambda got: {m.topic for m in got if not m.retain} >= live,
            timeout=90,
            describe=lambda _: agent.log()[-3000:],
        )
        statuses = [m for m in fleet.messages if m.topic.endswith("/status") and not m.retain]
        assert json.loads(statuses[-1].payload)["backend"] == "litert"
        assert agent.terminate() == 0
    finally:
        agent.close()
