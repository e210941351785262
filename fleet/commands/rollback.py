"""``edge-fleet rollback --device ID``: a signed command to go back to the previous model slot."""

from __future__ import annotations

import argparse
import json
import time

from agent.errors import InputError
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.commands.push import fleet_signers
from fleet.connection import connect
from fleet.registry import Registry
from fleet.session import FleetSession
from fleet.status import DeviceRow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", action="append", required=True, help="device id (repeat)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)"
    )
    parser.add_argument("--no-wait", action="store_true", help="send and return")
    parser.add_argument("--json", action="store_true", help="the result as one JSON document")
    add_connection_arguments(parser)


def rollback_answer(row: DeviceRow | None) -> tuple[bool, str] | None:
    """``(ok, text)`` once a live status answers the rollback, else ``None``."""
    update = row.status.update if row is not None and row.status is not None else None
    if update is None or update.state not in ("rolled_back", "rejected"):
        return None
    model = row.status.model if row is not None and row.status is not None else None
    running = f"; running {model.name} {model.version}" if model is not None else ""
    return update.state == "rolled_back", update.label + running


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    devices = sorted(set(args.device))
    with connect(settings) as client:
        session = FleetSession(
            client,
            settings.topic_prefix,
            registry=Registry().with_devices(dict.fromkeys(devices, ())),
            read="exact",
        )
        offline = [d for d in devices if (r := session.known.row(d)) is None or not r.online]
        if offline:
            raise InputError(
                f"not online: {', '.join(offline)}; a rollback acts only on a connected device"
            )
        session.send_rollback(devices, signers)
        if args.no_wait:
            if args.json:
                print(json.dumps({"sent": devices}, indent=2))
            else:
                print(f"rollback sent to {', '.join(devices)}")
            return 0
        answers: dict[str, tuple[bool, str]] = {}
        deadline = time.monotonic() + args.timeout
        while len(answers) < len(devices) and time.monotonic() < deadline:
            for device in session.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
                answer = rollback_answer(session.live.row(device))
                if device in devices and answer is not None:
                    answers[device] = answer
    return report(devices, answers, args.json)


def report(devices: list[str], answers: dict[str, tuple[bool, str]], as_json: bool) -> int:
    """Exit 0 when every device rolled back; ``--json``: the shape of ``push --json``."""
    ok = len(answers) == len(devices) and all(ok for ok, _ in answers.values())
    if as_json:
        document = {
            "devices": len(devices),
            "rolled_back": sorted(d for d, (done, _) in answers.items() if done),
            "failed": {d: text for d, (done, text) in sorted(answers.items()) if not done},
            "no_answer": [d for d in devices if d not in answers],
            "answers": {d: text for d, (_, text) in sorted(answers.items())},
            "ok": ok,
        }
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0 if ok else 1
    for device in devices:
        text = answers.get(device, (False, "no answer before the timeout"))[1]
        print(f"{device}: {text}")
    return 0 if ok else 1
