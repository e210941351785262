"""Fleet simulation: a staged rollout of one model to N simulated agents through one mosquitto.

    .venv/bin/python -m bench.fleet_sim [--agents 1000] [--workers 4] [--model-mb 5]
        [--canary 10] [--batch 250] [--max-failures 10] [--fail-rate 0.002]
        [--abort-fail-rate 0.2] [--json results.json]

The fleet side is the real ``edge-fleet rollout`` code (:class:`fleet.commands.rollout.
Rollout` over a :class:`~fleet.session.FleetSession`); the devices are
:mod:`bench.sim_agent` (the device's real command, verification, transfer and partial-file code;
simulated inference), ``--workers`` processes with one event loop each. Two rollouts run:

1. release 2 with ``--fail-rate`` of injected canary failures: time to canary, time to all,
   broker CPU and memory;
2. release 3 with ``--abort-fail-rate``: the abort path (the rollout stops, devices that
   installed are rolled back by signed commands).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.crypto import raw_public
from agent.bundle.keys import encode_private
from bench.sim_agent import GROUP, SimConfig, fails_canary, run_worker
from fleet.bundles import prepare_bundle
from fleet.connection import connect
from fleet.registry import Registry, save_registry
from fleet.rollout import Action, Outcome, plan_rollout
from fleet.rollout_state import RolloutOptions
from fleet.runner import Rollout
from fleet.session import FleetSession
from fleet.settings import FleetSettings
from tests.support.broker import MosquittoBroker

PREFIX = "sim"
DEFAULT_LOGGING = ["log_type none", *(f"log_type {t}" for t in ("error", "warning", "notice"))]
SEED = "fleet-sim-1"


class BrokerSampler:
    """CPU seconds and resident memory of the broker process, sampled from /proc."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self.peak_rss = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def rss(self) -> int:
        for line in Path(f"/proc/{self._pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_rss = max(self.peak_rss, self.rss())

    def __enter__(self) -> BrokerSampler:
        self.peak_rss = self.rss()
        self._cpu0 = self.cpu_s()
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_used = self.cpu_s() - self._cpu0
        self.wall = time.monotonic() - self._t0


@dataclass
class Keys:
    release: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    fleet: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    group: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)

    def bundle(self, counter: int, model_bytes: int) -> bytes:
        return build_bundle(
            Release("sim", counter, int(time.time()) - 60, block_size=128 << 10),
            {"model.tflite": os.urandom(model_bytes)},
            [self.release],
            [RecipientKey(f"group:{GROUP}", self.group.public_key())],
        )


class Broker(Protocol):
    """What the simulation needs of a broker (mosquitto, or an Aedes node in the tests)."""

    host: str
    port: int

    @property
    def url(self) -> str: ...


def start_workers(
    broker: Broker, keys: Keys, args: argparse.Namespace, root: Path, fail_rate: float
) -> tuple[list[Any], Any]:
    context = multiprocessing.get_context("spawn")
    ready, stop, back = context.Queue(), context.Event(), context.Event()
    devices = [f"dev-{i:05d}" for i in range(args.agents)]
    offline, flapping = special_devices(args)
    processes = []
    for worker in range(args.workers):
        config = SimConfig(
            host=broker.host,
            port=broker.port,
            prefix=PREFIX,
            devices=tuple(devices[worker :: args.workers]),
            state_root=args.device_dir / root.name,
            release_keys=(raw_public(keys.release.public_key()),),
            fleet_keys=(raw_public(keys.fleet.public_key()),),
            group_key_pem=encode_private(keys.group),
            fail_rate=fail_rate,
            seed=SEED,
            protocol=args.protocol,
            offline=tuple(d for d in devices[worker :: args.workers] if d in offline),
            come_back_s=args.come_back,
            flapping=tuple(d for d in devices[worker :: args.workers] if d in flapping),
            ports=tuple(args.ports),
        )
        process = context.Process(target=run_worker, args=(config, ready, stop, back), daemon=True)
        process.start()
        processes.append(process)
    connected = sum(ready.get(timeout=600) for _ in processes)
    assert connected == args.agents - len(offline), connected
    return processes, (stop, back)


