"""An update test world: a device agent (a real process), a fleet key, bundles, and a publisher
that puts exactly the retained messages a test wants on the broker (all blocks, some, corrupt).

The publisher is a plain paho client so a test controls which blocks exist when; the bundle is
split with the fleet's own ``prepare_bundle`` and commands are signed with the shared schema.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.keys import encode_release_public
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage, StatusMessage, UpdateStatus
from agent.mqtt.topics import DeviceTopics
from agent.schema.meta import ModelMetadata
from agent.update.commands import desired_command, rollback_command, sign_command
from agent.update.protocol import command_topic
from agent.update.transfer import Bitmap
from fleet.bundles import PreparedBundle, prepare_bundle
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber

PREFIX = "edge"
BASE = f"{PREFIX}/{DEVICE_ID}"
TEST_UPDATE = {
    "window": 4,
    "watch_results": 5,
    "watch_s": 1.0,
    "canary_timeout_s": 120.0,
    "latency_budget_factor": 1000.0,  # latency is for bench/, not for tests on a loaded machine
}


@dataclass
class UpdateWorld:
    """An :class:`AgentWorld` whose agent obeys a fleet key, plus what a test needs around it."""

    device: AgentWorld
    broker: MosquittoBroker | None  # None: the in-process tests' fake broker
    fleet_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        (self.device.root / "fleet.pub").write_bytes(
            encode_release_public(self.fleet_key.public_key())
        )

    def config(self, keys: dict[str, object] | None = None, **update: object) -> Path:
        return self.device.write_config(
            tables={
                "keys": {"fleet_keys": ["fleet.pub"], **(keys or {})},
                "update": {**TEST_UPDATE, **update},
            },
            source={"type": "video", "path": str(self.device.video), "loop": True},
        )

    def bundle(
        self,
        counter: int,
        *,
        model: bytes | None = None,
        metadata: bytes | None = None,
        canary: bytes | None = None,
        block_size: int = 1024,
        recipients: list[RecipientKey] | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> PreparedBundle:
        """A signed bundle for this device, split as the fleet publishes it (1 KiB blocks);
        ``signer`` replaces the release key the device trusts."""
        meta = metadata or self.device.model.metadata.read_bytes()
        files = {
            "model.tflite": model or self.device.model.model_bytes(),
            "metadata.json": meta,
            "canary.npz": canary or self.device.model.canary.read_bytes(),
            "labels.txt": "".join(f"{d}\n" for d in range(10)).encode(),
        }
        release = Release(
            name="digits",
            counter=counter,
            created=int(time.time()) - 60,
            metadata=ModelMetadata.from_json(meta),
            block_size=block_size,
        )
        recipients = recipients or [RecipientKey(DEVICE_ID, self.device.device_key.public_key())]
        signers = [signer or self.device.release_key]
        return prepare_bundle(build_bundle(release, files, signers, recipients))

    def bitmap(self, bundle: PreparedBundle) -> Bitmap | None:
        """The bitmap the agent persisted for ``bundle`` (what it may trust after a crash)."""
        path = self.device.state_dir / "updates" / f"{bundle.bid}.bitmap"
        try:
            return Bitmap.from_bytes(path.read_bytes(), bundle.offer.blocks)
        except FileNotFoundError:
            return None


class Publisher:
    """A plain paho client that publishes retained bundle parts and signed commands."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.on_connect = lambda _c, _u, _f, _rc, _p: self._connected.set()
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        self._client.connect(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        if not self._connected.wait(10):
            pytest.fail("test publisher did not connect")

    def publish(self, topic: str, payload: bytes, *, retain: bool = True) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                info.wait_for_publish(20)
                return
            time.sleep(0.1)  # reconnecting after a broker restart
        pytest.fail(f"could not publish to {topic}")

    def parts(
        self, bundle: PreparedBundle, blocks: Iterable[int], corrupt: Iterable[int] = ()
    ) -> None:
        """The header and the given blocks; ``corrupt`` blocks get one byte flipped."""
        messages = bundle.messages(PREFIX)
        self.publish(str(messages[0][0]), messages[0][1])
        bad = set(corrupt)
        for index in blocks:
            topic, payload = messages[index + 1]
            if index in bad:
                payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
            self.publish(str(topic), payload)

    def everything(self, bundle: PreparedBundle) -> None:
        self.parts(bundle, range(bundle.offer.blocks))

    def desired(self, world: UpdateWorld, bundle: PreparedBundle) -> None:
        envelope = sign_command(
            desired_command(DEVICE_ID, bundle.offer, time.time()), [world.fleet_key]
        )
        self.publish(str(command_topic(DeviceTopics(PREFIX, DEVICE_ID), "desired")), envelope)

    def rollback(self, envelope: bytes) -> None:
        topic = command_topic(DeviceTopics(PREFIX, DEVICE_ID), "rollback")
        self.publish(str(topic), envelope, retain=False)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def signed_rollback(world: UpdateWorld, key: Ed25519PrivateKey | None = None) -> bytes:
    return sign_command(rollback_command(DEVICE_ID, time.time()), [key or world.fleet_key])


def updates(messages: list[Received]) -> list[UpdateStatus]:
    found = []
    for message in messages:
        if message.topic.endswith("/status") and message.payload:
            update = StatusMessage.from_json(message.payload).update
            if update is not None:
                found.append(update)
    return found


def results(messages: list[Received]) -> list[ResultMessage]:
    return [r for m in messages if m.topic.endswith("/results") for r in results_in(m.payload)]


def wait_update(
    status: Subscriber,
    predicate: Callable[[UpdateStatus], bool],
    agent: AgentProcess,
    timeout: float = 90.0,
) -> UpdateStatus:
    """Wait for a status whose ``update`` satisfies ``predicate``; fail showing the agent log."""

    def describe(got: list[Received]) -> str:
        labels = [u.label for u in updates(got)]
        return f"update states {labels[-8:]}\n{agent.log()[-4000:]}"

    status.wait_for(
        lambda got: any(predicate(u) for u in updates(got)), timeout=timeout, describe=describe
    )
    return next(u for u in reversed(updates(status.messages)) if predicate(u))


def wait_results(
    watcher: Subscriber,
    predicate: Callable[[list[ResultMessage]], bool],
    agent: AgentProcess,
    timeout: float = 60.0,
) -> list[ResultMessage]:
    watcher.wait_for(
        lambda got: predicate(results(got)),
        timeout=timeout,
        describe=lambda got: f"{len(results(got))} results\n{agent.log()[-4000:]}",
    )
    return results(watcher.messages)


def wrong_canary(canary: bytes) -> bytes:
    """The same canary with an expected output that is off by 1.0 everywhere."""
    with np.load(io.BytesIO(canary)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["expected"] = arrays["expected"] + np.float32(1.0)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def subscribed_blocks(broker_log: str, bid: str) -> list[int]:
    """Block indices the broker logged SUBSCRIBEs for (mosquitto ``log_type subscribe``)."""
    pattern = re.compile(rf"\t{PREFIX}/bundles/{bid}/blocks/(\d+) \(QoS")
    return [int(m.group(1)) for m in pattern.finditer(broker_log)]
