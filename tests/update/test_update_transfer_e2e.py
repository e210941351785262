"""Transfer over a real mosquitto to a real agent process: resume after a kill, survive a broker
restart, reject a corrupt block and fetch it again. The test decides which blocks exist on the
broker when, so "mid-transfer" is a fact, not a race."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import RecipientKey
from agent.bundle.keys import encode_private
from fleet.bundles import PreparedBundle
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import (
    BASE,
    Publisher,
    UpdateWorld,
    subscribed_blocks,
    wait_results,
    wait_update,
)

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


def _world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> UpdateWorld:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    return UpdateWorld(device, broker)


def test_an_agent_killed_mid_transfer_resumes_without_requesting_blocks_it_holds(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    blocks = bundle.offer.blocks
    half = blocks // 2
    assert half >= 4
    status = Subscriber(broker, f"{BASE}/status")
    publisher = Publisher(broker)
    config = world.config()
    agent = agents(config)
    publisher.parts(bundle, range(half))
    publisher.desired(world, bundle)
    wait_update(status, lambda u: u.blocks_held == half, agent)
    status.wait_for(lambda _: _persisted(world, bundle) == half, timeout=30)  # the bitmap flush
    agent.kill()
    held = world.bitmap(bundle)
    assert held is not None
    assert held.held() == list(range(half))
    log_mark = len(broker.log())

    publisher.parts(bundle, range(half, blocks))
    restarted = agents(config)
    done = wait_update(status, lambda u: u.state == "installed", restarted)

    asked_again = subscribed_blocks(broker.log()[log_mark:], bundle.bid)
    assert sorted(asked_again) == list(range(half, blocks))
    assert not set(asked_again) & set(held.held())
    assert (done.blocks_held, done.requested, done.bad_blocks) == (blocks, blocks - half, 0)
    assert restarted.terminate() == 0
    publisher.close()
    status.close()


def _persisted(world: UpdateWorld, bundle: PreparedBundle) -> int:
    bitmap = world.bitmap(bundle)
    return -1 if bitmap is None else bitmap.count


def test_a_broker_restarted_mid_transfer_is_survived_and_the_transfer_resumes(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    broker = make_broker(persistence=True)
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    half = bundle.offer.blocks // 2
    publisher = Publisher(broker)
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(world.config())
    publisher.parts(bundle, range(half))
    publisher.desired(world, bundle)
    wait_update(status, lambda u: u.blocks_held == half, agent)

    broker.restart()  # graceful: mosquitto saves the retained bundle and command
    status.wait_subscribed(2, timeout=30)
    publisher.parts(bundle, range(half, bundle.offer.blocks))
    done = wait_update(status, lambda u: u.state == "installed", agent)
    assert done.blocks_held == bundle.offer.blocks
    watcher = Subscriber(broker, f"{BASE}/results")
    wait_results(watcher, lambda got: any(r.model.version == "2" for r in got), agent)
    assert agent.terminate() == 0
    for client in (publisher, status, watcher):
        client.close()


def test_a_corrupt_block_is_rejected_and_fetched_again(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    blocks = bundle.offer.blocks
    publisher = Publisher(broker)
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(world.config())
    publisher.parts(bundle, range(blocks), corrupt=[2])
    publisher.desired(world, bundle)
    seen = wait_update(status, lambda u: u.bad_blocks >= 1 and u.blocks_held == blocks - 1, agent)
    assert seen.state == "downloading"

    publisher.parts(bundle, [2])  # the fleet republishes the good block
    done = wait_update(status, lambda u: u.state == "installed", agent)
    assert done.bad_blocks >= 1
    assert done.blocks_held == blocks
    assert subscribed_blocks(broker.log(), bundle.bid).count(2) >= 2
    assert "block 2 rejected (digest_mismatch" in agent.log()
    watcher = Subscriber(broker, f"{BASE}/results")
    got = wait_results(watcher, lambda got: any(r.model.version == "2" for r in got), agent)
    assert got[-1].model.version == "2"
    assert agent.terminate() == 0
    for client in (publisher, status, watcher):
        client.close()


def test_a_device_without_the_disk_space_refuses_before_requesting_a_block(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    publisher = Publisher(broker)
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(world.config(disk_margin_bytes=1 << 40))
    publisher.everything(bundle)
    publisher.desired(world, bundle)
    refused = wait_update(status, lambda u: u.state == "rejected", agent)
    assert refused.label == "rejected:no_space"
    assert "bytes free in state_dir" in (refused.detail or "")
    assert subscribed_blocks(broker.log(), bundle.bid) == []
    assert agent.terminate() == 0
    publisher.close()
    status.close()


def test_a_stalled_transfer_is_abandoned_as_too_slow_and_resumed_later(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    blocks = bundle.offer.blocks
    half = blocks // 2
    publisher = Publisher(broker)
    status = Subscriber(broker, f"{BASE}/status")
    config = world.config(
        min_bytes_per_s=1000.0, throughput_window_s=1.0, retry_min_s=2.0, retry_max_s=2.0
    )
    agent = agents(config)
    publisher.parts(bundle, range(half))
    publisher.desired(world, bundle)
    slow = wait_update(status, lambda u: u.state == "rejected", agent)
    assert (slow.label, slow.blocks_held) == ("rejected:too_slow", half)
    assert world.bitmap(bundle) is not None  # the partial is kept for the retry

    publisher.parts(bundle, range(half, blocks))
    done = wait_update(status, lambda u: u.state == "installed", agent)
    assert done.blocks_held == blocks
    asked = subscribed_blocks(broker.log(), bundle.bid)
    assert sorted(set(asked)) == list(range(blocks))
    assert all(asked.count(i) == 1 for i in range(half))  # held blocks are not asked again
    assert agent.terminate() == 0
    publisher.close()
    status.close()


def test_a_bundle_encrypted_once_to_a_group_key_installs_on_a_member(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = _world(tmp_path, sample_models, broker)
    group = X25519PrivateKey.generate()
    key_file = world.device.root / "lab.key"
    key_file.write_bytes(encode_private(group))
    key_file.chmod(0o600)
    bundle = world.bundle(counter=2, recipients=[RecipientKey("group:lab", group.public_key())])
    publisher = Publisher(broker)
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(world.config(keys={"group_keys": {"group:lab": "lab.key"}}))
    publisher.everything(bundle)
    publisher.desired(world, bundle)
    done = wait_update(status, lambda u: u.state in ("installed", "rejected"), agent)
    assert done.label == "installed", done.detail
    assert agent.terminate() == 0
    publisher.close()
    status.close()


def test_a_withdrawn_desired_command_stops_the_transfer_and_the_rest_is_never_fetched(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    """What an aborted rollout does: it clears the retained desired command (an empty retained
    publish) while the device holds half the blocks."""
    world = _world(tmp_path, sample_models, broker)
    bundle = world.bundle(counter=2)
    blocks = bundle.offer.blocks
    half = blocks // 2
    status = Subscriber(broker, f"{BASE}/status")
    publisher = Publisher(broker)
    agent = agents(world.config())
    publisher.parts(bundle, range(half))
    publisher.desired(world, bundle)
    wait_update(status, lambda u: u.blocks_held == half, agent)

    publisher.publish(f"{BASE}/commands/desired", b"")
    withdrawn = wait_update(status, lambda u: u.state == "rejected", agent)
    assert (withdrawn.label, withdrawn.bundle) == ("rejected:withdrawn", bundle.bid)
    assert world.bitmap(bundle) is None  # the partial is gone
    log_mark = len(broker.log())
    publisher.parts(bundle, range(half, blocks))
    time.sleep(3.0)  # an agent still fetching would subscribe to the new blocks at once
    assert subscribed_blocks(broker.log()[log_mark:], bundle.bid) == []
    assert agent.terminate() == 0
    publisher.close()
    status.close()
