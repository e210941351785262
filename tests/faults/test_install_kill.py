"""Fault injection: ``kill -9`` of the agent at random points of a model install. After each
restart the agent runs the old or the new model (never a partial one), the model it runs is the
one its active A/B slot holds, its recorded release counter matches it, and it finishes the
install by itself from the retained desired command.

Half the kills land at a uniformly random time after the desired command; the other half at a
random moment after the agent reports ``canary`` — just before the slot switch and the counter
commit, the narrowest window. ``make test`` runs 4 trials; ``make heavy`` runs the issue's 100.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.bundle import Limits
from agent.bundle.container import parse_header
from agent.bundle.manifest import parse_manifest
from agent.model.slots import SlotStore
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import BASE, Publisher, UpdateWorld, updates, wait_results

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


@dataclass
class Device:
    world: UpdateWorld
    config: Path
    logs: Path
    publisher: Publisher
    status: Subscriber
    results: Subscriber
    started: list[AgentProcess] = field(default_factory=list)

    @property
    def models(self) -> Path:
        return self.world.device.state_dir / "models"

    def active_counter(self) -> int:
        """The release counter of the bundle in the active slot (what a restart must run)."""
        slots = json.loads((self.models / "slots.json").read_text())
        data = (self.models / f"slot-{slots['active']}.edgepkg").read_bytes()
        return parse_manifest(parse_header(data, Limits()).manifest, Limits()).counter

    def recorded_counter(self) -> int:
        state = json.loads((self.world.device.state_dir / "bundle-state.json").read_text())
        return int(state["counters"]["digits"])

    def results_since(self, mark: int) -> list[ResultMessage]:
        return [r for m in self.results.messages[mark:] for r in results_in(m.payload)]

    def start(self, n: int) -> AgentProcess:
        self.started.append(AgentProcess(self.config, self.logs / f"agent-{n}.log"))
        return self.started[-1]


def _kill_point(device: Device, agent: AgentProcess, rng: random.Random, trial: int) -> str:
    """Sleep to this trial's kill point; returns its name."""
    if trial % 2 == 0:
        time.sleep(rng.uniform(0.0, 6.0))
        return "random time"
    seen = len(device.status.messages)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {u.state for u in updates(device.status.messages[seen:])}
        if states & {"canary", "installed"}:
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"no canary state within 60 s\n{agent.log()[-3000:]}")
    time.sleep(rng.uniform(0.0, 1.0))
    return "after canary"


def _made_after(results: list[ResultMessage], seq: int) -> list[ResultMessage]:
    """Results the restarted process made: newer than ``seq`` and not replayed from the outbox
    (the outbox re-sends the killed process's unacknowledged results, flagged historical)."""
    return [r for r in results if r.seq > seq and not r.historical]


def run_install_kills(tmp_path: Path, device: Device, trials: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    agent = device.start(0)
    wait_results(device.results, lambda got: len(got) >= 5, agent)
    running = 1
    outcomes: Counter[str] = Counter()
    for trial in range(trials):
        new = running + 1
        bundle = device.world.bundle(counter=new)
        device.publisher.everything(bundle)
        device.publisher.desired(device.world, bundle)
        point = _kill_point(device, agent, rng, trial)
        agent.kill()  # SIGKILL: no handler, no cleanup
        on_disk = device.active_counter()
        assert on_disk in (running, new), (trial, on_disk)

        time.sleep(1.0)  # results the killed process sent are through the broker by now
        mark = len(device.results.messages)
        before = max(r.seq for r in device.results_since(0))
        agent = device.start(trial + 1)
        first = _made_after(
            wait_results(
                device.results,
                lambda got, b=before: len(_made_after(got, b)) >= 3,
                agent,
                timeout=90,
            ),
            before,
        )
        first_version = int(first[0].model.version)
        assert first_version == on_disk  # it runs what its active slot holds, old or new
        assert device.recorded_counter() >= first_version
        outcomes[f"{point}: restarted on {'new' if on_disk == new else 'old'}"] += 1

        wait_results(  # ... and finishes the install by itself
            device.results,
            lambda got, m=mark, v=str(new): any(r.model.version == v for r in got[m:]),
            agent,
            timeout=120,
        )
        assert device.active_counter() == new
        assert device.recorded_counter() == new  # the counter matches the model it runs
        running = new
    assert agent.terminate() == 0
    print(f"{trials} kills: {dict(outcomes)}")
    return outcomes


@pytest.fixture
def device(
    tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker
) -> Iterator[Device]:
    world = UpdateWorld(AgentWorld(tmp_path / "device", sample_models("int8"), broker.url), broker)
    logs = tmp_path / "logs"
    logs.mkdir()
    device = Device(
        world,
        world.config(),
        logs,
        Publisher(broker),
        Subscriber(broker, f"{BASE}/status"),
        Subscriber(broker, f"{BASE}/results"),
    )
    yield device
    for agent in device.started:
        agent.close()
    for client in (device.publisher, device.status, device.results):
        client.close()


def test_kill_9_at_four_points_of_an_install_never_leaves_a_partial_model(
    tmp_path: Path, device: Device
) -> None:
    outcomes = run_install_kills(tmp_path, device, trials=4, seed=7)
    assert sum(outcomes.values()) == 4


@pytest.mark.heavy
def test_kill_9_at_100_points_of_an_install_never_leaves_a_partial_model(
    tmp_path: Path, device: Device
) -> None:
    outcomes = run_install_kills(tmp_path, device, trials=100, seed=2026)
    assert sum(outcomes.values()) == 100


def test_a_crash_between_the_slot_switch_and_the_counter_commit_records_the_counter_at_start(
    tmp_path: Path, device: Device
) -> None:
    """The narrowest window, staged exactly: slots.json already names the new slot, the
    release counter still names the old model. The restarted agent runs the new model and
    records its counter, so the counter matches the model it runs."""
    agent = device.start(0)
    wait_results(device.results, lambda got: len(got) >= 3, agent)
    assert agent.terminate() == 0
    slots = SlotStore(device.world.device.state_dir)
    state = slots.load()
    bundle = device.world.bundle(counter=2)
    slots.write(state.inactive, bundle.header + bytes(bundle.payload))
    slots.commit(state.activated(state.inactive))  # ... and SIGKILL before record_installed
    assert device.recorded_counter() == 1

    before = max(r.seq for r in device.results_since(0))
    again = device.start(1)
    got = wait_results(device.results, lambda got: len(_made_after(got, before)) >= 3, again)
    assert {r.model.version for r in _made_after(got, before)} == {"2"}
    assert device.recorded_counter() == 2
    assert again.terminate() == 0
