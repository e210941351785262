"""edge-fleet on a 2-node RabbitMQ cluster (Debian's 3.10, MQTT plugin): what works, what not.

RabbitMQ 3.10 speaks MQTT 3.1.1 only and does not answer an MQTT 5 CONNECT at all (so the
fleet and the devices are told ``--protocol 3.1.1``). It keeps retained messages per node and
delivers them to exact-topic subscriptions only, never to wildcards; live publishes do cross the
cluster. So with one ``--url`` the exact-topic design works where the fleet and its devices
share a node; with ``--node`` for each node (:mod:`fleet.cluster`) every retained message is on
every node and the view is read from both, so devices on either node install.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as paho_publish
import pytest

from agent.mqtt.topics import DeviceTopics, Topic
from agent.update.protocol import COMMAND_DESIRED, command_topic
from bench.fleet_sim import GROUP, PREFIX, Keys
from fleet.cli import main
from fleet.commands.gc import desired_bundle
from fleet.commands.push import load_bundle
from fleet.connection import connect
from fleet.reader import read_retained
from fleet.settings import FleetSettings
from tests.fleet.sim_support import fleet_files, sim_agents
from tests.support.broker import Subscriber
from tests.support.rabbitmq import RabbitNode, start_cluster

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = 4
PROTOCOL = ["--protocol", "3.1.1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    nodes = start_cluster(tmp_path_factory.mktemp("rabbitmq"))
    yield nodes
    for node in reversed(nodes):
        node.close()


def received(node: RabbitNode, topic_filter: str) -> list[str]:
    subscriber = Subscriber(node, topic_filter)  # type: ignore[arg-type]
    try:
        time.sleep(2.0)  # retained messages come right after the SUBACK
        return [m.payload.decode() for m in subscriber.messages]
    finally:
        subscriber.close()


def test_rabbitmq_keeps_retained_messages_per_node_and_only_for_exact_subscriptions(
    cluster: list[RabbitNode],
) -> None:
    a, b = cluster
    paho_publish.single("facts/pi-1/status", b"on a", qos=1, retain=True, hostname=a.host,
                        port=a.port, protocol=4)  # fmt: skip
    assert received(a, "facts/pi-1/status") == ["on a"]
    assert received(b, "facts/pi-1/status") == []
    assert received(a, "facts/+/status") == []


def test_push_and_status_work_when_the_fleet_and_its_devices_share_a_node(
    cluster: list[RabbitNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys()
    node = cluster[1]
    with sim_agents(node, tmp_path, keys, AGENTS, "--protocol", "3.1.1"):
        bundle = tmp_path / "sim-2.edgepkg"
        bundle.write_bytes(keys.bundle(2, 300_000))
        common = ["--url", node.url, *PROTOCOL, *fleet_files(tmp_path, keys, AGENTS)]
        code = main(["push", str(bundle), "--group", GROUP, "--wait", "--timeout", "120",
                     "--json", *common])  # fmt: skip
        pushed = json.loads(capsys.readouterr().out)
        assert (code, pushed["installed"], pushed["failed"]) == (0, AGENTS, {})
        assert main(["status", "--json", *common]) == 0
        status = json.loads(capsys.readouterr().out)
    assert (status["view"]["complete"], status["view"]["read"]) == (True, AGENTS)
    assert status["summary"]["versions"] == {"sim 2": AGENTS}


def retained_on(node: RabbitNode, topics: list[Topic]) -> dict[str, bytes]:
    """The retained messages ``node`` holds of ``topics`` (read by exact topic)."""
    settings = FleetSettings(url=node.url, protocol="3.1.1", client_id=f"probe-{node.port}")
    with connect(settings) as client:
        payloads, unread = read_retained(client, topics, max_payload=1 << 20)
    assert unread == []
    return payloads


def nodes_of(cluster: list[RabbitNode]) -> list[str]:
    return [word for n in cluster for word in ("--node", f"{n.host}:{n.port}")]


def test_with_every_node_given_devices_on_both_nodes_install_and_the_view_is_complete(
    cluster: list[RabbitNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """dev-00000 and dev-00002 connect to node a, dev-00001 and dev-00003 to node b. Then `gc`
    finds the installed bundle by the exact topic its desired commands name (RabbitMQ delivers
    no retained header to a wildcard) and deletes it from both nodes."""
    keys = Keys()
    ports = [str(n.port) for n in cluster]
    with sim_agents(cluster[0], tmp_path, keys, AGENTS, "--protocol", "3.1.1", "--ports", *ports):
        bundle = tmp_path / "sim-2.edgepkg"
        bundle.write_bytes(keys.bundle(2, 300_000))
        common = [*nodes_of(cluster), *PROTOCOL, *fleet_files(tmp_path, keys, AGENTS)]
        code = main(["push", str(bundle), "--group", GROUP, "--wait", "--timeout", "120",
                     "--json", *common])  # fmt: skip
        pushed = json.loads(capsys.readouterr().out)
        assert (code, pushed["installed"], pushed["failed"]) == (0, AGENTS, {})
        assert main(["status", "--json", *common]) == 0
        status = json.loads(capsys.readouterr().out)
        topics = load_bundle(bundle).topics(PREFIX)
        assert [len(retained_on(node, topics)) for node in cluster] == [len(topics)] * 2
        assert main(["gc", "--json", *common]) == 0  # installed everywhere: nobody wants it
        deleted = json.loads(capsys.readouterr().out)["deleted"]
    assert (status["view"]["complete"], status["view"]["read"]) == (True, AGENTS)
    assert status["view"]["never_announced"] == []
    assert status["summary"]["versions"] == {"sim 2": AGENTS}
    assert deleted == {load_bundle(bundle).bid: len(topics) - 1}
    assert [retained_on(node, topics) for node in cluster] == [{}, {}]


def test_an_aborted_rollout_leaves_nothing_retained_on_either_node(
    cluster: list[RabbitNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At rate 0.5 the seeded draw fails dev-00002 (node a) in the canary stage of 3: the abort
    withdraws the desired commands and the bundle from both nodes. (dev-00003, never sent this
    release, may keep the desired command of an earlier test's release.)"""
    keys = Keys()
    ports = [str(n.port) for n in cluster]
    with sim_agents(cluster[0], tmp_path, keys, AGENTS, "--protocol", "3.1.1", "--ports", *ports,
                    fail_rate=0.5):  # fmt: skip
        bundle = tmp_path / "sim-3.edgepkg"
        bundle.write_bytes(keys.bundle(3, 200_000))
        common = [*nodes_of(cluster), *PROTOCOL, *fleet_files(tmp_path, keys, AGENTS)]
        code = main(["rollout", "start", str(bundle), "--group", GROUP, "--canary", "3",
                     "--batch", "3", "--stage-timeout", "120", "--state-dir",
                     str(tmp_path / "rollouts"), "--json", *common])  # fmt: skip
        out = capsys.readouterr().out
    assert code != 0, out
    assert "dev-00002" in out
    desired = [command_topic(DeviceTopics(PREFIX, f"dev-{i:05d}"), COMMAND_DESIRED)
               for i in range(AGENTS)]  # fmt: skip
    aborted = load_bundle(bundle)
    for node in cluster:
        assert retained_on(node, aborted.topics(PREFIX)) == {}
        wanted = [desired_bundle(e) for e in retained_on(node, desired).values()]
        assert aborted.bid not in wanted


def test_a_node_that_is_down_is_named_and_nothing_is_sent(
    cluster: list[RabbitNode], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys()
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    port = down.getsockname()[1]
    down.close()  # nothing listens there now
    bundle = tmp_path / "sim-4.edgepkg"
    bundle.write_bytes(keys.bundle(4, 50_000))
    nodes = [*nodes_of(cluster[:1]), "--node", f"127.0.0.1:{port}"]
    common = [*nodes, *PROTOCOL, *fleet_files(tmp_path, keys, AGENTS)]
    assert main(["push", str(bundle), "--group", GROUP, *common]) == 5  # the network failed
    assert f"node 127.0.0.1:{port} refused the connection" in capsys.readouterr().err
    assert retained_on(cluster[0], load_bundle(bundle).topics(PREFIX)) == {}
