"""The real ``edge-agent run`` with a trivial sensor model fed faster than it can serve:
results per second at an independent subscriber (a row of ``bench.bench_mqtt``).

The model (:mod:`bench.sensor_model`) takes four values and costs microseconds, so what is
measured is the agent's path from a sensor line to a durable, published result: the sensor
reader thread, windowing, the interpreter call, the result message, the outbox (group commit)
and the forwarder (coalesced batches), with the real config, process and broker. Lines are
appended to the sensor file at ``rate`` per second for ``seconds``, more than the agent can
take, so its bounded reading queue drops the oldest (as designed) and the loop never idles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.sensor_model import FIELDS, load
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker

RESULTS = f"edge/{DEVICE_ID}/results"


class Counter:
    """``python -m bench.result_counter`` in its own process (see there)."""

    def __init__(self, broker: MosquittoBroker, topic: str, count: int = 0) -> None:
        where = ["--host", broker.host, "--port", str(broker.port), "--topic", topic]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.result_counter", *where, "--count", str(count)],
            stdout=subprocess.PIPE,
        )
        time.sleep(0.5)  # mosquitto_sub has subscribed

    def wait(self, timeout: float) -> dict[str, Any]:
        out, _ = self._process.communicate(timeout=timeout)
        return dict(json.loads(out.decode().strip().splitlines()[-1]))


def rate(counted: dict[str, Any]) -> float:
    """Results per second between the first and the last arrival."""
    span = float(counted["last"]) - float(counted["first"])
    return (int(counted["count"]) - 1) / span if span > 0 else 0.0


def sensor_model(root: Path) -> Path:
    """Build the trivial model in a TensorFlow subprocess (once per bench run)."""
    out = root / "sensor-model"
    subprocess.run(
        [sys.executable, "-m", "bench.sensor_model", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def _feed(path: Path, rate_per_s: float, seconds: float) -> None:
    chunk = 200
    lines = b"".join(
        b"%.3f,%.3f,%.3f,%.3f\n" % (i / chunk, 0.5, 1 - i / chunk, 0.25) for i in range(chunk)
    )
    period = chunk / rate_per_s
    start = time.monotonic()
    with open(path, "ab", buffering=0) as out:
        for n in range(int(seconds / period)):
            delay = start + n * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.write(lines)


def _wait_running(agent: AgentProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "running (source sensor)" not in agent.log():
        if time.monotonic() > deadline or agent.process.poll() is not None:
            raise RuntimeError(f"the agent did not start:\n{agent.log()[-3000:]}")
        time.sleep(0.2)
    time.sleep(1.0)  # connected, subscribed, first status out


def run_agent(
    root: Path,
    model_dir: Path,
    broker: MosquittoBroker,
    *,
    coalesce: bool,
    rate_per_s: float = 20_000.0,
    seconds: float = 4.0,
) -> tuple[float, int]:
    """One run: (results/s at the subscriber, results counted)."""
    world = AgentWorld(root, load(model_dir), broker.url, frames=2)
    lines = root / "sensor.csv"
    lines.write_bytes(b"")
    source = {"type": "sensor", "path": str(lines), "format": "csv", "fields": list(FIELDS)}
    config = world.write_config(source=source, tables={"store": {"coalesce": coalesce}})
    agent = AgentProcess(config, root / "agent.log")
    try:
        _wait_running(agent)
        counter = Counter(broker, RESULTS)
        feeder = threading.Thread(target=_feed, args=(lines, rate_per_s, seconds))
        feeder.start()
        feeder.join()
        counted = counter.wait(seconds + 120)
        if agent.terminate() != 0:
            raise RuntimeError(f"the agent failed:\n{agent.log()[-3000:]}")
    finally:
        agent.close()
    return rate(counted), int(counted["count"])
