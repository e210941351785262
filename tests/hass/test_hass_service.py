"""Home Assistant discovery from the running agent, seen by a real MQTT client on mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from tests.hass.test_hass import render
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

CONFIGS = f"homeassistant/+/{DEVICE_ID}/+/config"
ENTITIES = 5


@pytest.fixture
def agent(
    tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker
) -> Iterator[AgentProcess]:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)
    config = world.write_config(
        source={"type": "video", "path": str(world.video), "loop": True},
        tables={"homeassistant": {"enabled": True}},
    )
    process = AgentProcess(config, tmp_path / "agent.log")
    yield process
    process.close()


def _configs(got: list[Received]) -> list[Received]:
    return [m for m in got if m.topic.endswith("/config")]


def test_discovery_is_retained_and_re_announced_when_home_assistant_comes_online(
    agent: AgentProcess, broker: MosquittoBroker
) -> None:
    live = Subscriber(broker, CONFIGS)
    live.wait_for(
        lambda got: len(_configs(got)) >= ENTITIES, timeout=60, describe=lambda _: agent.log()
    )
    retained = Subscriber(broker, CONFIGS)
    retained.wait_for(lambda got: len(got) >= ENTITIES, timeout=10)
    assert all(m.retain for m in retained.messages)
    by_topic = {m.topic: json.loads(m.payload) for m in retained.messages}
    assert set(by_topic) == {
        f"homeassistant/sensor/{DEVICE_ID}/result/config",
        f"homeassistant/sensor/{DEVICE_ID}/fps/config",
        f"homeassistant/sensor/{DEVICE_ID}/latency/config",
        f"homeassistant/binary_sensor/{DEVICE_ID}/accelerator/config",
        f"homeassistant/update/{DEVICE_ID}/model/config",
    }
    assert {c["state_topic"] for c in by_topic.values()} == {
        f"edge/{DEVICE_ID}/hass/result",
        f"edge/{DEVICE_ID}/status",
    }

    before = len(_configs(live.messages))
    home_assistant = Subscriber(broker, f"edge/{DEVICE_ID}/status")
    home_assistant.publish("homeassistant/status", b"online")
    live.wait_for(lambda got: len(_configs(got)) >= before + ENTITIES, timeout=20)
    assert agent.log().count(f"announced {ENTITIES} entities to Home Assistant") >= 2
    assert agent.terminate() == 0
    for sub in (live, retained, home_assistant):
        sub.close()


def test_the_result_entity_changes_at_most_once_per_state_interval(
    agent: AgentProcess, broker: MosquittoBroker
) -> None:
    """The video gives ~20 results a second; Home Assistant's copy moves at most once a second
    (the default ``homeassistant.state_interval_s``). Counted, not timed: N copies need at
    least N-1 intervals between the first and the last, measured here as an upper bound."""
    results = Subscriber(broker, f"edge/{DEVICE_ID}/results")
    copies = Subscriber(broker, f"edge/{DEVICE_ID}/hass/result")
    results.wait_for(lambda got: len(got) >= 5, timeout=60, describe=lambda _: agent.log())
    started = time.monotonic()
    copies.wait_for(lambda got: len(got) >= 4, timeout=30)
    elapsed = time.monotonic() - started
    fresh = [m for m in copies.messages if not m.retain]
    assert len(fresh) - 1 <= elapsed / 1.0 + 1  # +1: the first may be a retained catch-up
    published = sum(len(results_in(m.payload)) for m in results.messages)  # batches count all
    assert published > 2 * len(copies.messages)
    last = json.loads(copies.messages[-1].payload)
    assert {"seq", "model", "outputs"} <= set(last)
    for sub in (results, copies):
        sub.close()


def test_the_update_entity_renders_the_running_agents_status(
    agent: AgentProcess, broker: MosquittoBroker
) -> None:
    """The discovery template of the update entity, rendered as Home Assistant would, on the
    status the real agent publishes: release 1 installed, nothing ordered."""
    configs = Subscriber(broker, f"homeassistant/update/{DEVICE_ID}/model/config")
    status = Subscriber(broker, f"edge/{DEVICE_ID}/status")
    configs.wait_for(lambda got: len(got) >= 1, timeout=60, describe=lambda _: agent.log())
    status.wait_for(
        lambda got: any(json.loads(m.payload)["model"] for m in got), timeout=60,
        describe=lambda _: agent.log(),
    )  # fmt: skip
    template = json.loads(configs.messages[-1].payload)["value_template"]
    latest = next(m for m in reversed(status.messages) if json.loads(m.payload)["model"])
    state = json.loads(render(template, latest.payload))
    assert state == {
        "installed_version": "1",
        "latest_version": "1",
        "title": "digits",
        "in_progress": False,
        "update_percentage": None,
        "release_summary": "no update ordered",
    }
    for sub in (configs, status):
        sub.close()
