"""Fault injection at the edges of the device: the video source vanishes and comes back, and
the Edge TPU library is absent. The agent keeps running (same process), counts what happened
in its status, reopens the source with backoff, and serves on the CPU in ``degraded`` state."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from agent.mqtt.messages import StatusMessage
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

BASE = f"edge/{DEVICE_ID}"


@pytest.fixture
def world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> AgentWorld:
    return AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=20, fps=40)


def _top_seq(messages: list[Received]) -> int:
    return max((r.seq for m in messages for r in results_in(m.payload)), default=0)


def _statuses(messages: list[Received]) -> list[StatusMessage]:
    return [StatusMessage.from_json(m.payload) for m in messages]


def test_a_video_that_disappears_and_returns_is_reopened_with_backoff_and_counted(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    results = Subscriber(broker, f"{BASE}/results")
    status = Subscriber(broker, f"{BASE}/status")
    source = {"type": "video", "path": str(world.video), "loop": True, "realtime": True}
    agent = agents(world.write_config(source=source, tables={"status": {"interval_s": 0.5}}))
    results.wait_for(lambda got: _top_seq(got) >= 30, timeout=60, describe=lambda _: agent.log())

    hidden = world.video.with_name("away.avi")
    world.video.rename(hidden)  # the camera/file is gone
    status.wait_for(
        lambda got: any(s.errors.get("error.open_failed", 0) >= 3 for s in _statuses(got)),
        timeout=60,
        describe=lambda _: agent.log(),
    )
    assert agent.process.poll() is None
    stalled = _top_seq(results.messages)

    hidden.rename(world.video)  # ... and back
    results.wait_for(
        lambda got: _top_seq(got) >= stalled + 30, timeout=60, describe=lambda _: agent.log()
    )
    failures = max(s.errors.get("error.open_failed", 0) for s in _statuses(status.messages))
    assert failures >= 3
    assert agent.process.poll() is None
    assert agent.terminate() == 0
    for subscriber in (results, status):
        subscriber.close()


def test_a_missing_edge_tpu_library_serves_on_cpu_degraded_without_a_crash_loop(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    status = Subscriber(broker, f"{BASE}/status")
    results = Subscriber(broker, f"{BASE}/results")
    source = {"type": "video", "path": str(world.video), "loop": True, "realtime": True}
    agent = agents(
        world.write_config(
            source=source,
            tables={"model": {"accelerator": "edgetpu"}, "status": {"interval_s": 0.5}},
        )
    )
    results.wait_for(lambda got: _top_seq(got) >= 20, timeout=60, describe=lambda _: agent.log())
    pid = agent.process.pid
    time.sleep(3)  # long enough for a crash loop to show
    results.wait_for(lambda got: _top_seq(got) >= 60, timeout=60, describe=lambda _: agent.log())
    assert agent.process.poll() is None
    assert agent.process.pid == pid
    last = _statuses(status.messages)[-1]
    assert last.state == "degraded"
    assert last.degraded
    assert last.accelerator == "cpu"
    assert last.last_error is not None
    assert last.last_error.code == "accelerator_unavailable"
    assert agent.terminate() == 0
    for subscriber in (results, status):
        subscriber.close()
