"""The agent as a process: real LiteRT on a converted model, real mosquitto, real video.

Each test runs ``edge-agent run`` as a child process with TensorFlow poisoned on its path, so
every test here also proves the agent never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage, StatusMessage
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

BASE = f"edge/{DEVICE_ID}"


@pytest.fixture
def world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> AgentWorld:
    return AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)


def _results(messages: list[Received]) -> list[ResultMessage]:
    return [r for m in messages if m.topic.endswith("/results") for r in results_in(m.payload)]


def _every_frame(world: AgentWorld) -> Path:
    """A config whose video is read unthrottled: no frame is dropped however loaded the host is
    (a paced source rightly drops a frame when the loop is late, and counts it)."""
    return world.write_config(source={"type": "video", "path": str(world.video), "realtime": False})


def _seqs(count: int) -> Callable[[list[Received]], bool]:
    def done(got: list[Received]) -> bool:
        return len({r.seq for r in _results(got)}) >= count

    return done


def test_results_reach_an_independent_subscriber_in_sequence(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    watcher = Subscriber(broker, f"{BASE}/results")
    agent = agents(_every_frame(world))
    watcher.wait_for(_seqs(world.frames), timeout=30, describe=lambda _: agent.log())
    results = _results(watcher.messages)
    assert [r.seq for r in results] == list(range(1, world.frames + 1))
    assert {(r.model.name, r.model.version) for r in results} == {("digits", "1")}
    assert all(not r.historical for r in results)
    top1 = [int(r.outputs["classes"][0]["label"]) for r in results]
    correct = sum(int(p == y) for p, y in zip(top1, world.labels, strict=True))
    assert correct >= 0.9 * world.frames
    assert agent.terminate() == 0
    watcher.close()


def test_availability_is_retained_online_then_offline_on_stop(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    agent = agents(
        world.write_config(source={"type": "video", "path": str(world.video), "loop": True})
    )
    online = Subscriber(broker, f"{BASE}/availability")
    online.wait_for(lambda got: bool(got) and got[-1].payload == b"online", timeout=20)
    status = Subscriber(broker, f"{BASE}/status")
    status.wait_for(
        lambda got: any(StatusMessage.from_json(m.payload).fps > 0 for m in got), timeout=20
    )
    last = StatusMessage.from_json(status.messages[-1].payload)
    assert last.state == "running"
    assert last.model is not None
    assert last.model.name == "digits"
    assert last.backend == "litert"
    assert agent.terminate() == 0
    online.wait_for(lambda got: got[-1].payload == b"offline", timeout=10)
    late = Subscriber(broker, f"{BASE}/availability")
    late.wait_for(bool, timeout=5)
    assert late.messages[-1] == Received(f"{BASE}/availability", b"offline", True)
    for sub in (online, status, late):
        sub.close()


def test_availability_goes_offline_through_the_will_when_the_agent_dies(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    config = world.write_config(mqtt={"keepalive_s": 5})
    agent = agents(config)
    watcher = Subscriber(broker, f"{BASE}/availability")
    watcher.wait_for(lambda got: bool(got) and got[-1].payload == b"online", timeout=20)
    agent.kill()
    watcher.wait_for(lambda got: got[-1].payload == b"offline", timeout=15)
    watcher.close()


def test_broker_killed_and_restarted_mid_run_loses_no_result(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    broker = make_broker(persistence=True)
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url, frames=120)
    watcher = Subscriber(broker, f"{BASE}/results", "watcher", persistent=True)
    time.sleep(1.5)  # let mosquitto's autosave (1 s) record the watcher's session
    agent = agents(world.write_config())
    watcher.wait_for(_seqs(20), timeout=30, describe=lambda _: agent.log())
    broker.kill()
    time.sleep(1.0)  # results produced now go to the agent's outbox
    broker.start()

    # The paced video may rightly drop a frame on a loaded host (counted in status): what must
    # not happen is losing a result the agent produced. So count what it published.
    def describe(got: list[Received]) -> str:
        return f"{len(got)} got\n{agent.log()}"

    watcher.wait_for(_seqs(int(0.9 * world.frames)), timeout=40, describe=describe)
    assert agent.terminate() == 0  # the video has ended or nearly; stopping flushes the outbox
    stopped = re.search(r"agent stopped; (\d+) results published", agent.log())
    assert stopped is not None
    published = int(stopped.group(1))
    watcher.wait_for(_seqs(published), timeout=20, describe=describe)
    results = _results(watcher.messages)
    counts = Counter(r.seq for r in results)
    assert sorted(counts) == list(range(1, published + 1))
    assert published >= 0.9 * world.frames
    assert any(r.historical for r in results)  # sent from the outbox after the outage
    # Copies of one seq (agent re-sends, or the broker redelivering to the persistent
    # subscriber after its restart) are the same result, so readers can de-duplicate by seq.
    for seq, copies in counts.items():
        if copies > 1:
            same = {(r.ts, json.dumps(r.outputs)) for r in results if r.seq == seq}
            assert len(same) == 1, seq
    watcher.close()


def test_sequence_numbers_continue_across_an_agent_restart(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    watcher = Subscriber(broker, f"{BASE}/results")
    config = _every_frame(world)
    first = agents(config)
    watcher.wait_for(_seqs(world.frames), timeout=30, describe=lambda _: first.log())
    assert first.terminate() == 0
    second = agents(config)
    watcher.wait_for(_seqs(2 * world.frames), timeout=30, describe=lambda _: second.log())
    seqs = [r.seq for r in _results(watcher.messages)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 2 * world.frames
    assert "installed initial bundle" not in second.log()
    assert second.terminate() == 0
    watcher.close()


def test_wrong_password_is_a_clear_error_and_never_connects(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    broker = make_broker(username="device", password="right")
    world = AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)
    (world.root / "mqtt-password").write_text("wrong\n")
    (world.root / "mqtt-password").chmod(0o600)
    config = world.write_config(mqtt={"username": "device", "password_file": "mqtt-password"})
    agent = agents(config)
    deadline = time.monotonic() + 20
    refused = "broker refused the connection: not authorised"
    while refused not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refused in agent.log()
    assert "INFO agent.mqtt.client: connected to" not in agent.log()
    assert agent.terminate() == 0


def test_a_tampered_bundle_is_refused_and_the_service_reports_why(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    data = bytearray(world.bundle_path.read_bytes())
    data[-100] ^= 0x01
    world.bundle_path.write_bytes(bytes(data))
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(world.write_config())
    status.wait_for(
        lambda got: any(json.loads(m.payload)["state"] == "error" for m in got), timeout=20
    )
    error = next(
        StatusMessage.from_json(m.payload)
        for m in status.messages
        if json.loads(m.payload)["state"] == "error"
    )
    assert error.last_error is not None
    assert error.last_error.code == "digest_mismatch"
    assert agent.process.poll() is None  # still up, waiting for a good model
    assert agent.terminate() == 0
    status.close()


def test_missing_edgetpu_serves_on_cpu_degraded_and_reprobes_with_backoff(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    config = world.write_config(
        source={"type": "video", "path": str(world.video), "loop": True},
        tables={"model": {"accelerator": "edgetpu", "reprobe_min_s": 0.2, "reprobe_max_s": 0.4}},
    )
    results = Subscriber(broker, f"{BASE}/results")
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(config)

    def reprobed(times: int) -> Callable[[list[Received]], bool]:
        def done(got: list[Received]) -> bool:
            errors = [StatusMessage.from_json(m.payload).errors for m in got]
            return any(e.get("accelerator_unavailable", 0) >= times for e in errors)

        return done

    status.wait_for(reprobed(3), timeout=30, describe=lambda _: agent.log())
    last = StatusMessage.from_json(status.messages[-1].payload)
    assert (last.state, last.degraded, last.accelerator) == ("degraded", True, "cpu")
    assert last.last_error is not None
    assert last.last_error.code == "accelerator_unavailable"
    assert "libedgetpu.so.1" in last.last_error.message
    results.wait_for(lambda got: len(got) >= 20, timeout=20)  # the CPU keeps serving
    assert agent.process.poll() is None
    assert agent.log().count("still on CPU") == 1  # logged once per minute, counted always
    assert agent.terminate() == 0
    for sub in (results, status):
        sub.close()


def test_sighup_applies_a_new_config_and_an_invalid_one_is_reported_while_the_old_serves(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    source = {"type": "video", "path": str(world.video), "loop": True}
    config = world.write_config(source=source, tables={"output": {"top_k": 1}})
    results = Subscriber(broker, f"{BASE}/results")
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(config)

    def classes_after(mark: int, count: int) -> Callable[[list[Received]], bool]:
        def done(got: list[Received]) -> bool:
            return any(len(r.outputs["classes"]) == count for r in _results(got[mark:]))

        return done

    results.wait_for(classes_after(0, 1), timeout=30, describe=lambda _: agent.log())
    assert all(len(r.outputs["classes"]) == 1 for r in _results(results.messages))

    world.write_config(source=source, tables={"output": {"top_k": 3}})
    mark = len(results.messages)
    agent.process.send_signal(signal.SIGHUP)
    results.wait_for(classes_after(mark, 3), timeout=20, describe=lambda _: agent.log())

    world.write_config(source=source, tables={"output": {"top_k": 1, "colour": "red"}})
    agent.process.send_signal(signal.SIGHUP)

    def rejected(got: list[Received]) -> bool:
        errors = [StatusMessage.from_json(m.payload).last_error for m in got]
        return any(e is not None and "config reload rejected" in e.message for e in errors)

    status.wait_for(rejected, timeout=20, describe=lambda _: agent.log())
    report = next(
        e
        for m in status.messages
        if (e := StatusMessage.from_json(m.payload).last_error) is not None
        and "reload" in e.message
    )
    assert report.code == "bad_config"
    assert "output.colour" in report.message
    mark = len(results.messages)
    results.wait_for(lambda got: len(got) >= mark + 10, timeout=20)
    assert all(len(r.outputs["classes"]) == 3 for r in _results(results.messages[mark:]))
    assert agent.process.poll() is None
    assert agent.terminate() == 0
    for sub in (results, status):
        sub.close()


def test_an_agent_whose_video_has_ended_idles_instead_of_spinning(
    world: AgentWorld, broker: MosquittoBroker, agents: Callable[[Path], AgentProcess]
) -> None:
    watcher = Subscriber(broker, f"{BASE}/results")
    agent = agents(_every_frame(world))
    watcher.wait_for(_seqs(world.frames), timeout=30, describe=lambda _: agent.log())
    agent.process.send_signal(signal.SIGHUP)  # a signal's wake-up must not leave it awake
    time.sleep(1.0)
    before = _cpu_seconds(agent.process.pid)
    time.sleep(3.0)
    used = _cpu_seconds(agent.process.pid) - before
    # Idle is a 20 ms poll (a few ms of CPU per second); a spinning loop burns a whole core,
    # or at the very least a few tenths of a second on a loaded 2-core host.
    assert used < 0.3, f"{used:.2f} s of CPU in 3 s while idle"
    assert agent.terminate() == 0
    watcher.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
