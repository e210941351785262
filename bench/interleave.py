"""Pure helpers of ``bench/bench_agent.py``: run order, per-run ratios, the summary table.

Within one run the three sides go back to back, the order rotated from run to run, so a change
in host load hits each side alike; a ratio is taken within each run and the median of those
per-run ratios is what is reported (never a ratio of medians taken at different times).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

SIDES = ("bare", "script", "agent")


def order(run: int, sides: Sequence[str] = SIDES) -> tuple[str, ...]:
    """The sides in the order run ``run`` takes them: rotated by one place per run."""
    shift = run % len(sides)
    return tuple(sides[shift:]) + tuple(sides[:shift])


def per_run_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """``numerator[r] / denominator[r]`` for every run ``r`` (both measured in that run)."""
    if len(numerator) != len(denominator):
        raise ValueError(f"{len(numerator)} runs against {len(denominator)}: not one per run")
    return [n / d if d else 0.0 for n, d in zip(numerator, denominator, strict=True)]


@dataclass(frozen=True)
class Row:
    """One model and thread count: results/s of each side per run, and the two targets."""

    model: str
    threads: int
    bare: Sequence[float]
    script: Sequence[float]
    agent: Sequence[float]
    vs_bare: float | None = None
    vs_script: float | None = None

    @property
    def agent_vs_bare(self) -> list[float]:
        return per_run_ratios(self.agent, self.bare)

    @property
    def agent_vs_script(self) -> list[float]:
        return per_run_ratios(self.agent, self.script)


def _verdict(ratios: Sequence[float], target: float | None) -> str:
    """``median (run, run, ...)`` and, with a target, whether the median meets it."""
    value = statistics.median(ratios)
    runs = ", ".join(f"{r:.2f}" for r in ratios)
    text = f"**{value:.2f}** ({runs})"
    if target is None:
        return text
    return f"{text} ≥ {target:g}: {'met' if value >= target else '**missed**'}"


def ratio_table(rows: Sequence[Row]) -> str:
    """Issue 14's table: medians of results/s per side; ratios as median (each run's)."""
    lines = [
        "| model | threads | bare invoke loop | user script | edge-agent run "
        "| agent ÷ bare | agent ÷ script |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        rates = (statistics.median(side) for side in (row.bare, row.script, row.agent))
        lines.append(
            f"| {row.model} | {row.threads} | "
            + " | ".join(f"{rate:,.1f} /s" for rate in rates)
            + f" | {_verdict(row.agent_vs_bare, row.vs_bare)}"
            + f" | {_verdict(row.agent_vs_script, row.vs_script)} |"
        )
    return "\n".join(lines)
