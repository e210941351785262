"""``edge-fleet status``: counts by state and version, failures; ``--devices`` for the table.

Exit status 1 when the view is incomplete (registered devices not read, messages dropped) or a
``--device`` asked for is unknown; the numbers are printed either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from fleet.commands.common import (
    add_connection_arguments,
    add_view_arguments,
    open_session,
    settings_from,
)
from fleet.connection import connect
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
    report = session.report
    summary = summarize(rows)
    missing = sorted(set(args.device) - {r.device_id for r in rows if r.status or r.online})
    if args.json:
        document = {
            "view": report.to_obj(),
            "summary": summary.to_obj(),
            "unknown_devices": missing,
            "devices": [r.to_obj() for r in rows],
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print("\n".join(summary_lines(summary, report)))
        if args.devices or args.device:
            print(render_table(rows, time.time()))
        for device in missing:
            print(f"unknown device: {device}", file=sys.stderr)
    if not report.complete and report.expected is not None:
        print(f"edge-fleet: the fleet view is incomplete: {report.problem()}", file=sys.stderr)
        return 1
    return 1 if missing else 0
