"""edge-fleet driving real agents: real mosquitto, ``edge-agent run`` processes, real LiteRT.

The acceptance points of the update issue that the fleet side drives: a push to two agents
that both install and keep their result sequence whole across the swap; a rollout whose canary
device fails aborts before the other devices hear of the bundle; ``edge-fleet rollback`` takes a
device back to its previous model.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage, StatusMessage
from fleet.bundles import prepare_bundle
from fleet.cli import main
from tests.support.agent_env import AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory
from tests.update.harness import TEST_UPDATE

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

DEVICES = ("cam-a", "cam-b")
WAIT_S = 120.0


@pytest.fixture
def fleet_key(tmp_path: Path) -> Path:
    assert main(["keygen", "--out", str(tmp_path / "fleet")]) == 0
    return tmp_path / "fleet" / "fleet.key"


@pytest.fixture
def fleet(
    tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker, fleet_key: Path
) -> Iterator[Callable[[str], tuple[AgentWorld, AgentProcess]]]:
    """``fleet(device_id)`` starts an agent in group ``lab`` that trusts the fleet key."""
    started: list[AgentProcess] = []
    model = sample_models("int8")
    release_key = Ed25519PrivateKey.generate()

    def start(device_id: str) -> tuple[AgentWorld, AgentProcess]:
        world = AgentWorld(
            tmp_path / device_id, model, broker.url, release_key=release_key, device_id=device_id
        )
        (world.root / "fleet.pub").write_bytes(fleet_key.with_suffix(".pub").read_bytes())
        config = world.write_config(
            groups=["lab"],
            tables={"keys": {"fleet_keys": ["fleet.pub"]}, "update": TEST_UPDATE},
            source={"type": "video", "path": str(world.video), "loop": True},
        )
        process = AgentProcess(config, tmp_path / f"{device_id}.log")
        started.append(process)
        return world, process

    yield start
    for process in started:
        process.close()


def _results(got: list[Received], device: str) -> list[ResultMessage]:
    return [r for m in got if m.topic == f"edge/{device}/results" for r in results_in(m.payload)]


def _status(got: list[Received], device: str) -> StatusMessage | None:
    statuses = [m for m in got if m.topic == f"edge/{device}/status"]
    return StatusMessage.from_json(statuses[-1].payload) if statuses else None


def _running(version: str, *devices: str) -> Callable[[list[Received]], bool]:
    def check(got: list[Received]) -> bool:
        return all(any(r.model.version == version for r in _results(got, d)[-5:]) for d in devices)

    return check


def _fleet_args(broker: MosquittoBroker, fleet_key: Path) -> list[str]:
    return ["--url", broker.url, "--fleet-key", str(fleet_key)]


def test_push_to_two_agents_installs_on_both_with_no_gap_in_result_sequence(
    fleet: Callable[[str], tuple[AgentWorld, AgentProcess]],
    broker: MosquittoBroker,
    fleet_key: Path,
) -> None:
    watcher = Subscriber(broker, "edge/#")
    worlds = [fleet(d)[0] for d in DEVICES]
    watcher.wait_for(_running("1", *DEVICES), timeout=WAIT_S)
    bundle = worlds[0].write_bundle(counter=2, recipients=worlds)

    code = main(
        [
            *["push", str(bundle), "--group", "lab", "--wait", "--timeout", str(WAIT_S)],
            *_fleet_args(broker, fleet_key),
        ]
    )

    assert code == 0
    watcher.wait_for(_running("2", *DEVICES), timeout=WAIT_S)
    for device in DEVICES:
        live = sorted(r.seq for r in _results(watcher.messages, device) if not r.historical)
        assert live == list(range(live[0], live[-1] + 1)), f"{device} lost a result in the swap"
        ordered = sorted(_results(watcher.messages, device), key=lambda r: r.seq)
        versions = [r.model.version for r in ordered]
        switch = versions.index("2")
        assert set(versions[:switch]) == {"1"}
        assert set(versions[switch:]) == {"2"}
    watcher.close()


def test_rollout_whose_canary_device_fails_aborts_before_the_batch_hears_of_it(
    tmp_path: Path,
    fleet: Callable[[str], tuple[AgentWorld, AgentProcess]],
    broker: MosquittoBroker,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    watcher = Subscriber(broker, "edge/#")
    worlds = [fleet(d)[0] for d in DEVICES]
    watcher.wait_for(_running("1", *DEVICES), timeout=WAIT_S)
    bundle = worlds[0].write_bundle(counter=2, recipients=worlds, canary=_wrong_canary(worlds[0]))

    code = main(
        [
            *["rollout", str(bundle), "--group", "lab", "--canary", "1", "--batch", "1"],
            *["--max-failures", "5", "--stage-timeout", str(WAIT_S)],
            *["--state-dir", str(tmp_path / "rollouts")],
            *_fleet_args(broker, fleet_key),
        ]
    )

    captured = capsys.readouterr()
    assert code == 1
    assert "ABORT: canary failed: cam-a (rejected:canary_" in captured.err
    assert captured.out.startswith("rollout   digits-2-lab: aborted (canary failed: cam-a")
    assert "devices   failed 1, not_sent 1\n" in captured.out
    assert "batch 1" not in captured.err
    assert not [m for m in watcher.messages if m.topic == "edge/cam-b/commands/desired"]
    watcher.wait_for(_running("1", "cam-a"), timeout=WAIT_S)
    status = _status(watcher.messages, "cam-a")
    assert status is not None
    assert status.model is not None
    assert status.model.version == "1"
    watcher.close()


def test_rollback_command_takes_a_device_back_to_its_previous_model(
    fleet: Callable[[str], tuple[AgentWorld, AgentProcess]],
    broker: MosquittoBroker,
    fleet_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    watcher = Subscriber(broker, "edge/cam-a/#")
    world, _agent = fleet("cam-a")
    watcher.wait_for(_running("1", "cam-a"), timeout=WAIT_S)
    bundle = world.write_bundle(counter=2)
    args = _fleet_args(broker, fleet_key)
    assert main(["push", str(bundle), "--device", "cam-a", "--wait", *args]) == 0
    watcher.wait_for(_running("2", "cam-a"), timeout=WAIT_S)
    capsys.readouterr()

    assert main(["rollback", "--device", "cam-a", *args]) == 0

    assert "cam-a: rolled_back:command; running digits 1" in capsys.readouterr().out
    watcher.wait_for(_running("1", "cam-a"), timeout=WAIT_S)
    bid = prepare_bundle(bundle.read_bytes()).bid
    assert main(["status", "--device", "cam-a", "--json", *args]) == 0
    assert bid in capsys.readouterr().out
    watcher.close()


def _wrong_canary(world: AgentWorld) -> bytes:
    """The model's own canary with every expected output shifted far outside its tolerance."""
    with np.load(io.BytesIO(world.model.canary.read_bytes()), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["expected"] = arrays["expected"] + 1000.0
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()
