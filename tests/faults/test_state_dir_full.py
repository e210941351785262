"""Fault injection: the state directory runs out of space (a real, small tmpfs filled to the
last byte) while the broker is away and results pile up in the outbox. The agent must keep
running, say clearly what failed (log and status), corrupt neither the outbox nor the installed
model, and recover by itself when space returns."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from agent.mqtt.messages import StatusMessage
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory
from tests.support.smallfs import fill, small_filesystem

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

BASE = f"edge/{DEVICE_ID}"


def _seqs(messages: list[Received]) -> set[int]:
    return {r.seq for m in messages for r in results_in(m.payload)}


def _snapshot(models: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(models.iterdir()) if p.is_file()}


def _full_disk_status(messages: list[Received]) -> StatusMessage | None:
    for m in reversed(messages):
        status = StatusMessage.from_json(m.payload)
        error = status.last_error
        if status.outbox.write_errors > 0 and error is not None and error.code == "outbox_write":
            return status
    return None


def test_a_full_state_directory_is_reported_and_recovers_without_corruption(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    broker = make_broker()
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=50, fps=50)
    with small_filesystem(world.state_dir, 8 << 20):
        results = Subscriber(broker, f"{BASE}/results")
        config = world.write_config(
            source={"type": "video", "path": str(world.video), "loop": True, "realtime": True},
            tables={"status": {"interval_s": 0.5}},
        )
        agent = agents(config)
        results.wait_for(
            lambda got: len(_seqs(got)) >= 50, timeout=60, describe=lambda _: agent.log()
        )
        installed = _snapshot(world.state_dir / "models")

        broker.stop()  # results now pile up in the outbox ...
        filler = fill(world.state_dir)  # ... on a filesystem with no byte left
        deadline = time.monotonic() + 90
        while "database or disk is full" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "database or disk is full" in agent.log()
        assert agent.process.poll() is None  # still running

        broker.start()
        status = Subscriber(broker, f"{BASE}/status")
        status.wait_for(lambda got: _full_disk_status(got) is not None, timeout=30)
        reported = _full_disk_status(status.messages)
        assert reported is not None
        assert reported.last_error is not None
        assert "database or disk is full" in reported.last_error.message
        assert "outbox" in reported.last_error.message

        filler.unlink()  # space returns: the agent recovers by itself
        before = max(_seqs(results.messages))
        results.wait_for(
            lambda got: max(_seqs(got)) >= before + 100, timeout=60, describe=lambda _: agent.log()
        )
        assert agent.terminate() == 0

        with sqlite3.connect(world.state_dir / "outbox.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert _snapshot(world.state_dir / "models") == installed
        again = agents(config)  # the installed model still opens and serves
        results.wait_for(
            lambda got: max(_seqs(got)) >= before + 150, timeout=60, describe=lambda _: again.log()
        )
        assert "installed initial bundle" not in again.log()
        assert again.terminate() == 0
        for subscriber in (results, status):
            subscriber.close()
        print(
            json.dumps(
                {
                    "reported": reported.last_error.message,
                    "write_errors": reported.outbox.write_errors,
                }
            )
        )