def came_back(
    broker: Broker, args: argparse.Namespace, devices: set[str], counter: int
) -> dict[str, str]:
    """What each device that was offline during the rollout runs once it is back (and had
    time to fetch and install anything retained for it): ``version update-label``."""
    settings = FleetSettings(
        url=broker.url, topic_prefix=PREFIX, client_id="fleet-sim-check", protocol=args.protocol
    )
    registry = Registry().with_devices({d: [GROUP] for d in devices})
    deadline = time.monotonic() + args.settle_back
    with connect(settings) as client:
        session = FleetSession(client, PREFIX, registry=registry)
        while time.monotonic() < deadline:
            session.poll(1.0)
    return {
        d: f"{row.version} {row.update}" if (row := session.known.row(d)) else "unknown"
        for d in sorted(devices)
    }


def time_status(broker: Broker, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """``edge-fleet status`` of the whole simulated fleet in its own process: wall time, exit
    code and its first lines (the read: complete or not, and the counts)."""
    registry = root / "devices.json"
    save_registry(registry, Registry().with_devices({d: [GROUP] for d in device_ids(args)}))
    command = [sys.executable, "-m", "fleet.cli", "status", "--url", broker.url, "--prefix",
               PREFIX, "--registry", str(registry), "--protocol", args.protocol]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    return {
        "command": "edge-fleet status --prefix sim --registry devices.json",
        "seconds": round(time.monotonic() - started, 2),
        "exit": done.returncode,
        "head": done.stdout.splitlines()[:4],
    }


def device_ids(args: argparse.Namespace) -> list[str]:
    return [f"dev-{i:05d}" for i in range(args.agents)]


def special_devices(args: argparse.Namespace) -> tuple[set[str], set[str]]:
    """``--offline`` and ``--flapping`` devices, spread over the fleet (never canaries)."""
    devices = [f"dev-{i:05d}" for i in range(args.canary, args.agents)]
    offline = (
        set(devices[:: max(1, len(devices) // args.offline)][: args.offline])
        if args.offline
        else set()
    )
    rest = [d for d in devices if d not in offline]
    step = max(1, len(rest) // args.flapping) if args.flapping else 0
    flapping = set(rest[1::step][: args.flapping]) if args.flapping else set()
    return offline, flapping


def log_to(lines: list[str], args: argparse.Namespace, start: float) -> Callable[[str], None]:
    """The rollout's log kept in ``lines`` (and on stderr with ``--progress``)."""

    def log(line: str) -> None:
        lines.append(line)
        if args.progress:
            print(f"{time.monotonic() - start:7.1f} s  {line}", file=sys.stderr, flush=True)

    return log


def rollout(
    broker: MosquittoBroker,
    keys: Keys,
    data: bytes,
    args: argparse.Namespace,
    max_failures: int,
) -> dict[str, Any]:
    settings = FleetSettings(
        url=broker.url, topic_prefix=PREFIX, client_id="fleet-sim", protocol=args.protocol
    )
    bundle = prepare_bundle(data)
    lines: list[str] = []
    registry = Registry().with_devices({f"dev-{i:05d}": [GROUP] for i in range(args.agents)})
    with connect(settings) as client, BrokerSampler(broker.pid or 0) as sampler:
        view_start = time.monotonic()
        session = FleetSession(client, PREFIX, registry=registry)
        view_s = time.monotonic() - view_start
        group = session.group(GROUP)
        plan = plan_rollout(group, canary=args.canary, batch=args.batch, max_failures=max_failures)
        start = time.monotonic()
        session.publish_bundle(bundle, window=16)
        uploaded = time.monotonic() - start
        options = RolloutOptions(
            stage_timeout_s=args.stage_timeout,
            offline=args.offline_policy,
            wait_offline_s=args.wait_offline,
            max_failures=max_failures,
        )
        runner = Rollout(
            session, bundle, plan, [keys.fleet], options=options, log=log_to(lines, args, start)
        )
        decision = runner.run()
        total = time.monotonic() - start
    outcomes = runner.outcomes
    return {
        "view": session.report.to_obj() | {"unread": len(session.report.unread)},
        "view_s": round(view_s, 2),
        "skipped_offline": sum(o.outcome is Outcome.SKIPPED for o in outcomes.values()),
        "devices_seen": len(group),
        "bundle_bytes": len(data),
        "blocks": bundle.offer.blocks,
        "upload_s": round(uploaded, 2),
        "stage_done_s": [round(uploaded + t, 2) for t in runner.stage_times],
        "time_to_canary_s": round(uploaded + runner.stage_times[0], 2),
        "time_to_end_s": round(total, 2),
        "decision": decision.action.value,
        "reason": decision.reason,
        "installed": sum(o.outcome is Outcome.INSTALLED for o in outcomes.values()),
        "rejected": sum(o.reason.startswith("rejected") for o in outcomes.values()),
        "rolled_back": len(runner.rolled_back),
        "withdrawn": sum(o.reason == "rejected:withdrawn" for o in outcomes.values()),
        "still_installed": sorted(d for d in runner.rolled_back if runner.is_installed(d)),
        "broker_cpu_s": round(sampler.cpu_used, 2),
        "broker_cpu_pct": round(100 * sampler.cpu_used / max(sampler.wall, 1e-9), 1),
        "broker_peak_rss_mb": round(sampler.peak_rss / 1e6, 1),
        "log_tail": lines[-6:],
        "aborted": decision.action is Action.ABORT,
    }


def simulate(
    args: argparse.Namespace, fail_rate: float, counter: int, max_failures: int
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="fleet-sim-"))
    keys = Keys()
    # Default queues (the view needs none) and mosquitto's default logging: the fixture's
    # ``log_type all`` writes a line per packet, which would be most of the broker's CPU here.
    broker = MosquittoBroker(root / "broker", extra_config=DEFAULT_LOGGING).start()
    try:
        idle_rss = 0
        with BrokerSampler(broker.pid or 0) as idle:
            processes, (stop, back) = start_workers(broker, keys, args, root, fail_rate)
            idle_rss = idle.rss()
        data = keys.bundle(counter, args.model_mb << 20)
        result = rollout(broker, keys, data, args, max_failures)
        result["broker_rss_connected_mb"] = round(idle_rss / 1e6, 1)
        if args.time_status:
            result["status_command"] = time_status(broker, args, root)
        if args.offline and args.come_back is None:
            back.set()  # the offline devices reconnect now that the rollout is over
            result["came_back"] = came_back(broker, args, special_devices(args)[0], counter)
        result["expected_failures"] = sum(
            fails_canary(f"dev-{i:05d}", SEED, fail_rate) for i in range(args.agents)
        )
        stop.set()
        for process in processes:
            process.join(30)
        return result
    finally:
        broker.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(args.device_dir / root.name, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--model-mb", type=int, default=5)
    parser.add_argument("--canary", type=int, default=10)
    parser.add_argument("--batch", default="250", help="N or P%% of the group")
    parser.add_argument("--max-failures", type=int, default=10)
    parser.add_argument("--fail-rate", type=float, default=0.002)
    parser.add_argument("--abort-fail-rate", type=float, default=0.2)
    parser.add_argument("--stage-timeout", type=float, default=900.0)
    parser.add_argument(
        "--device-dir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir()),
        help="where simulated devices keep partial files (tmpfs: one VM disk cannot stand in "
        "for 1000 SD cards' fsyncs)",
    )
    parser.add_argument(
        "--scenarios", default="rollout,abort", help="which of rollout,abort to run"
    )
    parser.add_argument("--offline", type=int, default=0, help="devices offline at the start")
    parser.add_argument("--come-back", type=float, default=None, help="s until they reconnect")
    parser.add_argument("--offline-policy", choices=("skip", "wait"), default="skip")
    parser.add_argument("--wait-offline", type=float, default=300.0)
    parser.add_argument(
        "--settle-back", type=float, default=15.0, help="s to watch devices that came back"
    )
    parser.add_argument("--flapping", type=int, default=0, help="devices that keep reconnecting")
    parser.add_argument("--protocol", default="5", choices=("5", "3.1.1"))
    parser.add_argument("--ports", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--progress", action="store_true", help="the rollout's log on stderr as it goes"
    )
    parser.add_argument(
        "--time-status", action="store_true", help="time `edge-fleet status` after the rollout"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = {
        "command": "python -m bench.fleet_sim " + " ".join(sys.argv[1:] if argv is None else argv),
        "load_average_at_start": os.getloadavg()[0],
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "agents": args.agents,
        "workers": args.workers,
    }
    rates = {"rollout": args.fail_rate, "abort": args.abort_fail_rate}
    for scenario in args.scenarios.split(","):
        results[scenario] = simulate(args, rates[scenario], 2, args.max_failures)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
