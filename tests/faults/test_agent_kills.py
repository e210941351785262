"""Fault injection: ``kill -9`` of the real agent mid-stream, again and again, while results come
faster than the group-commit bound (a video read as fast as inference allows, ``commit_ms`` 50,
so every kill lands with a group pending).

The durability contract (docs/reliability.md, "Durability of results"): a result is published
only once its group committed; a kill loses only the pending group, whose numbers nobody saw and
the next process reuses. So an independent subscriber sees every number from 1 to the last one
the outbox committed, without a gap, and a number seen twice is the same result again (re-sent
from the outbox, ``historical``, or redelivered by the broker, DUP): a reader de-duplicates by
``seq``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

RESULTS = f"edge/{DEVICE_ID}/results"


def _copies(messages: list[Received]) -> list[tuple[ResultMessage, bool]]:
    return [(r, m.dup) for m in messages for r in results_in(m.payload)]


def _distinct(messages: list[Received]) -> int:
    return len({r.seq for r, _dup in _copies(messages)})


def _wait_running(agent: AgentProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "running (source video)" not in agent.log():
        assert time.monotonic() < deadline, agent.log()[-3000:]
        time.sleep(0.1)


def test_kill_9_mid_stream_loses_no_committed_result_and_leaves_no_gap(
    tmp_path: Path,
    sample_models: ModelFactory,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
) -> None:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=50)
    source = {"type": "video", "path": str(world.video), "loop": True, "realtime": False}
    config = world.write_config(source=source, tables={"store": {"commit_ms": 50.0}})
    watcher = Subscriber(broker, RESULTS, "kill-watcher")

    def serve(more: int) -> AgentProcess:
        """Start the agent, wait until it runs, then until it sent ``more`` new results."""
        agent = agents(config)
        _wait_running(agent)  # results still in transit from a killed process do not count
        mark = _distinct(watcher.messages)
        watcher.wait_for(lambda got: _distinct(got) >= mark + more, timeout=90,
                         describe=lambda _: agent.log()[-3000:])  # fmt: skip
        return agent

    for _kill in range(3):
        serve(300).kill()  # SIGKILL mid-stream: the pending group dies with the process
    last = serve(300)
    assert last.terminate() == 0  # a clean stop flushes the outbox and records last_seq
    with sqlite3.connect(world.state_dir / "outbox.sqlite3") as db:
        (committed,) = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        assert db.execute("SELECT COUNT(*) FROM items").fetchone() == (0,)
    watcher.wait_for(lambda got: _distinct(got) >= committed, timeout=20)
    copies = _copies(watcher.messages)
    seen = {r.seq for r, _dup in copies}
    assert seen == set(range(1, committed + 1))  # none lost, no gap, no number skipped
    first: dict[int, ResultMessage] = {}
    for result, dup in copies:
        if result.seq in first:  # a duplicate: the same result, flagged as a re-send
            again = first[result.seq]
            assert (result.ts, json.dumps(result.outputs)) == (again.ts, json.dumps(again.outputs))
            assert result.historical or dup, result.seq
        first.setdefault(result.seq, result)
    print(f"{committed} results over 3 kills, {len(copies) - len(seen)} duplicates")
    watcher.close()
