"""The three sides of ``bench/bench_agent.py``, each a process of its own.

* ``bare``: the bare ``Interpreter.invoke`` loop on the same ``.tflite`` with the same threads,
  one all-zero tensor, timed in-process (the limit: no decode, no pre-processing, no publish);
* ``script``: ``bench/user_script.py``, the ~40 lines a user would write;
* ``agent``: the real ``edge-agent run`` with a config, nothing else.

Script and agent publish to a private mosquitto; an independent paho subscriber counts what
arrives and when. Nothing here looks inside the agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.agent_cases import DEVICE, Case, agent_config
from tests.support.broker import MosquittoBroker

ROOT = Path(__file__).resolve().parents[1]
TOPIC = f"edge/{DEVICE}/results"
USER_SCRIPT = ROOT / "bench" / "user_script.py"

_BARE = r"""
import json, sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
seconds, threads = float(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model_path=sys.argv[1], num_threads=threads)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
for _ in range(5):
    it.invoke()
times = []
start, cpu0 = time.perf_counter(), time.process_time()
while len(times) < 20 or time.perf_counter() - start < seconds:
    t = time.perf_counter(); it.invoke(); times.append(time.perf_counter() - t)
total = time.perf_counter() - start
cpu_ms = (time.process_time() - cpu0) * 1000 / len(times)
rss = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
ms = [round(t * 1000, 4) for t in times]
print(json.dumps({"per_s": len(times) / total, "p50_ms": float(np.median(ms)), "rss": rss,
                  "cpu_ms": cpu_ms, "times_ms": ms}))
"""


def bare(case: Case, threads: int, seconds: float = 3.0) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _BARE, str(case.tflite), str(seconds), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Watcher:
    """An independent paho subscriber on the results topic, stamping each arrival."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.received: list[tuple[float, bytes]] = []
        self._results = 0  # a batch message of the agent carries several (docs/mqtt-protocol.md)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the subscriber got no SUBACK for {TOPIC} within 10 s")

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((time.time(), bytes(msg.payload)))
            batch = msg.payload.startswith(b'{"v":1,"batch":[')  # parse only a batch here
            self._results += len(_results(bytes(msg.payload))) if batch else 1

    def count(self) -> int:
        with self._lock:
            return self._results

    def wait(self, count: int, timeout: float, idle_s: float = 3.0) -> None:
        """Until ``count`` results, or some and nothing new for ``idle_s``.

        A paced source keeps only the newest frame, so frames are dropped when the loop, or
        the host under it, stalls longer than a frame; how many arrived is reported.
        """
        deadline = time.monotonic() + timeout
        last_len, last_change = 0, time.monotonic()
        while time.monotonic() < deadline:
            got = self.count()
            if got >= count:
                return
            now = time.monotonic()
            if got != last_len:
                last_len, last_change = got, now
            elif got and now - last_change > idle_s:
                return
            time.sleep(0.01)
        raise RuntimeError(f"only {self.count()} of {count} results arrived")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _sample(
    pid: int, stop: threading.Event, rss: list[int], cpu: list[tuple[float, float]]
) -> None:
    """RSS and (wall time, CPU seconds) of ``pid`` every 50 ms until ``stop``."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss.append(int(line.split()[1]) * 1024)
            cpu.append((time.time(), _cpu_s(pid)))
        except (OSError, IndexError, ValueError):
            return
        stop.wait(0.05)


def _cpu_share(cpu: list[tuple[float, float]], start: float, end: float) -> float:
    """CPU seconds per wall second between wall times ``start`` and ``end`` (samples inside)."""
    inside = [(t, c) for t, c in cpu if start <= t <= end]
    if len(inside) < 2:
        return 0.0
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return (c1 - c0) / (t1 - t0)


def host_jitter_ms(seconds: float = 3.0, nap_s: float = 0.001) -> float:
    """p99 of how late a 1 ms sleep wakes up on this host: the scheduling floor under any p99."""
    late: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        time.sleep(nap_s)
        late.append((time.perf_counter() - start - nap_s) * 1000)
    return float(np.percentile(late, 99))


def _publisher(
    work: Path, case: Case, command: Callable[[MosquittoBroker], list[str]]
) -> dict[str, Any]:
    """Run ``command(broker)`` against a private broker; what the subscriber saw."""
    work.mkdir(parents=True)
    broker = MosquittoBroker(work / "broker").start()
    watcher = Watcher(broker)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    spawned = time.time()
    with open(work / "process.log", "wb") as log:
        process = subprocess.Popen(command(broker), stdout=log, stderr=log, env=env)
    stop, rss, cpu = threading.Event(), list[int](), list[tuple[float, float]]()
    sampler = threading.Thread(target=_sample, args=(process.pid, stop, rss, cpu))
    sampler.start()
    try:
        watcher.wait(case.frames, timeout=600)
    finally:
        stop.set()
        sampler.join()
        process.terminate()
        process.wait(30)
        watcher.close()
        broker.close()
    summary = _summary(watcher.received, spawned, case.frames, rss)
    share = _cpu_share(cpu, watcher.received[0][0], watcher.received[-1][0])
    summary["cpu_ms"] = 1000 * share / summary["per_s"] if summary["per_s"] else 0.0
    return summary


def _summary(
    received: list[tuple[float, bytes]], spawned: float, frames: int, rss: list[int]
) -> dict[str, Any]:
    each = [(t, result) for t, p in received for result in _results(p)]
    arrivals = [t for t, _ in each]
    stamps = [float(result["ts"]) for _, result in each]
    latencies = [(t - ts) * 1000 for t, ts in zip(arrivals, stamps, strict=True)]
    span = arrivals[-1] - arrivals[0]
    return {
        "per_s": (len(arrivals) - 1) / span if span > 0 else 0.0,
        "p99_ms": float(np.percentile(latencies, 99)),
        "rss": float(max(rss, default=0)),
        "cold_start_s": arrivals[0] - spawned,
        "published_share": len(arrivals) / frames,
        "latencies_ms": latencies,
        "outputs": sorted(each[0][1].get("outputs", {})),
    }


def script(case: Case, work: Path, threads: int) -> dict[str, Any]:
    def command(broker: MosquittoBroker) -> list[str]:
        return [
            *(sys.executable, str(USER_SCRIPT), str(case.tflite), str(case.video)),
            *(broker.host, str(broker.port), TOPIC, str(threads), str(case.mean), str(case.std)),
        ]

    return _publisher(work, case, command)


def agent(
    case: Case, work: Path, threads: int, *, realtime: bool, source: str = "video"
) -> dict[str, Any]:
    def command(broker: MosquittoBroker) -> list[str]:
        config = agent_config(case, work, broker.url, threads, realtime=realtime, source=source)
        return [sys.executable, "-m", "agent.cli", "run", "--config", str(config)]

    return _publisher(work, case, command)


def _results(payload: bytes) -> list[dict[str, Any]]:
    """The result objects of one message: the agent's batch ``{"v": 1, "batch": [...]}`` or
    one result (the agent's, or the user script's)."""
    obj = json.loads(payload)
    return list(obj["batch"]) if isinstance(obj, dict) and "batch" in obj else [obj]
