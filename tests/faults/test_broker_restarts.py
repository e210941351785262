"""Fault injection: mosquitto killed (SIGKILL) and restarted again and again while the agent
publishes results. None may be lost (the sequence numbers a subscriber sees are contiguous), and
every duplicate is recognisable: the same result under the same seq, flagged ``historical`` when
the agent re-sent it from its outbox, or carrying the MQTT DUP flag when the broker re-sent it.

``make test`` runs 3 restarts over 1,000 results; ``make heavy`` (``--heavy``) runs the issue's
10 restarts over 10,000 results.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

RESULTS = f"edge/{DEVICE_ID}/results"


@dataclass
class Delivery:
    """What a subscriber saw: each copy of each result with its MQTT DUP flag. ``update`` parses
    only the messages that arrived since the last call, so polling it stays cheap (a slow
    subscriber makes the broker queue, which is not what this test is about)."""

    copies: list[tuple[ResultMessage, bool]] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)
    _contiguous: int = 0
    _messages: int = 0  # a message may carry a batch of results
    batches: int = 0

    def update(self, messages: list[Received]) -> Delivery:
        for m in messages[self._messages :]:
            carried = results_in(m.payload)
            self.batches += len(carried) > 1
            for result in carried:
                self.copies.append((result, m.dup))
                self._seen.add(result.seq)
        self._messages = max(self._messages, len(messages))
        while self._contiguous + 1 in self._seen:
            self._contiguous += 1
        return self

    def contiguous(self) -> int:
        """The highest n such that seqs 1..n all arrived."""
        return self._contiguous

    def duplicates(self) -> Counter[int]:
        counts = Counter(r.seq for r, _ in self.copies)
        return Counter({seq: n - 1 for seq, n in counts.items() if n > 1})

    def describe(self, broker: MosquittoBroker, agent: AgentProcess) -> str:
        top = max(self._seen, default=0)
        missing = sorted(set(range(1, top + 1)) - self._seen)[:20]
        drops = [line for line in broker.log().splitlines() if "dropp" in line.lower()][:5]
        return (
            f"contiguous {self._contiguous}, top {top}, first missing {missing}, "
            f"broker drops {drops}\n{agent.log()[-3000:]}"
        )


def run_broker_restarts(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
    *,
    results: int,
    restarts: int,
    fps: float,
) -> Delivery:
    # mosquitto acknowledges a result once it holds it, then forwards it to the subscriber at
    # most 20 in flight (more queue in its memory). A SIGKILL loses what it held but had not yet
    # written to the subscriber's socket: the broker's loss, not the agent's. Unlimited in-flight
    # and queue sizes make the broker write at once, so what is measured is the agent.
    broker = make_broker(
        persistence=True, extra_config=["max_inflight_messages 0", "max_queued_messages 0"]
    )
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=50, fps=fps)
    watcher = Subscriber(broker, RESULTS, "watcher", persistent=True)
    time.sleep(1.5)  # mosquitto's autosave (1 s) records the watcher's session
    source = {"type": "video", "path": str(world.video), "loop": True, "realtime": True}
    agent = agents(world.write_config(source=source))
    delivery = Delivery()

    def reaches(n: int) -> Callable[[list[Received]], bool]:
        return lambda got: delivery.update(got).contiguous() >= n

    def describe(_: list[Received]) -> str:
        return delivery.describe(broker, agent)

    for i in range(1, restarts + 1):
        watcher.wait_for(reaches(i * results // (restarts + 1)), timeout=120, describe=describe)
        broker.kill()
        time.sleep(0.5)  # results made now wait in the agent's outbox
        broker.start()
    watcher.wait_for(reaches(results), timeout=results / fps + 120, describe=describe)
    delivery.update(watcher.messages)
    assert agent.terminate() == 0
    watcher.close()
    return delivery


def check_delivery(delivery: Delivery, results: int) -> None:
    assert delivery.contiguous() >= results  # none lost
    by_seq: dict[int, list[tuple[ResultMessage, bool]]] = {}
    for result, dup in delivery.copies:
        by_seq.setdefault(result.seq, []).append((result, dup))
    for seq, copies in by_seq.items():
        # The same result every time, so a reader can de-duplicate by seq ...
        assert len({(r.ts, json.dumps(r.outputs, sort_keys=True)) for r, _ in copies}) == 1, seq
        # ... and every copy after the first says it is a re-send.
        for result, dup in copies[1:]:
            assert result.historical or dup, (seq, copies)
    assert any(result.historical for result, _ in delivery.copies)  # outages were bridged
    assert delivery.batches > 0  # the backlog after an outage went out in batches
    print(
        f"results {results}: {len(delivery.copies)} copies received, "
        f"{sum(delivery.duplicates().values())} duplicates, "
        f"{sum(r.historical for r, _ in delivery.copies)} flagged historical, "
        f"{delivery.batches} batch messages"
    )


def test_three_broker_kills_during_1000_results_lose_none_and_flag_duplicates(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    delivery = run_broker_restarts(
        tmp_path, sample_models, make_broker, agents, results=1000, restarts=3, fps=100.0
    )
    check_delivery(delivery, 1000)


@pytest.mark.heavy
def test_ten_broker_kills_during_10000_results_lose_none_and_flag_duplicates(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    delivery = run_broker_restarts(
        tmp_path, sample_models, make_broker, agents, results=10_000, restarts=10, fps=200.0
    )
    check_delivery(delivery, 10_000)
