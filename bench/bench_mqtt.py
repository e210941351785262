"""MQTT results throughput: bare mosquitto_pub vs bare paho vs our outbox + forwarder.

All against a private mosquitto on a free port, QoS 1, ~250-byte result payloads, counted by an
independent ``mosquitto_sub``. Also reports the per-result cost of ``Outbox.enqueue`` (the part
that runs on the frame->publish path).

    .venv/bin/python -m bench.bench_mqtt [--count N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt.client import MqttClient
from agent.mqtt.messages import ModelRef, ResultMessage
from agent.mqtt.settings import MqttSettings
from agent.mqtt.topics import DeviceTopics
from agent.store.forwarder import Forwarder
from agent.store.outbox import Outbox
from bench.report import BenchResult, Measure, report
from tests.support.broker import MosquittoBroker

TOPICS = DeviceTopics("bench", "pi-1")
MODEL = ModelRef("digits", "1", "ab" * 32)


def _payload(seq: int) -> bytes:
    return ResultMessage(
        seq, time.time(), MODEL, 1.25, {"top": [{"label": "7", "score": 0.97}]}
    ).to_json()


class _Counter:
    """mosquitto_sub counting lines on the results topic."""

    def __init__(self, broker: MosquittoBroker, count: int) -> None:
        self._process = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-q",
                "1",
                "-t",
                str(TOPICS.results),
                "-C",
                str(count),
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def wait(self, timeout: float) -> None:
        self._process.wait(timeout)


def _bench_mosquitto_pub(broker: MosquittoBroker, count: int) -> float:
    counter = _Counter(broker, count)
    lines = b"".join(_payload(i) + b"\n" for i in range(1, count + 1))
    start = time.perf_counter()
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            str(TOPICS.results),
            "-l",
        ],
        input=lines,
        check=True,
    )
    counter.wait(60)
    return count / (time.perf_counter() - start)


def _bench_bare_paho(broker: MosquittoBroker, count: int) -> float:
    counter = _Counter(broker, count)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bare", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(32)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_args: object) -> None:
        acked[0] += 1
        if acked[0] == count:
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    start = time.perf_counter()
    for seq in range(1, count + 1):
        client.publish(str(TOPICS.results), _payload(seq), qos=1)
    done.wait(60)
    counter.wait(60)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def _bench_forwarder(broker: MosquittoBroker, count: int, state: Path) -> tuple[float, list[float]]:
    counter = _Counter(broker, count)
    client = MqttClient(MqttSettings.from_url(broker.url, client_id="pi-1"), TOPICS)
    outbox = Outbox(state / "outbox.db")
    forwarder = Forwarder(outbox, client, window=32)
    client.start()
    client.wait_connected(10)
    enqueue_ms: list[float] = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        outbox.enqueue(str(TOPICS.results), _payload)
        enqueue_ms.append((time.perf_counter() - t0) * 1000)
        forwarder.step(client.events, 0)
    while outbox.stats().depth:
        forwarder.step(client.events, 0.005)
    counter.wait(60)
    elapsed = time.perf_counter() - start
    client.stop(5)
    outbox.close()
    return count / elapsed, enqueue_ms


NOTES = """
The limit is `mosquitto_pub -l` (C, one connection, QoS 1) into the same broker, counted by the
same independent `mosquitto_sub`. The outbox path also makes every result durable (SQLite WAL
insert before publish, delete on PUBACK), which neither baseline does. Figures on a 2-core VM
shared with other jobs swing by ±30 % between runs; the range column shows it.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(list(argv) if argv is not None else None)
    raw: list[float] = []
    bare: list[float] = []
    ours: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker").start()
        try:
            for run in range(args.runs):
                state = Path(tmp) / f"run{run}"
                state.mkdir()
                raw.append(_bench_mosquitto_pub(broker, args.count))
                bare.append(_bench_bare_paho(broker, args.count))
                rate, enqueue_ms = _bench_forwarder(broker, args.count, state)
                ours.append(rate)
                cuts = statistics.quantiles(enqueue_ms, n=100)
                p50.append(cuts[49])
                p99.append(cuts[98])
        finally:
            broker.kill()
    limit = "raw `mosquitto_pub -l`"
    return report(
        BenchResult(
            key="mqtt",
            title="MQTT results path",
            command=f"python -m bench.bench_mqtt --count {args.count} --runs {args.runs}",
            setup=f"{args.count} results of {len(_payload(1))} bytes per run, QoS 1, a private "
            "mosquitto on a free port, counted by an independent `mosquitto_sub`.",
            measures=[
                Measure("outbox + forwarder, window 32", "msg/s", ours, raw, limit, digits=0),
                Measure("bare paho, 32 in flight", "msg/s", bare, raw, limit, digits=0),
                Measure("`Outbox.enqueue` on the service thread, p50", "ms", p50, digits=3),
                Measure("`Outbox.enqueue` on the service thread, p99", "ms", p99, digits=3),
            ],
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
