"""The attacks of issue 15, each replayed against a real agent process and a real mosquitto.

Every test holds a fleet key (or plays a broker without limits) and checks three things: the
attack is refused, the refusal is on the status topic with its reason code, and the old model
keeps serving throughout.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.keys import encode_release_public
from agent.mqtt.messages import ResultMessage, StatusMessage
from agent.mqtt.topics import DeviceTopics
from agent.update.commands import (
    BundleOffer,
    Command,
    desired_command,
    fleet_seq,
    rollback_command,
    sign_command,
)
from agent.update.freeze import make_timestamp
from agent.update.protocol import command_topic
from fleet.bundles import PreparedBundle
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import (
    BASE,
    PREFIX,
    Publisher,
    UpdateWorld,
    results,
    updates,
    wait_results,
    wait_update,
)

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

DESIRED_TOPIC = str(command_topic(DeviceTopics(PREFIX, DEVICE_ID), "desired"))


@dataclass
class Scene:
    world: UpdateWorld
    agent: AgentProcess
    publisher: Publisher
    status: Subscriber
    results: Subscriber

    def more_results(self, count: int) -> list[ResultMessage]:
        start = max(r.seq for r in results(self.results.messages))
        got = wait_results(
            self.results, lambda rs: sum(r.seq > start for r in rs) >= count, self.agent
        )
        return [r for r in got if r.seq > start]

    def serving(self) -> set[str]:
        return {r.model.version for r in self.more_results(3)}

    def slots(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(
            (self.world.device.state_dir / "models" / "slots.json").read_text()
        )
        return loaded

    def install(self, bundle: PreparedBundle) -> None:
        self.publisher.everything(bundle)
        self.publisher.desired(self.world, bundle)
        wait_update(
            self.status, lambda u: u.state == "installed" and u.bundle == bundle.bid, self.agent
        )
        wait_results(
            self.results,
            lambda rs: rs[-1].model.version == str(bundle.manifest.counter),
            self.agent,
        )

    def rejection(self, reason: str) -> str:
        """The ``detail`` of the first ``rejected:<reason>`` status (waits for it)."""
        update = wait_update(self.status, lambda u: u.label == f"rejected:{reason}", self.agent)
        return update.detail or ""


def _start(tmp_path: Path, broker: MosquittoBroker, world: UpdateWorld, config: Path) -> Scene:
    scene = Scene(
        world,
        AgentProcess(config, tmp_path / "agent.log"),
        Publisher(broker),
        Subscriber(broker, f"{BASE}/status"),
        Subscriber(broker, f"{BASE}/results"),
    )
    wait_results(scene.results, lambda got: len(got) >= 5, scene.agent)
    return scene


def _close(scene: Scene) -> None:
    scene.agent.close()
    for client in (scene.publisher, scene.status, scene.results):
        client.close()


@pytest.fixture
def world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> UpdateWorld:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    return UpdateWorld(device, broker)


@pytest.fixture
def scene(tmp_path: Path, broker: MosquittoBroker, world: UpdateWorld) -> Iterator[Scene]:
    scene = _start(tmp_path, broker, world, world.config())
    yield scene
    _close(scene)


def _padded(bundle: PreparedBundle, extra: int) -> PreparedBundle:
    """The same signed bundle, its header followed by ``extra`` garbage bytes (attack 1)."""
    header = bundle.header + bytes(range(256))[:extra]
    offer = BundleOffer.for_header(
        header,
        bundle.offer.name,
        bundle.offer.counter,
        len(header) + len(bundle.payload),
        bundle.offer.blocks,
    )
    return PreparedBundle(header, bundle.payload, bundle.manifest, offer)


def test_attack_1_a_header_with_trailing_bytes_is_refused_and_never_reaches_a_slot(
    scene: Scene,
) -> None:
    good = scene.world.bundle(counter=2)
    padded = _padded(good, 64)
    scene.publisher.everything(padded)
    scene.publisher.desired(scene.world, padded)
    detail = scene.rejection("malformed")
    header = len(good.header)
    assert detail == (
        f"64 bytes follow the {header}-byte header; the signed prefix says the header is "
        f"exactly {header} bytes and the bundle exactly {good.offer.size}"
    )
    assert scene.serving() == {"1"}
    assert scene.slots() == {"active": "a", "previous": None}
    assert not (scene.world.device.state_dir / "models" / "slot-b.edgepkg").exists()
    scene.install(good)  # the device is not bricked: the honest bundle installs
    assert scene.slots() == {"active": "b", "previous": "a"}


def test_attack_1_a_bad_active_slot_at_start_up_serves_the_previous_slot(scene: Scene) -> None:
    good = scene.world.bundle(counter=2)
    scene.install(good)
    assert scene.agent.terminate() == 0
    slot_b = scene.world.device.state_dir / "models" / "slot-b.edgepkg"
    slot_b.write_bytes(good.header + bytes(64) + bytes(good.payload))  # what the attack left
    scene.agent = AgentProcess(scene.world.config(), scene.world.device.root / "again.log")
    wait_results(
        scene.results, lambda rs: rs[-1].model.version == "1", scene.agent
    )  # serving v1 again rather than nothing
    assert scene.serving() == {"1"}
    assert scene.slots() == {"active": "a", "previous": "b"}
    assert "active slot b does not verify (malformed: slot b holds" in scene.agent.log()


def _publish_desired(scene: Scene, command: Command, keys: list[Ed25519PrivateKey]) -> None:
    scene.publisher.publish(DESIRED_TOPIC, sign_command(command, keys))


def test_attack_2_a_delayed_rollback_signed_before_the_install_is_replayed(scene: Scene) -> None:
    held = sign_command(rollback_command(DEVICE_ID, time.time() - 100), [scene.world.fleet_key])
    scene.install(scene.world.bundle(counter=10))
    scene.publisher.rollback(held)  # delivered only now
    detail = scene.rejection("replayed")
    assert detail.startswith("rollback command: rollback command seq ")
    assert detail.endswith(", any kind)")
    assert scene.serving() == {"10"}
    assert scene.slots() == {"active": "b", "previous": "a"}


def test_attack_3_a_desired_command_issued_in_1970_is_expired(scene: Scene) -> None:
    bundle = scene.world.bundle(counter=2)
    scene.publisher.everything(bundle)
    stale = Command("desired", DEVICE_ID, fleet_seq(time.time()), 0, 3600, bundle.offer)
    _publish_desired(scene, stale, [scene.world.fleet_key])
    detail = scene.rejection("expired")
    assert detail.startswith("desired command: desired command expired at 3600, ")
    assert detail.endswith(" s ago by this device's clock (allowed skew 300 s)")
    assert scene.serving() == {"1"}
    assert scene.slots() == {"active": "a", "previous": None}
    future = desired_command(DEVICE_ID, bundle.offer, time.time() + 86400)
    _publish_desired(scene, future, [scene.world.fleet_key])
    assert scene.rejection("not_yet_valid").startswith("desired command: desired command issued")
    assert scene.serving() == {"1"}


def _modes(root: Path) -> dict[str, str]:
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    found["."] = oct(stat.S_IMODE(root.stat().st_mode))
    return found


def test_attack_6_everything_in_the_state_directory_is_private(scene: Scene) -> None:
    scene.install(scene.world.bundle(counter=2))
    modes = _modes(scene.world.device.state_dir)
    assert {"outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm"} <= set(modes)
    assert {"models/slot-a.edgepkg", "models/slot-b.edgepkg", "updates/commands.json"} <= set(modes)
    loose = {
        name: mode
        for name, mode in modes.items()
        if mode != ("0o700" if (scene.world.device.state_dir / name).is_dir() else "0o600")
    }
    assert loose == {}


def test_k_of_n_fleet_keys_k_minus_one_signatures_are_refused_k_accepted(
    tmp_path: Path, broker: MosquittoBroker, world: UpdateWorld
) -> None:
    others = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
    for index, key in enumerate(others):
        (world.device.root / f"fleet{index}.pub").write_bytes(
            encode_release_public(key.public_key())
        )
    config = world.config(
        keys={"fleet_keys": ["fleet.pub", "fleet0.pub", "fleet1.pub"], "fleet_threshold": 2}
    )
    scene = _start(tmp_path, broker, world, config)
    try:
        bundle = world.bundle(counter=2)
        scene.publisher.everything(bundle)
        one = desired_command(DEVICE_ID, bundle.offer, time.time())
        _publish_desired(scene, one, [world.fleet_key])
        detail = scene.rejection("threshold_not_met")
        assert detail == "desired command: 1 distinct trusted fleet key(s) signed, threshold is 2"
        assert scene.serving() == {"1"}
        two = desired_command(DEVICE_ID, bundle.offer, time.time() + 1)
        _publish_desired(scene, two, [world.fleet_key, others[1]])
        wait_update(scene.status, lambda u: u.state == "installed", scene.agent)
        wait_results(scene.results, lambda rs: rs[-1].model.version == "2", scene.agent)
        labels = [u.label for u in updates(scene.status.messages)]
        assert labels.index("rejected:threshold_not_met") < labels.index("installed")
    finally:
        _close(scene)


def _peak_rss(agent: AgentProcess) -> int:
    """The agent's peak resident set size so far (``VmHWM``), bytes."""
    for line in Path(f"/proc/{agent.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def _errors(status: Subscriber) -> dict[str, int]:
    latest: dict[str, int] = {}
    for message in status.messages:
        if message.payload:
            latest = StatusMessage.from_json(message.payload).errors
    return latest


HUGE = 100 * 1000 * 1000


def test_attack_5_a_100_mb_retained_command_never_reaches_the_agent_and_drops_are_counted(
    scene: Scene,
) -> None:
    baseline = _peak_rss(scene.agent)
    rollback_topic = DESIRED_TOPIC.replace("/desired", "/rollback")
    scene.publisher.publish(DESIRED_TOPIC, b"x" * HUGE)  # retained, on a broker without limits
    scene.publisher.publish(rollback_topic, b"y" * (100 * 1024), retain=False)  # over 16 KiB
    scene.publisher.publish(rollback_topic, b"[" * 7_000 + b"]" * 7_000, retain=False)
    wanted = {"mqtt_oversize.commands/rollback": 1, "command_rejected.malformed": 1}

    def counted(_got: object) -> bool:
        errors = _errors(scene.status)
        return all(errors.get(k) == v for k, v in wanted.items())

    scene.status.wait_for(counted, timeout=60, describe=lambda _g: str(_errors(scene.status)))
    assert (
        scene.rejection("malformed") == "rollback command: command: JSON nests deeper than 8 levels"
    )
    assert scene.serving() == {"1"}
    after = _peak_rss(scene.agent)
    assert scene.agent.terminate() == 0
    # ... and on every reconnect: a fresh agent subscribes to the retained 100 MB message
    scene.agent = AgentProcess(scene.world.config(), scene.world.device.root / "again.log")
    assert {r.model.version for r in scene.more_results(5)} == {"1"}
    again = _peak_rss(scene.agent)
    print(
        f"peak RSS: baseline {baseline / 1e6:.0f} MB, after the attack {after / 1e6:.0f} MB, "
        f"restarted with the message retained {again / 1e6:.0f} MB"
    )
    assert after - baseline < 30 * 1000 * 1000
    assert again - baseline < 30 * 1000 * 1000
    log = scene.world.device.root.parent / "agent.log"
    assert (
        "dropped 1 oversize message(s) on edge/pi-test-1/commands/rollback (this one 102400 bytes,"
        " limit 16384); counted in status errors.mqtt_oversize.commands/rollback"
    ) in log.read_text()


def test_freeze_a_fleet_gone_silent_is_reported_on_status_and_a_fresh_timestamp_clears_it(
    tmp_path: Path, broker: MosquittoBroker, world: UpdateWorld
) -> None:
    scene = _start(tmp_path, broker, world, world.config(freeze_after_s=4.0))
    topic = f"{PREFIX}/trust/timestamp"

    def latest(_got: object = None) -> dict[str, int]:
        return _errors(scene.status)

    try:
        now = int(time.time())
        scene.publisher.publish(topic, make_timestamp(now, now + 3600, [world.fleet_key]))
        scene.status.wait_for(lambda _g: latest().get("fleet_silent_s", 0) >= 4, timeout=60)
        assert "no fresh signed timestamp from the fleet for" in scene.agent.log()
        forged = make_timestamp(now + 5, now + 3600, [Ed25519PrivateKey.generate()])
        scene.publisher.publish(topic, forged)
        assert "has no signature by a trusted fleet key" in scene.rejection("signature_invalid")
        scene.publisher.publish(topic, make_timestamp(now + 6, now + 3600, [world.fleet_key]))
        scene.status.wait_for(lambda _g: "fleet_silent_s" not in latest(), timeout=60)
        assert latest()["timestamp_rejected.signature_invalid"] == 1
        assert "the fleet is heard again" in scene.agent.log()
        assert scene.serving() == {"1"}
    finally:
        _close(scene)
