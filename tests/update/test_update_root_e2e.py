"""Root of trust rotated over MQTT with ``edge-fleet trust``, end to end: a real agent process
offline across two rotations (add a release key, then revoke the old one) catches up through
both, refuses a bundle signed by the revoked key and installs one signed by the new key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.keys import encode_private, encode_release_public
from agent.bundle.root import make_root
from agent.mqtt.messages import ResultMessage, StatusMessage
from fleet.cli import main as fleet
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import BASE, Publisher, UpdateWorld, results, wait_results, wait_update

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


def _key_pair(directory: Path, name: str, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    private.write_bytes(encode_private(key))
    private.chmod(0o600)
    public.write_bytes(encode_release_public(key.public_key()))
    return private, public


def _versions_after(watcher: Subscriber, seq: int) -> set[str]:
    return {r.model.version for r in results(watcher.messages) if r.seq > seq}


def _last_seq(watcher: Subscriber) -> int:
    found: list[ResultMessage] = results(watcher.messages)
    return max(r.seq for r in found)


class _Keys:
    """The root key, release keys A (the device's, to be revoked) and B, the fleet key."""

    def __init__(self, directory: Path, device: AgentWorld, world: UpdateWorld) -> None:
        directory.mkdir()
        self.root_key, self.root_pub = _key_pair(directory, "root", Ed25519PrivateKey.generate())
        _, self.old_pub = _key_pair(directory, "release-a", device.release_key)
        self.new_release = Ed25519PrivateKey.generate()
        _, self.new_pub = _key_pair(directory, "release-b", self.new_release)
        _, self.fleet_pub = _key_pair(directory, "fleet", world.fleet_key)


TEST_UPDATE = {
    "window": 4,
    "watch_results": 5,
    "watch_s": 1.0,
    "canary_timeout_s": 120.0,
    "latency_budget_factor": 1000.0,
}


def _config(device: AgentWorld) -> Path:
    """Release and fleet keys come only from the root metadata."""
    return device.write_config(
        tables={
            "keys": {"trusted_keys": [], "root_file": "root-1.json"},
            "update": TEST_UPDATE,
        },
        source={"type": "video", "path": str(device.video), "loop": True},
    )


def test_root_rotation_revokes_the_old_release_key_and_an_offline_device_catches_up(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    world = UpdateWorld(device, broker)
    keys = _Keys(tmp_path / "keys", device, world)
    connection = ["--url", broker.url]
    root_1 = device.root / "root-1.json"
    assert fleet(["trust", "init", "--root", str(keys.root_pub), "--release", str(keys.old_pub),
                  "--fleet", str(keys.fleet_pub), "--sign", str(keys.root_key),
                  "--out", str(root_1), "--publish", *connection]) == 0  # fmt: skip
    config = _config(device)
    status = Subscriber(broker, f"{BASE}/status")
    watcher = Subscriber(broker, f"{BASE}/results")
    publisher = Publisher(broker)
    agent = AgentProcess(config, tmp_path / "agent.log")
    try:
        wait_results(watcher, lambda got: len(got) >= 3, agent)
        assert agent.terminate() == 0  # the device goes offline for two rotations

        root_2, root_3 = tmp_path / "root-2.json", tmp_path / "root-3.json"
        assert fleet(["trust", "rotate", "--from", str(root_1),
                      "--add-release", str(keys.new_pub), "--sign", str(keys.root_key),
                      "--out", str(root_2), "--publish", *connection]) == 0  # fmt: skip
        assert fleet(["trust", "revoke", str(keys.old_pub), "--from", str(root_2),
                      "--sign", str(keys.root_key), "--out", str(root_3), "--publish",
                      *connection]) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert "root version 3 written" in out
        assert "release: 1 of 1" in out

        agent = AgentProcess(config, tmp_path / "again.log")
        wait_results(watcher, lambda got: len(got) >= 6, agent)
        saved = device.state_dir / "trust" / "root.json"
        wait_results(watcher, lambda _got: "trust root now version 3" in agent.log(), agent)
        assert agent.log().index("trust root now version 2") < agent.log().index("version 3")
        assert saved.exists()

        signed_by_old = world.bundle(counter=2)  # the revoked key A
        publisher.everything(signed_by_old)
        publisher.desired(world, signed_by_old)
        refused = wait_update(
            status, lambda u: u.bundle == signed_by_old.bid and u.state == "rejected", agent
        )
        assert refused.label == "rejected:signature_invalid"
        assert (
            refused.detail
            == "signature does not verify with any trusted key (has no signature by a trusted key)"
        )
        start = _last_seq(watcher)
        wait_results(watcher, lambda got: sum(r.seq > start for r in got) >= 3, agent)
        assert _versions_after(watcher, start) == {"1"}

        device.release_key = keys.new_release
        signed_by_new = world.bundle(counter=3)
        publisher.everything(signed_by_new)
        publisher.desired(world, signed_by_new)
        wait_update(
            status, lambda u: u.bundle == signed_by_new.bid and u.state == "installed", agent
        )
        wait_results(watcher, lambda got: got[-1].model.version == "3", agent)
        assert (
            json.loads(saved.read_bytes())["payloadType"]
            == "application/vnd.edge-agent.root.v1+json"
        )
        assert agent.terminate() == 0
    finally:
        agent.close()
        for client in (publisher, status, watcher):
            client.close()


def _errors(status: Subscriber) -> dict[str, int]:
    latest: dict[str, int] = {}
    for message in status.messages:
        if message.payload:
            latest = StatusMessage.from_json(message.payload).errors
    return latest


def test_an_expired_root_refuses_new_installs_keeps_serving_until_a_newer_root_arrives(
    tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker
) -> None:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    world = UpdateWorld(device, broker)
    keys = _Keys(tmp_path / "keys", device, world)
    connection = ["--url", broker.url]
    root_1 = device.root / "root-1.json"
    root_key = Ed25519PrivateKey.generate()  # provisioned with a root that expired yesterday
    roles = {
        "root": ([root_key.public_key()], 1),
        "release": ([device.release_key.public_key()], 1),
        "fleet": ([world.fleet_key.public_key()], 1),
    }
    root_1.write_bytes(make_root(1, int(time.time()) - 86400, roles, [root_key]))
    root_key_file, _ = _key_pair(tmp_path / "keys", "root-old", root_key)
    status = Subscriber(broker, f"{BASE}/status")
    watcher = Subscriber(broker, f"{BASE}/results")
    publisher = Publisher(broker)
    agent = AgentProcess(_config(device), tmp_path / "agent.log")
    try:
        wait_results(watcher, lambda got: len(got) >= 3, agent)
        status.wait_for(lambda _g: _errors(status).get("root_expired") == 1, timeout=60)
        assert _errors(status)["report_unsigned"] == 1  # no keys.report_key: says so

        refused_bundle = world.bundle(counter=2)
        publisher.everything(refused_bundle)
        publisher.desired(world, refused_bundle)
        refused = wait_update(
            status, lambda u: u.bundle == refused_bundle.bid and u.state == "rejected", agent
        )
        assert refused.label == "rejected:root_expired"
        assert refused.detail.startswith("trust root version 1 expired at ")
        assert refused.detail.endswith(": no new install until a newer root arrives")
        start = _last_seq(watcher)
        wait_results(watcher, lambda got: sum(r.seq > start for r in got) >= 3, agent)
        assert _versions_after(watcher, start) == {"1"}

        root_2 = tmp_path / "root-2.json"
        assert fleet(["trust", "rotate", "--from", str(root_1), "--add-release",
                      str(keys.new_pub), "--sign", str(root_key_file), "--out", str(root_2),
                      "--publish", *connection]) == 0  # fmt: skip
        status.wait_for(lambda _g: "root_expired" not in _errors(status), timeout=60)
        assert "trust root now version 2" in agent.log()

        fresh = world.bundle(counter=3)
        publisher.everything(fresh)
        publisher.desired(world, fresh)
        wait_update(status, lambda u: u.bundle == fresh.bid and u.state == "installed", agent)
        wait_results(watcher, lambda got: got[-1].model.version == "3", agent)
        assert agent.terminate() == 0
    finally:
        agent.close()
        for client in (publisher, status, watcher):
            client.close()
