"""Activation on a real agent process: the swap loses no frame, a failing canary is rejected,
NaN after the swap rolls back by itself, and rollback commands must be signed and fresh."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import make_envelope
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from agent.update.commands import COMMAND_PAYLOAD_TYPE, rollback_command
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.conftest import NanModel
from tests.update.harness import (
    BASE,
    Publisher,
    UpdateWorld,
    signed_rollback,
    updates,
    wait_results,
    wait_update,
    wrong_canary,
)

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


@dataclass
class Scene:
    """One device agent running version 1, with a publisher and subscribers on the broker."""

    world: UpdateWorld
    agent: AgentProcess
    publisher: Publisher
    status: Subscriber
    results: Subscriber

    def versions_after(self, seq: int) -> set[str]:
        return {r.model.version for r in _results(self.results) if r.seq > seq}

    def last_seq(self) -> int:
        return max(r.seq for r in _results(self.results))

    def slots(self) -> dict[str, object]:
        path = self.world.device.state_dir / "models" / "slots.json"
        loaded: dict[str, object] = json.loads(path.read_text())
        return loaded


def _results(subscriber: Subscriber) -> list[ResultMessage]:
    return [r for m in subscriber.messages for r in results_in(m.payload)]


@pytest.fixture
def scene(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> Iterator[Scene]:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    world = UpdateWorld(device, broker)
    results = Subscriber(broker, f"{BASE}/results")
    status = Subscriber(broker, f"{BASE}/status")
    agent = AgentProcess(world.config(), tmp_path / "agent.log")
    scene = Scene(world, agent, Publisher(broker), status, results)
    wait_results(results, lambda got: len(got) >= 5, agent)
    yield scene
    agent.close()
    for client in (scene.publisher, status, results):
        client.close()


def _more_results(scene: Scene, count: int) -> list[ResultMessage]:
    start = scene.last_seq()
    return [
        r
        for r in wait_results(
            scene.results, lambda got: sum(r.seq > start for r in got) >= count, scene.agent
        )
        if r.seq > start
    ]


def test_a_swap_loses_no_result_and_results_carry_the_new_version(scene: Scene) -> None:
    bundle = scene.world.bundle(counter=2)
    scene.publisher.everything(bundle)
    scene.publisher.desired(scene.world, bundle)
    wait_update(scene.status, lambda u: u.state == "installed", scene.agent)
    wait_results(
        scene.results, lambda got: sum(r.model.version == "2" for r in got) >= 10, scene.agent
    )
    by_seq = {r.seq: r for r in _results(scene.results)}
    seqs = sorted(by_seq)
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # no gap across the swap
    versions = [by_seq[s].model.version for s in seqs]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"}
    assert set(versions[switch:]) == {"2"}  # one switch, never back
    assert scene.slots() == {"active": "b", "previous": "a"}
    assert scene.agent.terminate() == 0


def test_a_bundle_whose_canary_fails_is_rejected_and_the_old_model_keeps_serving(
    scene: Scene,
) -> None:
    canary = wrong_canary(scene.world.device.model.canary.read_bytes())
    bundle = scene.world.bundle(counter=2, canary=canary)
    scene.publisher.everything(bundle)
    scene.publisher.desired(scene.world, bundle)
    rejected = wait_update(scene.status, lambda u: u.state == "rejected", scene.agent)
    assert rejected.label == "rejected:canary_mismatch"
    assert rejected.bundle == bundle.bid
    assert {r.model.version for r in _more_results(scene, 5)} == {"1"}
    assert scene.slots() == {"active": "a", "previous": None}
    assert scene.agent.terminate() == 0


def test_a_model_producing_nan_after_the_swap_is_rolled_back_automatically(
    scene: Scene, nan_model: NanModel
) -> None:
    bundle = scene.world.bundle(
        counter=2, model=nan_model.tflite, metadata=nan_model.metadata, canary=nan_model.canary
    )
    scene.publisher.everything(bundle)
    scene.publisher.desired(scene.world, bundle)
    rolled = wait_update(scene.status, lambda u: u.state == "rolled_back", scene.agent)
    assert rolled.label == "rolled_back:nan_output"
    assert "installed" in {u.state for u in updates(scene.status.messages)}  # it went live
    after = _more_results(scene, 5)
    assert {r.model.version for r in after} == {"1"}
    assert "2" not in {r.model.version for r in _results(scene.results)}  # NaN never published
    assert scene.slots() == {"active": "a", "previous": "b"}
    assert scene.agent.terminate() == 0

    again = AgentProcess(scene.world.config(), scene.world.device.root / "again.log")
    scene.agent = again
    _more_results(scene, 5)  # the retained desired command does not reinstall it
    assert scene.versions_after(0) == {"1"}
    assert again.terminate() == 0


def test_unsigned_and_replayed_rollback_commands_are_rejected(scene: Scene) -> None:
    bundle = scene.world.bundle(counter=2)
    scene.publisher.everything(bundle)
    scene.publisher.desired(scene.world, bundle)
    wait_update(scene.status, lambda u: u.state == "installed", scene.agent)
    wait_results(scene.results, lambda got: got[-1].model.version == "2", scene.agent)

    unsigned = make_envelope(COMMAND_PAYLOAD_TYPE, rollback_command(DEVICE_ID, 1.8e9).to_json(), [])
    scene.publisher.rollback(unsigned)
    refused = wait_update(scene.status, lambda u: u.state == "rejected", scene.agent)
    assert refused.reason == "signature_invalid"
    assert "carries no signature" in (refused.detail or "")

    scene.publisher.rollback(signed_rollback(scene.world, Ed25519PrivateKey.generate()))
    wait_update(
        scene.status,
        lambda u: "has no signature by a trusted fleet key" in (u.detail or ""),
        scene.agent,
    )
    assert {r.model.version for r in _more_results(scene, 3)} == {"2"}

    rollback = signed_rollback(scene.world)
    scene.publisher.rollback(rollback)
    wait_update(scene.status, lambda u: u.label == "rolled_back:command", scene.agent)
    wait_results(scene.results, lambda got: got[-1].model.version == "1", scene.agent)

    scene.publisher.rollback(rollback)  # the same signed bytes, replayed
    replayed = wait_update(scene.status, lambda u: u.reason == "replayed", scene.agent)
    assert replayed.state == "rejected"
    assert {r.model.version for r in _more_results(scene, 3)} == {"1"}
    assert scene.slots() == {"active": "a", "previous": "b"}
    assert scene.agent.terminate() == 0
