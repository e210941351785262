"""The swap figures of :mod:`bench.bench_update`: gaps between results in the swap window and in
a window as long without an update, from the results a subscriber received."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.mqtt.messages import ResultMessage
from bench.plots import result_timeline
from bench.report import Measure, Plot, Target, plot_path

SWAP_MARGIN_S = 0.5  # after "installed": the loop swaps on its next turn
QUIET_LEAD_S = 0.5


@dataclass(frozen=True)
class Install:
    """One release pushed: wall-clock push time and when the device reported it installed."""

    pushed: float
    installed: float


def swap_figures(
    received: list[tuple[float, ResultMessage]], installs: Sequence[Install]
) -> dict[str, Any]:
    """Per install, the longest gap between consecutive results (device timestamps) in its swap
    window -- push until ``SWAP_MARGIN_S`` after the device reported it installed: transfer,
    decrypt, canary, load and the swap itself -- and in a window as long that ends
    ``QUIET_LEAD_S`` before the push (the machine's own jitter, nothing updating)."""
    live = sorted((r for _, r in received if not r.historical), key=lambda r: r.seq)
    seqs = [r.seq for r in live]
    stamps = [r.ts for r in live]

    def longest(start: float, stop: float) -> float:
        gaps = [b - a for a, b in itertools.pairwise(stamps) if start <= b and a <= stop]
        return max(gaps) * 1000

    swap, quiet = [], []
    for install in installs:
        length = install.installed + SWAP_MARGIN_S - install.pushed
        swap.append(longest(install.pushed, install.pushed + length))
        quiet_end = install.pushed - QUIET_LEAD_S
        if quiet_end - length < stamps[0]:
            raise RuntimeError(f"no results for a quiet window of {length:.1f} s before a push")
        quiet.append(longest(quiet_end - length, quiet_end))
    return {
        "missing": len(set(range(seqs[0], seqs[-1] + 1)) - set(seqs)),
        "latency_ms": statistics.median(r.latency_ms for r in live),
        "median_gap_ms": statistics.median((b - a) * 1000 for a, b in itertools.pairwise(stamps)),
        "swap_gap_ms": swap,
        "quiet_gap_ms": quiet,
        "window_s": [i.installed + SWAP_MARGIN_S - i.pushed for i in installs],
    }


def swap_measures(name: str, swaps: dict[str, Any]) -> list[Measure]:
    latency = [swaps["latency_ms"]]
    window = f"{statistics.median(swaps['window_s']):.1f} s"
    return [
        Measure(
            f"{name}: longest gap between results in the swap window "
            f"(push → installed + {SWAP_MARGIN_S:g} s, median {window})",
            "ms",
            swaps["swap_gap_ms"],
            latency,
            "inference p50",
            Target(2.0, at_least=False),
            digits=2,
        ),
        Measure(
            f"{name}: longest gap between results in a window as long just before the push "
            "(no update)",
            "ms",
            swaps["quiet_gap_ms"],
            latency,
            "inference p50",
            digits=2,
        ),
        Measure(
            f"{name}: swap window's longest gap against the window without an update",
            "ms",
            swaps["swap_gap_ms"],
            swaps["quiet_gap_ms"],
            "no update",
            digits=2,
        ),
        Measure(f"{name}: median gap between results", "ms", [swaps["median_gap_ms"]], digits=3),
        Measure(
            f"{name}: result sequence numbers missing across the swaps",
            "",
            [swaps["missing"]],
            target=Target(0, at_least=False, on_ratio=False),
            digits=0,
        ),
    ]


def timeline(
    received: list[tuple[float, ResultMessage]], installs: Sequence[Install], name: str
) -> Plot:
    start = received[0][1].ts
    points = [(r.ts - start, r.seq, f"release {r.model.version}") for _, r in received]
    marks = {f"push {i + 2}": install.pushed - start for i, install in enumerate(installs)}
    path = result_timeline(
        plot_path(f"update-swap-timeline-{name}.png"),
        points,
        f"{name}: results (device timestamps) while releases are pushed",
        marks,
    )
    return Plot(path, f"{name}: result timeline across model swaps")
