"""Model updates against their limits: bundle transfer vs raw mosquitto, result gap across a swap.

The setup and what each figure means are in ``SETUP`` and ``NOTES`` (they become the section of
``docs/benchmarks.md``).

    .venv/bin/python -m bench.bench_update [--runs 3] [--mb 25]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.keys import encode_release_public
from agent.config import UpdateConfig
from agent.fleet.bundles import prepare_bundle
from agent.fleet.connection import connect
from agent.fleet.progress import update_for
from agent.fleet.publish import clear_retained
from agent.fleet.session import FleetSession
from agent.fleet.settings import FleetSettings
from agent.mqtt.client import MqttClient
from agent.mqtt.messages import ResultMessage
from agent.update.protocol import BundleTopics
from bench.plots import result_timeline
from bench.report import BenchResult, Measure, Plot, Target, plot_path, report
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker
from tests.support.models import get_converted_model

MB = 1 << 20
WATCH_S = 10.0  # update.watch_s, the default
TMPFS = "/dev/shm"
DEFAULT_WINDOW = UpdateConfig().window

SETUP = """One private mosquitto; one real agent process (`edge-agent run`, the sample digits
model int8); the fleet side is `agent.fleet` (what `edge-fleet push` runs). Transfer: a {mb} MB
bundle of random model bytes (64 KiB blocks, one signed SHA-256 each) from the start of the
upload (retained, window 16) until the device reports every block held — fleet → broker →
device, each block verified, written at its offset and recorded in the persisted bitmap —
against `mosquitto_pub -f` of the same {mb} MB as one message until `mosquitto_sub` has it, same
broker, same run. The agent meanwhile serves its video paced at 20 fps (a camera), first with
the default `update.window` (16) block subscriptions in flight, then restarted with 32, then
with 16 and its state directory on tmpfs. (The random model then fails its canary, which leaves the
running model alone.) Swap: the agent restarted reading its video unthrottled, and real releases
2, 3, ... pushed one after the other; each swap figure is the longest gap between consecutive
results (device timestamps) from the push until the next push, i.e. across transfer, canary,
swap, the 10 s watch window and the release of the old model; the limit is the median `invoke`
time (`latency_ms`). `update.latency_budget_factor` is 20 for this run: the canary's latency is
judged on a loaded shared machine."""

NOTES = """The transfer figure is end to end (upload + device fetch), the same path the raw figure
measures as one message: our blocks pass the broker as retained messages, one subscription per
block, and are hashed, written and recorded on the device. Before the MQTT client set
`TCP_NODELAY` every SUBSCRIBE waited for the broker's delayed ACK (~40 ms, Nagle): a window of 8
managed 8.9 MB/s (ratio 0.18) on this host, and with `TCP_NODELAY` but one SUBSCRIBE per block
the partial file's fsyncs (every 16 blocks, ~12 ms on this VM's disk) still showed (disk 0.46,
tmpfs 0.62). With one SUBSCRIBE/UNSUBSCRIBE packet per round and a window of 16, disk and tmpfs
are level and a wider window gains nothing: what is left is Python handling 64 KiB messages in
the agent process (paho's thread and the updater share one GIL with inference) on a shared
2-core host, where the raw figure itself varied from 33 to 74 MB/s between runs.
The install gap misses its target against `invoke`, which for the 140 KiB digits model is a
fraction of a millisecond; a result also costs pre-processing, JSON, the outbox and the
publish (the median gap between results away from any update), and the host is shared (the
longest gap before any update is scheduling jitter). Compare the install gap with both. No
result was lost or failed across the installs when the missing count is 0."""


def raw_seconds(broker: MosquittoBroker, payload: Path) -> float:
    """``mosquitto_pub -f`` of one message until ``mosquitto_sub -C 1`` has all of it."""
    where = ["-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", "raw/bench"]
    sub = subprocess.Popen(
        ["mosquitto_sub", *where, "-C", "1"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    start = time.perf_counter()
    subprocess.run(
        ["mosquitto_pub", *where, "-f", str(payload)],
        check=True,
    )
    sub.wait(120)
    return time.perf_counter() - start


class Results:
    """Every result the agent publishes, as parsed messages."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._lock = threading.Lock()
        self._raw: list[tuple[float, bytes]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.on_connect = lambda c, *_: c.subscribe(f"edge/{DEVICE_ID}/results", qos=1)
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self._raw.append((time.monotonic(), bytes(msg.payload)))

    def received(self) -> list[tuple[float, ResultMessage]]:
        """Parsed here, not in the callback: a slow subscriber would make the broker drop."""
        with self._lock:
            raw = list(self._raw)
        return [(t, ResultMessage.from_json(payload)) for t, payload in raw]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def wait_update(session: FleetSession, bid: str, states: set[str], timeout: float) -> str:
    """The device's update label once it reaches one of ``states`` for bundle ``bid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = update_for(session.live.row(DEVICE_ID), bid)
        if update is not None and update.state in states:
            return update.label
        session.poll(0.05)
    raise RuntimeError(f"device did not reach {sorted(states)} for {bid} in {timeout:g} s")


def transfer_seconds(
    session: FleetSession,
    client: MqttClient,
    world: AgentWorld,
    *,
    fleet_key: Ed25519PrivateKey,
    counter: int,
    size: int,
) -> float:
    """Upload start → the device reports every block held (it then verifies, and the random
    model fails its canary: expected). The bundle is deleted from the broker afterwards."""
    bundle = prepare_bundle(_big_bundle(world, counter, size))
    start = time.perf_counter()
    session.publish_bundle(bundle, window=16)
    session.send_desired([DEVICE_ID], bundle.offer, [fleet_key])
    wait_update(session, bundle.bid, {"verifying", "canary", "installed", "rejected"}, 600)
    elapsed = time.perf_counter() - start
    wait_update(session, bundle.bid, {"installed", "rejected", "rolled_back"}, 600)
    topics = BundleTopics("edge")
    blocks = [topics.block(bundle.bid, i) for i in range(bundle.offer.blocks)]
    clear_retained(client, [topics.header(bundle.bid), *blocks])
    return elapsed


def swap_figures(
    received: list[tuple[float, ResultMessage]], pushes: Sequence[float], end: float
) -> dict[str, Any]:
    """Gaps between consecutive results (by device timestamp) from each push until the next
    push (transfer, canary, swap, watch window, retiring the old model), and before the first."""
    live = sorted(((t, r) for t, r in received if not r.historical), key=lambda x: x[1].seq)
    seqs = [r.seq for _, r in live]

    def longest(start: float, stop: float) -> float:
        inside = [r for t, r in live if start <= t < stop]
        return max((b.ts - a.ts) * 1000 for a, b in itertools.pairwise(inside))

    steady = [r for t, r in live if t < pushes[0]]
    bounds = [*pushes, end]
    return {
        "missing": len(set(range(seqs[0], seqs[-1] + 1)) - set(seqs)),
        "invoke_ms": statistics.median(r.latency_ms for _, r in live),
        "steady_gap_ms": statistics.median(
            (b.ts - a.ts) * 1000 for a, b in itertools.pairwise(steady)
        ),
        "steady_max_ms": longest(live[0][0], pushes[0]),
        "swap_gap_ms": [longest(start, stop) for start, stop in itertools.pairwise(bounds)],
    }


def start_agent(world: AgentWorld, work: Path, *, window: int, realtime: bool) -> AgentProcess:
    config = world.write_config(
        source={"type": "video", "path": str(world.video), "loop": True, "realtime": realtime},
        tables={
            "keys": {"fleet_keys": ["fleet.pub"]},
            "update": {"latency_budget_factor": 20.0, "window": window},
        },
    )
    return AgentProcess(config, work / f"agent-{window}-{realtime}.log")


@contextmanager
def fleet_session(broker: MosquittoBroker) -> Iterator[tuple[MqttClient, FleetSession]]:
    """A fleet connection that returns once the (re)started agent published a live status."""
    with connect(FleetSettings(url=broker.url, client_id="bench-fleet")) as client:
        session = FleetSession(client, "edge")
        deadline = time.monotonic() + 120
        while session.live.row(DEVICE_ID) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the agent published no status within 120 s")
            session.poll(0.5)
        yield client, session


def measure_transfers(
    broker: MosquittoBroker,
    worlds: dict[str, AgentWorld],
    work: Path,
    fleet_key: Ed25519PrivateKey,
    args: argparse.Namespace,
) -> dict[str, list[float]]:
    """Transfer seconds per run: state dir on disk with the default window and twice that, and
    on tmpfs with the default (what the partial file's fsyncs cost)."""
    phases = [("disk", DEFAULT_WINDOW), ("disk", 2 * DEFAULT_WINDOW), ("tmpfs", DEFAULT_WINDOW)]
    seconds: dict[str, list[float]] = {}
    for phase, (where, window) in enumerate(phases):
        world = worlds[where]
        agent = start_agent(world, work, window=window, realtime=True)
        try:
            with fleet_session(broker) as (client, session):
                seconds[f"{where}, `update.window = {window}`"] = [
                    transfer_seconds(
                        session,
                        client,
                        world,
                        fleet_key=fleet_key,
                        counter=100 + 10 * phase + run,
                        size=args.mb * MB,
                    )
                    for run in range(args.runs)
                ]
        finally:
            agent.terminate()
    return seconds


def measure_swaps(
    broker: MosquittoBroker, world: AgentWorld, work: Path, fleet_key: Ed25519PrivateKey, runs: int
) -> tuple[dict[str, Any], Plot]:
    """Push releases 2..runs+1 to the agent reading its video unthrottled."""
    results = Results(broker)
    agent = start_agent(world, work, window=DEFAULT_WINDOW, realtime=False)
    events: dict[str, float] = {}
    try:
        with fleet_session(broker) as (_client, session):
            time.sleep(3.0)
            for version in range(2, runs + 2):
                release = prepare_bundle(world.write_bundle(counter=version).read_bytes())
                events[f"push {version}"] = time.monotonic()
                session.publish_bundle(release, window=16)
                session.send_desired([DEVICE_ID], release.offer, [fleet_key])
                outcome = wait_update(session, release.bid, {"installed", "rejected"}, 300)
                if outcome != "installed":
                    raise RuntimeError(f"release {version} was not installed: {outcome}")
                time.sleep(WATCH_S + 2.0)  # the watch window passes, the old model is released
        end = time.monotonic()
    finally:
        agent.terminate()
        results.close()
    figures = swap_figures(results.received(), list(events.values()), end)
    return figures, timeline(results, events)


def run(args: argparse.Namespace, work: Path) -> BenchResult:
    # The results subscriber must not lose what the agent delivered: no per-client queue cap.
    broker = MosquittoBroker(work / "broker", extra_config=["max_queued_messages 0"]).start()
    fleet_key = Ed25519PrivateKey.generate()
    world = AgentWorld(work / "device", get_converted_model(work / "models", "int8"), broker.url)
    (world.root / "fleet.pub").write_bytes(encode_release_public(fleet_key.public_key()))
    try:
        payload = work / "raw.bin"
        payload.write_bytes(os.urandom(args.mb * MB))
        raw = [raw_seconds(broker, payload) for _ in range(args.runs)]
        shm = Path(tempfile.mkdtemp(prefix="bench-update-", dir=TMPFS))
        shm_world = AgentWorld(
            shm, world.model, broker.url, release_key=world.release_key, device_key=world.device_key
        )
        (shm_world.root / "fleet.pub").write_bytes(encode_release_public(fleet_key.public_key()))
        try:
            worlds = {"disk": world, "tmpfs": shm_world}
            transfers = measure_transfers(broker, worlds, work, fleet_key, args)
        finally:
            shutil.rmtree(shm, ignore_errors=True)
        swaps, plot = measure_swaps(broker, world, work, fleet_key, args.runs)
    finally:
        broker.close()
    size = args.mb * MB / 1e6
    return BenchResult(
        key="update",
        title="Model updates: transfer against raw mosquitto, results across a swap",
        command=f"python -m bench.bench_update --runs {args.runs} --mb {args.mb}",
        setup=SETUP.format(mb=args.mb),
        measures=[
            *(
                Measure(
                    f"{args.mb} MB bundle, fleet upload → device holds every verified block; "
                    f"state dir on {phase}",
                    "MB/s",
                    [size / s for s in seconds],
                    [size / s for s in raw],
                    "`mosquitto_pub -f` → `mosquitto_sub`",
                    Target(0.5),
                )
                for phase, seconds in transfers.items()
            ),
            Measure(
                "longest gap between consecutive results during an install (push → next push)",
                "ms",
                swaps["swap_gap_ms"],
                [swaps["invoke_ms"]],
                "invoke p50",
                Target(2.0, at_least=False),
                digits=3,
            ),
            Measure(
                "median gap between results away from swaps",
                "ms",
                [swaps["steady_gap_ms"]],
                digits=3,
            ),
            Measure(
                "longest gap between results away from swaps (scheduling jitter)",
                "ms",
                [swaps["steady_max_ms"]],
                digits=3,
            ),
            Measure(
                "result sequence numbers missing across the swaps",
                "",
                [swaps["missing"]],
                target=Target(0, at_least=False, on_ratio=False),
                digits=0,
            ),
        ],
        plots=[plot],
        notes=NOTES,
    )


def timeline(results: Results, events: dict[str, float]) -> Plot:
    received = results.received()
    start = received[0][0]
    points = [(t - start, r.seq, f"release {r.model.version}") for t, r in received]
    marks = {name: at - start for name, at in events.items()}
    path = result_timeline(
        plot_path("update-swap-timeline.png"),
        points,
        "results at a subscriber while releases are pushed",
        marks,
    )
    return Plot(path, "result timeline across model swaps")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mb", type=int, default=25)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-update-") as work:
        return report(run(args, Path(work)))


def _big_bundle(world: AgentWorld, counter: int, size: int) -> bytes:
    return build_bundle(
        Release("digits", counter, int(time.time()) - 60),
        {"model.tflite": os.urandom(size)},
        [world.release_key],
        [RecipientKey(DEVICE_ID, world.device_key.public_key())],
    )


if __name__ == "__main__":
    raise SystemExit(main())
