"""The Home Assistant update entity through a real update: ordered, half downloaded, installed.

A real agent process with Home Assistant enabled; the fleet side publishes half of a release's
blocks and a signed desired command, then the rest. The update entity's template, taken from
the retained discovery config, is rendered as Home Assistant renders it on each status the agent
published.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hass.test_hass import render
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import BASE, TEST_UPDATE, Publisher, UpdateWorld, wait_update

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


def test_update_entity_shows_the_ordered_release_its_progress_and_then_the_install(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    device = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20)
    world = UpdateWorld(device, broker)
    config = device.write_config(
        tables={
            "keys": {"fleet_keys": ["fleet.pub"]},
            "update": TEST_UPDATE,
            "homeassistant": {"enabled": True},
        },
        source={"type": "video", "path": str(device.video), "loop": True},
    )
    discovery = Subscriber(broker, f"homeassistant/update/{DEVICE_ID}/model/config")
    status = Subscriber(broker, f"{BASE}/status")
    publisher = Publisher(broker)
    agent = agents(config)
    discovery.wait_for(lambda got: len(got) >= 1, timeout=60, describe=lambda _: agent.log())
    template = json.loads(discovery.messages[-1].payload)["value_template"]

    bundle = world.bundle(counter=2)
    blocks = bundle.offer.blocks
    half = blocks // 2
    assert half >= 2
    publisher.parts(bundle, range(half))
    publisher.desired(world, bundle)
    wait_update(status, lambda u: u.state == "downloading" and u.blocks_held == half, agent)
    busy = [json.loads(render(template, m.payload)) for m in status.messages]
    halfway = next(
        s for s in reversed(busy) if s["update_percentage"] == round(100 * half / blocks, 1)
    )
    assert halfway["installed_version"] == "1"
    assert halfway["latest_version"] == "2"
    assert halfway["in_progress"] is True
    assert halfway["release_summary"] == "digits release 2: downloading"

    publisher.parts(bundle, range(half, blocks))
    wait_update(status, lambda u: u.state == "installed", agent)
    status.wait_for(
        lambda got: json.loads(got[-1].payload)["model"]["version"] == "2", timeout=30
    )  # fmt: skip
    done = json.loads(render(template, status.messages[-1].payload))
    assert (done["installed_version"], done["latest_version"]) == ("2", "2")
    assert (done["in_progress"], done["update_percentage"]) == (False, None)
    assert done["release_summary"] == "digits release 2: installed"
    assert agent.terminate() == 0
    for client in (discovery, status, publisher):
        client.close()
