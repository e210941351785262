"""``edge-fleet push BUNDLE (--device ID ... | --group G) [--wait]``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.container import Limits
from agent.bundle.files import read_bundle, read_input
from agent.bundle.keys import MAX_KEY_FILE, decode_release_private
from agent.errors import BundleRejected, InputError
from fleet.bundles import PreparedBundle, prepare_bundle
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.commands.display import Board, Counter
from fleet.connection import connect
from fleet.progress import install_outcome, progress_text
from fleet.publish import DEFAULT_WINDOW
from fleet.rollout import DeviceOutcome, Outcome
from fleet.session import FleetSession
from fleet.settings import FleetSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help=".edgepkg from `edge-convert bundle`")
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument("--device", action="append", help="target device id (repeat)")
    targets.add_argument("--group", help="every device whose status lists this group")
    add_wait_arguments(parser)
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
    session.publish_bundle(bundle, window=window, progress=Counter(f"publishing {label}"))


def wait_for_installs(
    session: FleetSession, devices: list[str], bid: str, timeout_s: float
) -> dict[str, DeviceOutcome]:
    """Show progress until every device installed or failed, or ``timeout_s`` passed."""
    board = Board(devices)
    outcomes: dict[str, DeviceOutcome] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for device in devices:
            live, known = session.live.row(device), session.known.row(device)
            online = known.online if known is not None else None
            board.update(device, progress_text(live, bid, online))
            outcomes[device] = install_outcome(live, bid)
        board.draw()
        done = all(o.outcome is not Outcome.PENDING for o in outcomes.values())
        if done or time.monotonic() >= deadline:
            return outcomes
        session.poll(min(1.0, max(0.0, deadline - time.monotonic())))


def report(outcomes: dict[str, DeviceOutcome]) -> int:
    failed = {d: o for d, o in outcomes.items() if o.outcome is not Outcome.INSTALLED}
    for device, outcome in sorted(failed.items()):
        why = outcome.reason if outcome.outcome is Outcome.FAILED else "no answer before timeout"
        print(f"{device}: not installed: {why}")
    installed = len(outcomes) - len(failed)
    print(f"{installed} of {len(outcomes)} device(s) installed")
    return 0 if not failed else 1


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    bundle = load_bundle(args.bundle)
    with connect(settings) as client:
        session = FleetSession(client, settings.topic_prefix)
        devices = sorted(set(args.device or session.group(args.group)))
        if not devices:
            raise InputError(f"no device's status lists group {args.group!r}")
        upload(session, bundle, args.window)
        session.send_desired(devices, bundle.offer, signers)
        print(f"desired state sent to {len(devices)} device(s): {', '.join(devices[:10])}")
        if not args.wait:
            return 0
        return report(wait_for_installs(session, devices, bundle.bid, args.timeout))
