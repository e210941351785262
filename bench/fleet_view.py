"""How long the fleet view takes, and whether it is complete, on a default-config mosquitto.

    .venv/bin/python -m bench.fleet_view [--devices 10000] [--runs 3]

Publishes ``--devices`` devices' retained ``status`` and ``availability`` (the bytes an agent
publishes) to a fresh mosquitto with its default configuration, then reads the view ``--runs``
times each way: ``exact`` (the registry's exact-topic reads) and ``wildcard``. Prints JSON:
seconds, devices read, complete, broker CPU seconds and peak RSS per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.fleet_sim import BrokerSampler
from fleet.connection import connect
from fleet.registry import Registry
from fleet.session import FleetSession
from fleet.settings import FleetSettings
from tests.fleet.test_fleet_view_broker import announce
from tests.support.broker import MosquittoBroker


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="fleet-view-"))
    broker = MosquittoBroker(root).start()
    try:
        devices = [f"dev-{i:05d}" for i in range(args.devices)]
        announce(broker, devices)
        registry = Registry().with_devices({d: ["lab"] for d in devices})
        results: dict[str, list[dict[str, object]]] = {}
        for mode in ("exact", "wildcard"):
            for _ in range(args.runs):
                settings = FleetSettings(url=broker.url, client_id="fleet-view")
                with BrokerSampler(broker.pid or 0) as sampler, connect(settings) as client:
                    start = time.monotonic()
                    session = FleetSession(client, "edge", registry=registry, read=mode)
                    seconds = time.monotonic() - start
                results.setdefault(mode, []).append(
                    {
                        "seconds": round(seconds, 2),
                        "read": len(session.report.read),
                        "complete": session.report.complete,
                        "broker_cpu_s": round(sampler.cpu_used, 2),
                        "broker_peak_rss_mb": round(sampler.peak_rss / 1e6, 1),
                    }
                )
        print(json.dumps({"devices": args.devices, **results}, indent=2))
    finally:
        broker.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
