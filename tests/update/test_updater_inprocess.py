"""The update state machine in-process, on a fake broker that keeps retained messages: header
rejections, blocks out of order and twice, resume from the persisted bitmap, canary failure,
rollback in the watch window, replayed commands. Real bundles, real models, the real canary check
(in-process; one test through the child process). The same paths over mosquitto with a real agent
process are in ``test_update_*_e2e.py``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.update.canary_worker import CanaryRunner, run_canary, run_canary_in_process
from agent.update.protocol import BundleTopics
from tests.support.agent_env import AgentWorld
from tests.support.fakebroker import FakeBroker
from tests.support.models import ModelFactory
from tests.update.conftest import NanModel
from tests.update.harness import PREFIX, UpdateWorld, wrong_canary
from tests.update.inprocess import Device, Fleet

# The sample model is converted once per session by the real converter.
pytestmark = pytest.mark.tensorflow

BIG = 64 << 10  # a few blocks, where the transfer is not what a test is about


@dataclass
class Scene:
    world: UpdateWorld
    broker: FakeBroker
    fleet: Fleet
    config: Path
    devices: list[Device] = field(default_factory=list)

    def start(self, canary: CanaryRunner = run_canary_in_process) -> Device:
        device = Device(self.config, self.broker, canary)
        self.devices.append(device)
        return device

    def stop(self, device: Device) -> None:
        """The device's process ends (its files stay); its subscriptions end with it."""
        device.stop()
        self.devices.remove(device)
        self.broker.new_session()

    def restart(self, device: Device) -> Device:
        """Stop ``device`` and start a new one on its state."""
        self.stop(device)
        return self.start()


@pytest.fixture
def scene(tmp_path: Path, sample_models: ModelFactory) -> Iterator[Scene]:
    files = AgentWorld(tmp_path / "device", sample_models("int8"), "mqtt://127.0.0.1:1", frames=4)
    world = UpdateWorld(files, None)
    broker = FakeBroker()
    made = Scene(world, broker, Fleet(world, broker), world.config())
    yield made
    for device in made.devices:
        device.stop()


def test_a_header_signed_by_an_untrusted_key_is_rejected_before_any_block_is_requested(
    scene: Scene,
) -> None:
    device = scene.start()
    bundle = scene.world.bundle(2, block_size=BIG, signer=Ed25519PrivateKey.generate())
    scene.fleet.everything(bundle)
    scene.fleet.desired(bundle)
    status = device.wait(lambda u: u.state == "rejected")
    assert (status.label, status.bundle) == ("rejected:signature_invalid", bundle.bid)
    assert scene.broker.requested_blocks(bundle.bid) == []
    assert str(BundleTopics(PREFIX).header(bundle.bid)) not in scene.broker.subscribed
    assert not (scene.world.device.state_dir / "updates" / f"{bundle.bid}.partial").exists()
    assert (device.version, device.slots()) == (1, {"active": "a", "previous": None})


def test_a_header_that_is_not_the_one_the_signed_command_names_is_rejected(
    scene: Scene,
) -> None:
    device = scene.start()
    bundle, other = scene.world.bundle(2, block_size=BIG), scene.world.bundle(3, block_size=BIG)
    scene.broker.put(BundleTopics(PREFIX).header(bundle.bid), other.header)
    scene.fleet.parts(bundle, range(bundle.offer.blocks), header=False)
    scene.fleet.desired(bundle)
    status = device.wait(lambda u: u.state == "rejected")
    assert (status.label, status.bundle) == ("rejected:header_mismatch", bundle.bid)
    assert scene.broker.requested_blocks(bundle.bid) == []
    assert device.version == 1


def test_blocks_arriving_out_of_order_and_twice_are_each_written_once_and_install(
    scene: Scene,
) -> None:
    device = scene.start()
    bundle = scene.world.bundle(2, block_size=8192)
    blocks = bundle.offer.blocks
    assert blocks >= 12  # three windows and more
    scene.fleet.parts(bundle, [])  # the header only: the first window waits for its blocks
    scene.fleet.desired(bundle)
    device.wait(lambda _: scene.broker.requested_blocks(bundle.bid) != [])
    for index in reversed(range(blocks)):  # live to the window, retained for the rest
        scene.fleet.parts(bundle, [index, index], header=False)
    status = device.wait(lambda u: u.state == "installed")
    assert (status.blocks_held, status.requested, status.bad_blocks) == (blocks, blocks, 0)
    assert sorted(scene.broker.requested_blocks(bundle.bid)) == list(range(blocks))
    device.wait(lambda _: device.swaps == 1)
    assert (device.version, device.slots()) == (2, {"active": "b", "previous": "a"})


