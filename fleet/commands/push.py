"""``edge-fleet push BUNDLE (--device ID ... | --group G) [--wait]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.container import Limits
from agent.bundle.files import read_bundle, read_input
from agent.bundle.keys import MAX_KEY_FILE, decode_release_private
from agent.errors import BundleRejected, InputError
from fleet.bundles import PreparedBundle, prepare_bundle
from fleet.commands.common import (
    add_connection_arguments,
    add_view_arguments,
    open_session,
    require_complete,
    settings_from,
)
from fleet.commands.display import Board
from fleet.commands.display import Counter as UploadCounter
from fleet.connection import connect
from fleet.progress import install_outcome, progress_text, update_for
from fleet.publish import DEFAULT_WINDOW
from fleet.rollout import DeviceOutcome, Outcome
from fleet.session import FleetSession
from fleet.settings import FleetSettings
from fleet.status import DeviceRow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help=".edgepkg from `edge-convert bundle`")
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument("--device", action="append", help="target device id (repeat)")
    targets.add_argument("--group", help="every device whose status lists this group")
    add_wait_arguments(parser)
    parser.add_argument("--per-device", action="store_true", help="a progress line per device")
    parser.add_argument("--json", action="store_true", help="the result as one JSON document")
    add_view_arguments(parser)
    add_connection_arguments(parser)


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until every device answered")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"publishes in flight while uploading the bundle (default {DEFAULT_WINDOW})",
    )


def fleet_signers(settings: FleetSettings, co_sign: Sequence[Path] = ()) -> list[Ed25519PrivateKey]:
    """The fleet key and every ``--co-sign`` key: a device with ``keys.fleet_threshold`` k needs
    k distinct fleet keys on each command."""
    paths = [settings.require_fleet_key(), *co_sign]
    return [decode_release_private(read_input(p, MAX_KEY_FILE, "fleet key"), str(p)) for p in paths]


def load_bundle(path: Path) -> PreparedBundle:
    try:
        return prepare_bundle(read_bundle(path, Limits()))
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    except BundleRejected as exc:
        raise InputError(f"{path} is not a valid bundle: {exc}") from None


def upload(session: FleetSession, bundle: PreparedBundle, window: int) -> None:
    manifest = bundle.manifest
    label = f"bundle {manifest.name} #{manifest.counter} ({bundle.bid})"
    session.publish_bundle(bundle, window=window, progress=UploadCounter(f"publishing {label}"))


def wait_for_installs(
    session: FleetSession,
    devices: list[str],
    bid: str,
    timeout_s: float,
    *,
    per_device: bool = False,
) -> dict[str, DeviceOutcome]:
    """Show progress until every online device installed or failed, or ``timeout_s`` passed.

    Progress goes to stderr: one counts line (``installed 12, downloading 30, ...``) on each
    change, or with ``per_device`` a line per device (redrawn in place on a terminal)."""
    board = Board(devices, sys.stderr) if per_device else None
    outcomes: dict[str, DeviceOutcome] = {}
    deadline = time.monotonic() + timeout_s
    last_line = ""
    while True:
        counts: Counter[str] = Counter()
        for device in devices:
            live = session.live.row(device)
            online = session.online(device)
            outcomes[device] = install_outcome(live, bid)
            counts[_progress_word(live, bid, outcomes[device], online)] += 1
            if board is not None:
                board.update(device, progress_text(live, bid, online))
        if board is not None:
            board.draw()
        line = "  ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        if board is None and line != last_line:
            print(line, file=sys.stderr, flush=True)
            last_line = line
        done = all(
            o.outcome is not Outcome.PENDING or not session.online(d) for d, o in outcomes.items()
        )
        if done or time.monotonic() >= deadline:
            return outcomes
        session.poll(min(1.0, max(0.0, deadline - time.monotonic())))


def _progress_word(row: DeviceRow | None, bid: str, outcome: DeviceOutcome, online: bool) -> str:
    if outcome.outcome is Outcome.INSTALLED:
        return "installed"
    if outcome.outcome is Outcome.FAILED:
        return "failed"
    update = update_for(row, bid)
    if update is not None:
        return update.state
    return "waiting" if online else "offline"


def result(session: FleetSession, outcomes: dict[str, DeviceOutcome]) -> dict[str, Any]:
    installed = sorted(d for d, o in outcomes.items() if o.outcome is Outcome.INSTALLED)
    failed = {d: o.reason for d, o in outcomes.items() if o.outcome is Outcome.FAILED}
    pending = [d for d, o in outcomes.items() if o.outcome is Outcome.PENDING]
    offline = sorted(d for d in pending if not session.online(d))
    silent = sorted(d for d in pending if session.online(d))
    return {
        "devices": len(outcomes),
        "installed": len(installed),
        "failed": dict(sorted(failed.items())),
        "no_answer": silent,
        "offline": offline,
        "ok": not failed and not silent,
    }


def report(outcome: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(outcome, indent=2, sort_keys=True))
    else:
        print(
            f"{outcome['installed']} of {outcome['devices']} device(s) installed, "
            f"{len(outcome['failed'])} failed, {len(outcome['no_answer'])} no answer, "
            f"{len(outcome['offline'])} offline (they install when they reconnect)"
        )
        for device, why in outcome["failed"].items():
            print(f"  failed     {device}  {why}")
        for device in outcome["no_answer"]:
            print(f"  no answer  {device}")
    return 0 if outcome["ok"] else 1


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    bundle = load_bundle(args.bundle)
    with connect(settings) as client:
        session = open_session(client, settings, args)
        require_complete(session, args)
        devices = sorted(set(args.device or session.group(args.group)))
        if not devices:
            raise InputError(f"no device is registered in or publishes group {args.group!r}")
        upload(session, bundle, args.window)
        session.send_desired(devices, bundle.offer, signers)
        offline = sum(not session.online(d) for d in devices)
        print(
            f"desired state sent to {len(devices)} device(s) ({offline} offline: they get it "
            "when they reconnect)",
            file=sys.stderr,
        )
        if not args.wait:
            if args.json:
                print(json.dumps({"bundle": bundle.bid, "sent": devices}, indent=2))
            return 0
        outcomes = wait_for_installs(
            session, devices, bundle.bid, args.timeout, per_device=args.per_device
        )
        return report(result(session, outcomes), args.json)
