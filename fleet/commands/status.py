"""``edge-fleet status [--device ID] [--json]``: the fleet from retained availability/status."""

from __future__ import annotations

import argparse
import json
import time

from fleet.commands.common import add_connection_arguments, settings_from
from fleet.connection import connect
from fleet.session import FleetSession
from fleet.status import FleetView, render_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", action="append", default=[], help="only this device (repeat)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    add_connection_arguments(parser)


def snapshot(args: argparse.Namespace) -> FleetView:
    settings = settings_from(args)
    with connect(settings) as client:
        return FleetSession(client, settings.topic_prefix).known


def run(args: argparse.Namespace) -> int:
    view = snapshot(args)
    rows = [r for r in view.rows() if not args.device or r.device_id in args.device]
    if args.json:
        print(json.dumps([r.to_obj() for r in rows], indent=2, sort_keys=True))
    else:
        print(render_table(rows, time.time()))
    missing = sorted(set(args.device) - {r.device_id for r in rows})
    return 1 if missing else 0
