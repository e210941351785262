"""Simulated agents (``bench.sim_agent``) on a test broker, and edge-fleet arguments for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.bundle.keys import encode_private
from bench.fleet_sim import GROUP, PREFIX, Broker, Keys, parse_args, start_workers
from fleet.registry import Registry, save_registry


def fleet_files(tmp_path: Path, keys: Keys, agents: int) -> list[str]:
    """``--prefix``, ``--fleet-key`` and ``--registry`` (every agent, group ``sim``)."""
    key = tmp_path / "fleet.key"
    key.write_bytes(encode_private(keys.fleet))
    registry = tmp_path / "devices.json"
    devices = {f"dev-{i:05d}": [GROUP] for i in range(agents)}
    save_registry(registry, Registry().with_devices(devices))
    return ["--prefix", PREFIX, "--fleet-key", str(key), "--registry", str(registry)]


@contextmanager
def sim_agents(
    broker: Broker, tmp_path: Path, keys: Keys, agents: int, *extra: str, fail_rate: float = 0.0
) -> Iterator[Any]:
    """``agents`` simulated devices over 2 processes; yields the come-back event."""
    args = parse_args(["--agents", str(agents), "--workers", "2", *extra])
    processes, (stop, back) = start_workers(broker, keys, args, tmp_path, fail_rate)
    try:
        yield back
    finally:
        stop.set()
        for process in processes:
            process.join(30)
