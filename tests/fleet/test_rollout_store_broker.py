"""Stored rollouts against real mosquitto and simulated agents: pause and resume, resume after
the rollout's process was killed, and a cancel that withdraws everything it sent.

The rollout runs in its own process (``python -m fleet.cli rollout start``) with a soak after
the canaries, so "during the soak" is a fact the test waits for in the state file (a resumed
rollout soaks only what was left of it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.fleet_sim import GROUP, PREFIX, Keys
from fleet.cli import main
from fleet.rollout_state import RolloutState
from tests.fleet.sim_support import fleet_files, sim_agents
from tests.support.broker import MosquittoBroker, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]

AGENTS = 8
NAME = "sim-2-sim"


@pytest.fixture
def world(
    broker: MosquittoBroker, tmp_path: Path
) -> Iterator[tuple[list[str], Path, Callable[..., subprocess.Popen[bytes]]]]:
    keys = Keys()
    bundle = tmp_path / "sim-2.edgepkg"
    bundle.write_bytes(keys.bundle(2, 200_000))
    common = ["--url", broker.url, *fleet_files(tmp_path, keys, AGENTS)]
    state_dir = ["--state-dir", str(tmp_path / "rollouts")]
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "fleet.cli", "rollout", "start", str(bundle),
                   "--group", GROUP, "--canary", "2", "--batch", "3", *extra,
                   *state_dir, *common]  # fmt: skip
        log = (tmp_path / "rollout.log").open("ab")
        process = subprocess.Popen(command, stdout=log, stderr=log)
        started.append(process)
        return process

    with sim_agents(broker, tmp_path, keys, AGENTS):
        yield [*state_dir, *common], tmp_path / "rollouts" / f"{NAME}.json", start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_state(
    path: Path, check: Callable[[RolloutState], bool], timeout: float = 120
) -> RolloutState:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        if path.exists():
            state = RolloutState.from_json(path.read_bytes(), str(path))
            if check(state):
                return state
        time.sleep(0.3)
    pytest.fail(f"rollout state never got there; last: {state}")


def canaries_installed(state: RolloutState) -> bool:
    return [state.outcomes.get(d, ("", ""))[0] for d in ("dev-00000", "dev-00001")] == [
        "installed",
        "installed",
    ]


def test_a_paused_rollout_resumes_where_it_stopped_and_completes(
    world: tuple[list[str], Path, Callable[..., subprocess.Popen[bytes]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, path, start = world
    process = start("--soak", "10")
    wait_state(path, canaries_installed)
    assert main(["rollout", "pause", NAME, *args[:2]]) == 0
    assert process.wait(60) == 0
    paused = wait_state(path, lambda s: s.phase == "paused")
    assert (paused.stage, sorted(paused.sent)) == (0, ["dev-00000", "dev-00001"])
    capsys.readouterr()

    assert main(["rollout", "resume", NAME, "--json", *args]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["phase"], done["counts"]) == ("done", {"installed": AGENTS})
    assert main(["rollout", "status", "--state-dir", args[1]]) == 0
    assert capsys.readouterr().out.startswith(f"{NAME}  done  stage 3/3  installed {AGENTS}")


def test_a_rollout_whose_process_was_killed_resumes_from_its_stored_state(
    world: tuple[list[str], Path, Callable[..., subprocess.Popen[bytes]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, path, start = world
    process = start("--soak", "10")
    wait_state(path, canaries_installed)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert wait_state(path, lambda _s: True).phase == "running"  # nobody said otherwise
    assert main(["rollout", "resume", NAME, "--json", *args]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["phase"], done["counts"]) == ("done", {"installed": AGENTS})


def test_a_cancel_withdraws_every_desired_command_and_the_bundle_and_rolls_back_installs(
    world: tuple[list[str], Path, Callable[..., subprocess.Popen[bytes]]],
    broker: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, path, start = world
    process = start("--soak", "600")
    wait_state(path, canaries_installed)
    assert main(["rollout", "cancel", NAME, *args]) == 0
    assert process.wait(120) == 1
    state = wait_state(path, lambda s: s.phase == "cancelled")
    assert sorted(state.rolled_back) == ["dev-00000", "dev-00001"]
    capsys.readouterr()
    retained = Subscriber(broker, f"{PREFIX}/#")
    time.sleep(2.0)  # retained messages come right after the SUBACK
    topics = {m.topic for m in retained.messages if m.retain and m.payload}
    retained.close()
    assert not [t for t in topics if "/commands/" in t or "/bundles/" in t]
    assert main(["status", "--json", *args[2:]]) == 0
    versions = json.loads(capsys.readouterr().out)["summary"]["versions"]
    assert versions == {"sim 1": AGENTS}


def test_a_rate_limited_rollout_notifies_a_device_a_second_and_keeps_its_rate_in_the_state(
    world: tuple[list[str], Path, Callable[..., subprocess.Popen[bytes]]],
    broker: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--max-per-minute 60``: 8 desired commands over at least 7 s (the first at once)."""
    args, path, start = world
    desired = Subscriber(broker, f"{PREFIX}/+/commands/desired")
    process = start("--max-per-minute", "60")
    seen: list[float] = []
    deadline = time.monotonic() + 120
    while len(seen) < AGENTS and time.monotonic() < deadline:
        count = len({m.topic for m in desired.messages if m.payload})
        seen += [time.monotonic()] * (count - len(seen))
        time.sleep(0.05)
    desired.close()
    assert process.wait(120) == 0
    assert len(seen) == AGENTS
    assert seen[-1] - seen[0] >= AGENTS - 1.5
    state = wait_state(path, lambda s: s.phase == "done")
    assert (state.options.rate.max_per_minute, state.rate.per_minute) == (60, 60)
    assert main(["rollout", "status", NAME, "--state-dir", args[1]]) == 0
    assert f"rate      60/min; now 60/min; {AGENTS} notified" in capsys.readouterr().out
