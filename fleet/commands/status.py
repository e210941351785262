"""``edge-fleet status``: counts by state and version, failures; ``--devices`` for the table.

Exit status 1 when the view is incomplete (registered devices not read, messages dropped) or a
``--device`` asked for is unknown; the numbers are printed either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fleet.commands.common import (
    add_connection_arguments,
    add_view_arguments,
    open_session,
    settings_from,
)
from fleet.connection import connect
from fleet.reports import ReportCheck, check_report, load_seen, read_reports, save_seen, seen_path
from fleet.session import FleetSession
from fleet.status import DeviceRow, render_table
from fleet.summary import Filters, summarize, summary_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", action="append", default=[], help="only this device (repeat)")
    parser.add_argument("--group", help="only devices of this group")
    parser.add_argument("--state", help="only this state (running, ...; online, offline, unknown)")
    parser.add_argument("--version", dest="model_version", help="only VERSION or NAME:VERSION")
    parser.add_argument("--devices", action="store_true", help="the per-device table too")
    parser.add_argument("--json", action="store_true", help="one JSON document (every row)")
    add_view_arguments(parser)
    add_connection_arguments(parser)


def selected_rows(session: FleetSession, args: argparse.Namespace) -> list[DeviceRow]:
    filters = Filters(args.group, args.state, args.model_version)
    members = set(session.group(args.group)) if args.group else set()
    rows = []
    ids = {r.device_id for r in session.known.rows()}
    if session.registry is not None:
        ids |= set(session.registry.ids())
    for device in sorted(ids):
        row = session.known.row(device) or DeviceRow(device)
        groups = [args.group] if device in members else []
        if args.device and device not in args.device:
            continue
        if filters.keep(row, groups):
            rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with connect(settings) as client:
        session = open_session(client, settings, args)
        rows = selected_rows(session, args)
        envelopes = read_reports(client, settings.topic_prefix)
    checks = _check_reports(session, rows, envelopes, settings.registry)
    report = session.report
    summary = summarize(rows)
    missing = sorted(set(args.device) - {r.device_id for r in rows if r.status or r.online})
    if args.json:
        document = {
            "view": report.to_obj(),
            "summary": summary.to_obj(),
            "unknown_devices": missing,
            "devices": [r.to_obj() for r in rows],
            "reports": {d: c.to_obj() for d, c in checks.items()},
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(summary, report)))
        if args.devices or args.device:
            print(render_table(rows, time.time()))
        for line in _report_lines(checks):
            print(line)
        for device in missing:
            print(f"unknown device: {device}", file=sys.stderr)
    if not report.complete and report.expected is not None:
        print(f"edge-fleet: the fleet view is incomplete: {report.problem()}", file=sys.stderr)
        return 1
    return 1 if missing else 0


def _check_reports(
    session: FleetSession,
    rows: list[DeviceRow],
    envelopes: dict[str, bytes],
    registry_path: Path | None,
) -> dict[str, ReportCheck]:
    """Each row's signed report checked; none at all when no device reports and no report key
    is registered. The highest verified counters are kept beside the registry."""
    registry = session.registry
    keyed = registry is not None and bool(registry.report_keys)
    if not envelopes and not keyed:
        return {}
    path = seen_path(registry_path) if registry_path is not None else None
    seen = load_seen(path) if path is not None else {}
    checks = {}
    for row in rows:
        key = registry.report_key(row.device_id) if registry is not None else None
        model = row.status.model if row.status is not None else None
        check = check_report(
            row.device_id, envelopes.get(row.device_id), key, model, seen.get(row.device_id)
        )
        checks[row.device_id] = check
        if check.state == "verified" and check.report is not None:
            seen[row.device_id] = max(seen.get(row.device_id, 0), check.report.counter)
    if path is not None and seen:
        save_seen(path, seen)
    return checks


def _report_lines(checks: dict[str, ReportCheck]) -> list[str]:
    if not checks:
        return []
    flagged = sum(c.flagged for c in checks.values())
    lines = [f"signed reports: {len(checks) - flagged} verified, {flagged} flagged"]
    lines += [
        f"  {device}  {'FLAGGED ' if check.flagged else ''}{check.label()}"
        for device, check in sorted(checks.items())
    ]
    return lines
