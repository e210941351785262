"""What people read: counts by state and version, the failures listed, filters. Pure.

A fleet of 10,000 devices is not 10,000 lines: ``edge-fleet status`` prints the counts and the
devices that need attention (failed updates, unreadable statuses); the per-device table only
with ``--devices``. ``--json`` prints the same summary plus every row for scripts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.reader import ReadReport
from fleet.status import DeviceRow

FAILED_UPDATES = ("rejected", "rolled_back")
LISTED_FAILURES = 50


@dataclass(frozen=True)
class Filters:
    group: str | None = None
    state: str | None = None  # running, ..., or online/offline/unknown
    version: str | None = None  # VERSION or NAME:VERSION

    def keep(self, row: DeviceRow, groups: Sequence[str]) -> bool:
        if self.group is not None and self.group not in groups:
            return False
        if self.state is not None and self.state not in (row.state, online_word(row.online)):
            return False
        if self.version is not None:
            name, _, version = self.version.rpartition(":")
            if version != row.version or (name and name != row.model):
                return False
        return True


def online_word(online: bool | None) -> str:
    return {True: "online", False: "offline", None: "unknown"}[online]


def failure(row: DeviceRow) -> str | None:
    """Why ``row`` needs attention (a failed update, an unreadable status), else ``None``."""
    if row.problem is not None:
        return row.problem
    update = row.status.update if row.status is not None else None
    if update is not None and update.state in FAILED_UPDATES:
        return update.label + (f" ({update.detail})" if update.detail else "")
    return None


@dataclass(frozen=True)
class Summary:
    devices: int
    online: Counter[str]
    states: Counter[str]
    versions: Counter[str]
    updates: Counter[str]
    failures: tuple[tuple[str, str], ...]

    def to_obj(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "online": dict(self.online),
            "states": dict(self.states),
            "versions": dict(self.versions),
            "updates": dict(self.updates),
            "failures": [{"device": d, "reason": r} for d, r in self.failures],
        }


def summarize(rows: Iterable[DeviceRow]) -> Summary:
    listed = list(rows)
    return Summary(
        devices=len(listed),
        online=Counter(online_word(r.online) for r in listed),
        states=Counter(r.state for r in listed),
        versions=Counter(f"{r.model} {r.version}" if r.status else "-" for r in listed),
        updates=Counter(r.update for r in listed),
        failures=tuple((r.device_id, why) for r in listed if (why := failure(r)) is not None),
    )


def counts_text(counts: Counter[str]) -> str:
    return ", ".join(
        f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def summary_lines(summary: Summary, report: ReadReport | None = None) -> list[str]:
    lines = []
    if report is not None:
        lines.append(view_line(report))
    lines += [
        f"devices   {summary.devices} ({counts_text(summary.online)})",
        f"state     {counts_text(summary.states)}",
        f"version   {counts_text(summary.versions)}",
        f"update    {counts_text(summary.updates)}",
    ]
    if summary.failures:
        lines.append(f"failures  {len(summary.failures)}:")
        width = max(len(d) for d, _ in summary.failures[:LISTED_FAILURES])
        lines += [f"  {d.ljust(width)}  {r}" for d, r in summary.failures[:LISTED_FAILURES]]
        if len(summary.failures) > LISTED_FAILURES:
            lines.append(f"  ... and {len(summary.failures) - LISTED_FAILURES} more (--json)")
    return lines


def view_line(report: ReadReport) -> str:
    """``view      complete: 1000 of 1000 registered read (exact topics, 2.1 s)``."""
    how = f"{report.mode} topics" if report.mode == "exact" else "wildcard"
    if report.expected is None:
        return (
            f"view      {len(report.read)} device(s) announced ({how}, {report.seconds:.1f} s); "
            "no registry, so completeness is unknown"
        )
    state = "complete" if report.complete else "INCOMPLETE"
    text = f"view      {state}: {len(report.read)} of {report.expected} registered read"
    text += f" ({how}, {report.seconds:.1f} s)"
    if report.never_announced:
        text += f"; {len(report.never_announced)} never announced"
    if report.unregistered:
        text += f"; {len(report.unregistered)} announced but not registered"
    return text
