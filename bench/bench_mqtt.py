"""MQTT results throughput: bare mosquitto_pub vs bare paho vs our outbox + forwarder, and the
real agent end to end.

All against a private mosquitto on a free port, QoS 1, ~250-byte result payloads, results (not
messages: a batch carries many) counted by an independent subscriber process
(:mod:`bench.result_counter`) from the first arrival to the last. The durable path is measured
as it was (one transaction and one message per result) and as it is (group commit, coalesced
batches); the real ``edge-agent run`` with a trivial sensor model (:mod:`bench.results_e2e`).
Also reports the service-thread cost per result.

    .venv/bin/python -m bench.bench_mqtt [--count N] [--runs R] [--no-agent]
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
from bench.report import BenchResult, Measure, Target, report
from bench.results_e2e import Counter, rate, run_agent, sensor_model
from tests.support.broker import MosquittoBroker

TOPICS = DeviceTopics("bench", "pi-1")
MODEL = ModelRef("digits", "1", "ab" * 32)
FEED_RATE = 20_000.0  # sensor lines per second into the real agent: more than it can take
FEED_S = 4.0


def _payload(seq: int) -> bytes:
    return ResultMessage(
        seq, time.time(), MODEL, 1.25, {"top": [{"label": "7", "score": 0.97}]}
    ).to_json()


def _bench_mosquitto_pub(broker: MosquittoBroker, count: int) -> float:
    counter = Counter(broker, str(TOPICS.results), count)
    lines = b"".join(_payload(i) + b"\n" for i in range(1, count + 1))
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
    return rate(counter.wait(60))


def _bench_bare_paho(broker: MosquittoBroker, count: int) -> float:
    counter = Counter(broker, str(TOPICS.results), count)
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
    for seq in range(1, count + 1):
        client.publish(str(TOPICS.results), _payload(seq), qos=1)
    done.wait(60)
    counted = counter.wait(60)
    client.disconnect()
    client.loop_stop()
    return rate(counted)


def _bench_forwarder(
    broker: MosquittoBroker, count: int, state: Path, *, grouped: bool, coalesce: bool
) -> tuple[float, list[float], list[float]]:
    """The service thread's part: per result ``Outbox.enqueue`` then ``Forwarder.step``, as the
    loop does; ``grouped`` turns group commit on (else one transaction per result). Returns
    the rate and the per-result times of ``enqueue`` and of ``enqueue`` + ``step``."""
    counter = Counter(broker, str(TOPICS.results), count)
    client = MqttClient(MqttSettings.from_url(broker.url, client_id="pi-1"), TOPICS)
    outbox = Outbox(state / "outbox.db", commit_max=256 if grouped else 1)
    topics = frozenset({str(TOPICS.results)} if coalesce else ())
    forwarder = Forwarder(outbox, client, window=32, coalesce=topics)
    client.start()
    client.wait_connected(10)
    enqueue_ms: list[float] = []
    step_ms: list[float] = []
    results = str(TOPICS.results)  # built once, as the agent's results stage holds its topic
    for _ in range(count):
        t0 = time.perf_counter()
        outbox.enqueue(results, _payload)
        t1 = time.perf_counter()
        forwarder.step(client.events, 0)
        enqueue_ms.append((t1 - t0) * 1000)
        step_ms.append((time.perf_counter() - t0) * 1000)
    while outbox.stats().depth:
        forwarder.step(client.events, 0.005)
    counted = counter.wait(60)
    client.stop(5)
    outbox.close()
    return rate(counted), enqueue_ms, step_ms


def _quantiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


NOTES = """
The limit is `mosquitto_pub -l` (C, one connection, QoS 1, one message per result) into the
same broker in the same run; every row is counted by the same independent subscriber process
(`bench/result_counter.py`: `mosquitto_sub` plus a byte count of the result objects in each
message, so a batch counts as all its results), from the first arrival to the last. The outbox
rows also make every result durable before it is published (SQLite WAL, deleted on PUBACK),
which neither baseline does. "outbox + forwarder, window 32" is the path as it was (one
transaction and one message per result, still what `Outbox` does with `commit_max=1`); the
group-commit rows run it as the agent now does (`commit_max` 256, `commit_ms` 5), with and
without coalescing. With coalescing the durable path outruns a C publisher that sends one
message per result: the per-message cost (~100-200 µs of paho Python per publish) is paid per
batch. The `edge-agent run` rows are the whole agent (sensor reader thread, windowing, LiteRT,
result message, outbox, forwarder) on a four-value model; they are bound by the service loop's
per-reading work (see `py-spy record` of the agent: the pipeline is about half of the loop
thread, building the result JSON a sixth, the outbox and forwarder a fifth), not by MQTT.
Figures on a 2-core VM shared with other jobs swing by ±30 % between runs; the range column
shows it. Per-call costs of the result message, `window_to_input` and the decoders, before and
after the hot-path work (callgrind instruction counts): docs/inference.md, "Per-call costs on
the per-result path".
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-agent", action="store_true", help="skip the end-to-end agent rows")
    args = parser.parse_args(list(argv) if argv is not None else None)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker").start()
        try:
            model = None if args.no_agent else sensor_model(Path(tmp))
            for run in range(args.runs):
                _one_run(rows, broker, args.count, Path(tmp) / f"run{run}", model)
        finally:
            broker.kill()
    raw = rows["raw"]
    limit = "raw `mosquitto_pub -l`"
    target = Target(0.8)
    measures = [
        Measure("group commit + coalesced batches, window 32", "results/s", rows["batched"], raw,
                limit, target, digits=0),
        Measure("group commit, one message per result", "results/s", rows["grouped"], raw,
                limit, digits=0),
        Measure("outbox + forwarder, window 32", "msg/s", rows["single"], raw, limit, digits=0),
        Measure("bare paho, 32 in flight", "msg/s", rows["bare"], raw, limit, digits=0),
    ]  # fmt: skip
    if model is not None:
        measures += [
            Measure("`edge-agent run`, sensor file, trivial model", "results/s", rows["agent"],
                    raw, limit, target, digits=0),
            Measure("`edge-agent run`, same, `store.coalesce = false`", "results/s",
                    rows["agent_single"], raw, limit, digits=0),
        ]  # fmt: skip
    for q in ("p50", "p99"):
        measures.append(
            Measure(f"`Outbox.enqueue` on the service thread, {q}", "ms",
                    rows[f"single_enqueue_{q}"], digits=3)
        )  # fmt: skip
    for q in ("p50", "p99"):
        measures.append(
            Measure(f"`enqueue` + `Forwarder.step` per result, group commit + batches, {q}",
                    "ms", rows[f"batched_step_{q}"], digits=3)
        )  # fmt: skip
    return report(
        BenchResult(
            key="mqtt",
            title="MQTT results path",
            command=f"python -m bench.bench_mqtt --count {args.count} --runs {args.runs}",
            setup=f"{args.count} results of {len(_payload(1))} bytes per run, QoS 1, a private "
            "mosquitto on a free port, results counted by an independent subscriber process "
            f"(first to last arrival). The agent rows feed {FEED_RATE:,.0f} sensor lines/s for "
            f"{FEED_S:g} s into the real `edge-agent run` (group commit 5 ms / 256).",
            measures=measures,
            notes=NOTES,
        )
    )


def _one_run(
    rows: dict[str, list[float]],
    broker: MosquittoBroker,
    count: int,
    state: Path,
    model: Path | None,
) -> None:
    state.mkdir()

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    add("raw", _bench_mosquitto_pub(broker, count))
    add("bare", _bench_bare_paho(broker, count))
    for key, grouped, coalesce in (
        ("single", False, False), ("grouped", True, False), ("batched", True, True),
    ):  # fmt: skip
        (state / key).mkdir()
        value, enqueue_ms, step_ms = _bench_forwarder(
            broker, count, state / key, grouped=grouped, coalesce=coalesce
        )
        add(key, value)
        for kind, values in (("enqueue", enqueue_ms), ("step", step_ms)):
            p50, p99 = _quantiles(values)
            add(f"{key}_{kind}_p50", p50)
            add(f"{key}_{kind}_p99", p99)
    if model is not None:
        for key, coalesce in (("agent", True), ("agent_single", False)):
            value, _results = run_agent(
                state / key, model, broker, coalesce=coalesce, rate_per_s=FEED_RATE,
                seconds=FEED_S,
            )  # fmt: skip
            add(key, value)


if __name__ == "__main__":
    raise SystemExit(main())
