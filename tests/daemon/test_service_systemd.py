"""The agent as a systemd ``Type=notify`` service, against a real ``NOTIFY_SOCKET`` listener.

The agent runs as its own process (real LiteRT, real mosquitto, a real video). Stalls are real:
the video arrives through a FIFO whose writer stops half way while keeping it open, so OpenCV's
read blocks exactly as it does on a hung camera or stream.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.clikit import EXIT_CONFIG
from agent.mqtt.batch import results_in
from convert.samples import digit_frames, write_video
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory
from tests.support.notify import Notification, NotifyListener

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

WATCHDOG_S = 1.0  # systemd's WatchdogSec as the agent sees it: pings every 0.5 s


@pytest.fixture
def world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> AgentWorld:
    return AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[Path, NotifyListener], AgentProcess]]:
    started: list[tuple[AgentProcess, NotifyListener]] = []

    def run(config: Path, listener: NotifyListener) -> AgentProcess:
        process = AgentProcess(config, tmp_path / f"agent-{len(started)}.log", listener.env)
        started.append((process, listener))
        return process

    yield run
    for process, listener in started:
        process.close()
        listener.close()


def _results(got: list[Received]) -> int:
    return sum(len(results_in(m.payload)) for m in got if m.topic.endswith("/results"))


class HalfVideoFifo:
    """A FIFO that delivers the first ``part`` of a video, then blocks until ``finish()``."""

    def __init__(self, path: Path, video: bytes, part: float) -> None:
        self.path = path
        os.mkfifo(path)
        self._data = video
        self._cut = int(len(video) * part)
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        with open(self.path, "wb") as fifo:
            fifo.write(self._data[: self._cut])
            fifo.flush()
            self._finish.wait(120)

    def finish(self) -> None:
        """Close the writer without sending the rest: the reader sees the end of the file."""
        self._finish.set()
        self._thread.join(10)


def test_ready_after_first_result_watchdog_stops_when_the_video_stalls(
    world: AgentWorld,
    broker: MosquittoBroker,
    start: Callable[[Path, NotifyListener], AgentProcess],
) -> None:
    images, _ = digit_frames(120, side=64)
    video = write_video(world.root / "long.avi", images, 20.0).read_bytes()
    fifo = HalfVideoFifo(world.root / "camera.fifo", video, part=0.5)
    listener = NotifyListener(watchdog_s=WATCHDOG_S)
    results = Subscriber(broker, f"edge/{DEVICE_ID}/results")
    config = world.write_config(
        source={"type": "video", "path": str(fifo.path), "stall_s": 2.0},
        tables={"status": {"interval_s": 0.5}},
    )
    agent = start(config, listener)

    listener.wait_for(lambda got: any(n.has("READY") for n in got), 60, agent.log)
    ready = listener.having("READY")[0]
    results.wait_for(lambda got: _results(got) >= 1, timeout=20)
    assert ready.fields["STATUS"].startswith("running: digits v1")
    listener.wait_for(lambda got: sum(n.has("WATCHDOG") for n in got) >= 3, 30, agent.log)
    assert all(n.t >= ready.t for n in listener.having("WATCHDOG"))

    # Half the video was delivered; the capture thread now blocks in its read. Inference stops,
    # the loop keeps turning (status still flows), and the pings stop.
    last_ping = listener.wait_quiet("WATCHDOG", quiet_s=3 * WATCHDOG_S, timeout=60)
    served = _results(results.messages)
    assert 0 < served < 120
    assert agent.process.poll() is None
    listener.wait_for(lambda got: any(n.t > last_ping and "STATUS" in n.fields for n in got), 10)

    # The camera "comes back" as the end of the file: a finished video is legitimately idle.
    fifo.finish()
    listener.wait_for(lambda got: any(n.t > last_ping for n in got if n.has("WATCHDOG")), 30)

    agent.process.send_signal(signal.SIGTERM)
    listener.wait_for(lambda got: any(n.has("STOPPING") for n in got), 15, agent.log)
    assert agent.process.wait(15) == 0
    results.close()


def test_abstract_socket_reload_and_stop(
    world: AgentWorld,
    broker: MosquittoBroker,
    start: Callable[[Path, NotifyListener], AgentProcess],
) -> None:
    listener = NotifyListener(abstract=True)
    config = world.write_config(
        source={"type": "video", "path": str(world.video), "loop": True},
    )
    agent = start(config, listener)
    listener.wait_for(lambda got: any(n.has("READY") for n in got), 60, agent.log)
    assert not listener.having("WATCHDOG")  # no WATCHDOG_USEC: the watchdog is off

    agent.process.send_signal(signal.SIGHUP)
    listener.wait_for(lambda got: any(n.has("RELOADING") for n in got), 15, agent.log)
    reloading = listener.having("RELOADING")[0]
    assert int(reloading.fields["MONOTONIC_USEC"]) > 0
    listener.wait_for(
        lambda got: any(n.has("READY") and n.t > reloading.t for n in got), 15, agent.log
    )
    assert agent.terminate() == 0
    stopping = listener.having("STOPPING")
    assert len(stopping) == 1
    assert stopping[0].t > reloading.t


def test_safe_mode_is_ready_with_the_reason_and_keeps_the_watchdog_fed(
    world: AgentWorld,
    broker: MosquittoBroker,
    start: Callable[[Path, NotifyListener], AgentProcess],
) -> None:
    data = bytearray(world.bundle_path.read_bytes())
    data[-100] ^= 0x01
    world.bundle_path.write_bytes(bytes(data))
    status = Subscriber(broker, f"edge/{DEVICE_ID}/status")
    listener = NotifyListener(watchdog_s=WATCHDOG_S)
    agent = start(world.write_config(), listener)
    listener.wait_for(lambda got: any(n.has("READY") for n in got), 60, agent.log)
    ready: Notification = listener.having("READY")[0]
    assert ready.fields["STATUS"].startswith("error (digest_mismatch):")
    listener.wait_for(lambda got: sum(n.has("WATCHDOG") for n in got) >= 4, 30, agent.log)
    status.wait_for(lambda got: any(json.loads(m.payload)["state"] == "error" for m in got), 10)
    assert agent.terminate() == 0
    status.close()


def test_unparseable_config_exits_4_before_touching_systemd(
    world: AgentWorld, start: Callable[[Path, NotifyListener], AgentProcess]
) -> None:
    config = world.write_config()
    config.write_text("colour = 'blue'\n" + config.read_text())
    listener = NotifyListener(watchdog_s=WATCHDOG_S)
    agent = start(config, listener)
    assert agent.process.wait(30) == EXIT_CONFIG
    assert "colour: unknown key" in agent.log()
    assert listener.received == []
