"""edge-fleet through Aedes: the MQTT 5 -> 3.1.1 fallback, and a 2-node cluster on Redis.

Aedes refuses MQTT 5, so the fleet manager and the simulated devices (``bench.sim_agent``, the
device's real command, verification and transfer code) both fall back to 3.1.1. The cluster is
two Aedes processes sharing one Redis (retained messages in ``aedes-persistence-redis``,
publishes relayed by ``mqemitter-redis``), devices spread over both nodes, the fleet on one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet_sim import GROUP, Keys
from fleet.cli import main
from tests.fleet.sim_support import fleet_files, sim_agents
from tests.support.aedes import Process, start_aedes, start_redis

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = 6


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Process]]:
    redis = start_redis(tmp_path / "redis")
    nodes = [start_aedes(tmp_path / f"node{i}", redis.port) for i in (1, 2)]
    yield nodes
    for process in (*nodes, redis):
        process.close()


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Process]:
    node = start_aedes(tmp_path / "aedes")
    yield node
    node.close()


def push_and_status(
    url: str, tmp_path: Path, nodes: list[Process], capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, object], dict[str, object]]:
    keys = Keys()
    ports = [str(n.port) for n in nodes]
    with sim_agents(nodes[0], tmp_path, keys, AGENTS, "--ports", *ports):
        bundle = tmp_path / "sim-2.edgepkg"
        bundle.write_bytes(keys.bundle(2, 300_000))
        common = ["--url", url, *fleet_files(tmp_path, keys, AGENTS)]
        code = main(["push", str(bundle), "--group", GROUP, "--wait", "--timeout", "120",
                     "--json", *common])  # fmt: skip
        pushed = json.loads(capsys.readouterr().out)
        assert code == 0, pushed
        assert main(["status", "--json", *common]) == 0
        status = json.loads(capsys.readouterr().out)
        return pushed, status


def test_push_falls_back_to_mqtt_311_on_a_broker_that_refuses_mqtt_5(
    single: Process, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed, status = push_and_status(single.url, tmp_path, [single], capsys)
    assert (pushed["installed"], pushed["failed"], pushed["offline"]) == (AGENTS, {}, [])
    assert status["summary"]["versions"] == {"sim 2": AGENTS}  # type: ignore[index]


def test_push_and_status_through_a_2_node_aedes_cluster_with_devices_on_both_nodes(
    cluster: list[Process], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed, status = push_and_status(cluster[0].url, tmp_path, cluster, capsys)
    assert (pushed["installed"], pushed["failed"], pushed["offline"]) == (AGENTS, {}, [])
    view = status["view"]
    assert (view["complete"], view["read"], view["mode"]) == (True, AGENTS, "exact")  # type: ignore[index]
    assert status["summary"]["versions"] == {"sim 2": AGENTS}  # type: ignore[index]