def test_a_restarted_updater_resumes_from_its_persisted_bitmap(scene: Scene) -> None:
    device = scene.start()
    bundle = scene.world.bundle(2, block_size=2048)
    blocks = bundle.offer.blocks
    half = blocks // 2
    scene.fleet.parts(bundle, range(half))
    scene.fleet.desired(bundle)
    waiting = set(range(half, half + 4))  # the next window ([update] window = 4): all before held
    device.wait(lambda _: waiting <= set(scene.broker.requested_blocks(bundle.bid)))
    scene.stop(device)
    persisted = scene.world.bitmap(bundle)
    assert persisted is not None
    assert 0 < persisted.count <= half
    packets_before = len(scene.broker.subscribes)
    device = scene.start()
    scene.fleet.parts(bundle, range(half, blocks), header=False)
    status = device.wait(lambda u: u.state == "installed")
    assert sorted(scene.broker.requested_blocks(bundle.bid, packets_before)) == persisted.missing()
    assert (status.blocks_held, status.requested) == (blocks, len(persisted.missing()))
    device.wait(lambda _: device.swaps == 1)
    assert device.version == 2


def test_a_canary_that_fails_leaves_the_running_model_and_the_slots_as_they_were(
    scene: Scene,
) -> None:
    device = scene.start()
    canary = wrong_canary(scene.world.device.model.canary.read_bytes())
    bundle = scene.world.bundle(2, block_size=BIG, canary=canary)
    scene.fleet.everything(bundle)
    scene.fleet.desired(bundle)
    status = device.wait(lambda u: u.state == "rejected")
    assert status.label == "rejected:canary_mismatch"
    assert status.detail is not None
    assert status.detail.startswith("output differs from the expected canary output by ")
    device.settle()
    assert (device.swaps, device.version) == (0, 1)
    assert device.slots() == {"active": "a", "previous": None}


def test_a_bundle_installs_through_the_canary_in_its_own_process(scene: Scene) -> None:
    device = scene.start(canary=run_canary)
    bundle = scene.world.bundle(2, block_size=BIG)
    scene.fleet.everything(bundle)
    scene.fleet.desired(bundle)
    assert device.wait(lambda u: u.state in ("installed", "rejected")).label == "installed"
    device.wait(lambda _: device.swaps == 1)
    assert device.version == 2


def test_nan_after_the_swap_rolls_back_within_the_watch_window(
    scene: Scene, nan_model: NanModel
) -> None:
    device = scene.start()
    bundle = scene.world.bundle(
        2,
        block_size=BIG,
        model=nan_model.tflite,
        metadata=nan_model.metadata,
        canary=nan_model.canary,
    )
    scene.fleet.everything(bundle)
    scene.fleet.desired(bundle)
    device.wait(lambda u: u.state == "installed")
    device.wait(lambda _: device.swaps == 1)
    assert device.version == 2
    assert device.infer(2) == [True, False]  # the first NaN swaps back; the old model serves on
    assert device.version == 1
    status = device.wait(lambda u: u.state == "rolled_back")
    assert (status.label, status.bundle) == ("rolled_back:nan_output", bundle.bid)
    assert status.detail == "watch window after the swap saw nan output"
    assert device.slots() == {"active": "a", "previous": "b"}


def test_a_replayed_rollback_command_is_refused_also_after_a_restart(scene: Scene) -> None:
    device = scene.start()
    bundle = scene.world.bundle(2, block_size=BIG)
    scene.fleet.everything(bundle)
    scene.fleet.desired(bundle)
    device.wait(lambda u: u.state == "installed")
    device.wait(lambda _: device.swaps == 1)
    envelope = scene.fleet.rollback()
    assert device.wait(lambda u: u.state == "rolled_back").label == "rolled_back:command"
    device.wait(lambda _: device.swaps == 2)
    assert (device.version, device.slots()) == (1, {"active": "a", "previous": "b"})

    scene.fleet.rollback(envelope)
    assert device.wait(lambda u: u.state == "rejected").label == "rejected:replayed"
    device.settle()
    assert (device.swaps, device.version) == (2, 1)

    device = scene.restart(device)
    # the retained desired command comes again on subscribe: its bundle was rolled back, not anew
    assert device.wait(lambda u: u.bundle == bundle.bid).label == "rolled_back:command"
    scene.fleet.rollback(envelope)
    assert device.wait(lambda u: u.state == "rejected").label == "rejected:replayed"
    device.settle()
    assert (device.swaps, device.version) == (0, 1)
    assert device.slots() == {"active": "a", "previous": "b"}


def test_a_rollback_command_with_no_previous_model_is_refused(scene: Scene) -> None:
    device = scene.start()
    scene.fleet.rollback()
    status = device.wait(lambda u: u.state == "rejected")
    assert (status.label, status.detail) == (
        "rejected:no_previous_slot",
        "there is no previous model to roll back to",
    )
    device.settle()
    assert (device.swaps, device.version) == (0, 1)
    assert device.slots() == {"active": "a", "previous": None}
