"""PNG plots for docs/benchmarks.md (matplotlib, the ``bench`` extra), written headless (Agg).

* :func:`latency_distribution`: empirical CDFs of several latency samples on one log axis
  (bench_agent: the agent's frame→publish latency against the bare ``invoke`` time).
* :func:`result_timeline`: results at a subscriber over time, one colour per model version, with
  marked events (bench_update: the result timeline across a model swap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_distribution(
    path: Path, series: Mapping[str, Sequence[float]], title: str, unit: str = "ms"
) -> Path:
    """One CDF per named sample, p50/p99 in the legend, log x axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, values in series.items():
        data = np.sort(np.asarray(values, dtype=float))
        if not data.size:
            continue
        p50, p99 = np.percentile(data, [50, 99])
        label = f"{name} (p50 {p50:.3g} {unit}, p99 {p99:.3g} {unit}, n={data.size})"
        ax.step(data, np.arange(1, data.size + 1) / data.size, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency ({unit}, log scale)")
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def result_timeline(
    path: Path,
    results: Sequence[tuple[float, int, str]],
    title: str,
    events: Mapping[str, float] | None = None,
) -> Path:
    """``results`` are ``(seconds since start, seq, model label)`` as seen by a subscriber;
    ``events`` maps a label (``"swap"``, ``"push"``) to its time on the same clock."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label in dict.fromkeys(model for _, _, model in results):
        points = [(t, seq) for t, seq, model in results if model == label]
        ax.plot(*zip(*points, strict=True), ".", markersize=2, label=label)
    for name, at in (events or {}).items():
        ax.axvline(at, color="grey", linestyle="--", linewidth=1)
        ax.annotate(name, (at, 0), xycoords=("data", "axes fraction"), rotation=90, fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("result seq")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def series_over_time(
    path: Path, samples: Sequence[tuple[float, float]], title: str, ylabel: str
) -> Path:
    """A simple line of ``(seconds, value)`` samples (the soak's RSS over time)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    if samples:
        ax.plot(*zip(*samples, strict=True), linewidth=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
