"""Counters and rolling statistics for the status topic (pure), plus two tiny readers.

``RollingStats`` keeps the last N latencies and the timestamps of the last N results so fps and
p50/p95 are cheap to compute on demand; nothing is done per frame beyond an append.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class RollingStats:
    window: int = 512
    _latencies: deque[float] = field(init=False)
    _times: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        self._latencies = deque(maxlen=self.window)
        self._times = deque(maxlen=self.window)

    def add(self, latency_s: float, now: float) -> None:
        self._latencies.append(latency_s)
        self._times.append(now)

    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        if not self._latencies:
            return None
        return float(np.percentile(np.fromiter(self._latencies, dtype=np.float64), q)) * 1000.0


def rss_bytes(status_path: Path = Path("/proc/self/status")) -> int | None:
    """Resident set size of this process (Linux), or None where it cannot be read."""
    try:
        for line in status_path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_temperature_c(zone: Path = Path("/sys/class/thermal/thermal_zone0/temp")) -> float | None:
    """CPU temperature in °C where the kernel exposes it (a Raspberry Pi does), else None."""
    try:
        return int(zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
