"""``edge-fleet devices add|remove|import|adopt|list``: the registry the fleet view counts on.

``add ID... [--group G] [--report-key ID-report.pub]`` (the device's report public key, from
``edge-agent keygen``: ``edge-fleet status`` verifies its signed reports with it),
``remove ID...``, ``import FILE`` (one ``ID [GROUP,...]`` a line, or
a CSV export), ``adopt`` (every device that announces itself on the broker, with the groups its
status lists), ``list [--group G]``. The file (``--registry``, default
``~/.config/edge-fleet/devices.json``) is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.bundle.keys import MAX_KEY_FILE, decode_report_public
from agent.errors import ConfigError, InputError
from agent.fsutil import read_capped
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.connection import connect
from fleet.registry import (
    MAX_REGISTRY_BYTES,
    Registry,
    load_registry,
    parse_device_list,
    save_registry,
)
from fleet.session import FleetSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("add", "remove", "import", "adopt", "list"))
    parser.add_argument("items", nargs="*", help="device ids (add/remove) or a file (import)")
    parser.add_argument("--group", action="append", default=[], help="group (repeat)")
    parser.add_argument("--json", action="store_true", help="list as JSON")
    parser.add_argument(
        "--report-key", type=Path, help="add: the device's *-report.pub (edge-agent keygen)"
    )
    add_connection_arguments(parser)


def _path(args: argparse.Namespace) -> Path:
    settings = settings_from(args)
    if settings.registry is None:
        raise ConfigError("registry", "no registry path")
    return settings.registry


def run(args: argparse.Namespace) -> int:
    path = _path(args)
    registry = load_registry(path) or Registry()
    before = len(registry)
    if args.action == "list":
        ids = registry.group(args.group[0]) if args.group else registry.ids()
        if args.json:
            print(json.dumps({d: list(registry.devices[d]) for d in ids}, indent=2))
        else:
            for device in ids:
                print(f"{device}  {','.join(registry.devices[device])}".rstrip())
            print(f"{len(ids)} device(s) in {path}", file=sys.stderr)
        return 0
    if args.action == "add":
        registry = _add(registry, args)
    elif args.action == "remove":
        unknown = [d for d in args.items if d not in registry]
        if unknown:
            raise InputError(f"not registered: {', '.join(unknown)}")
        registry = registry.without(args.items)
    elif args.action == "import":
        if len(args.items) != 1:
            raise InputError("devices import: name one file")
        source = Path(args.items[0])
        try:
            text = read_capped(source, MAX_REGISTRY_BYTES).decode("utf-8")
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {source}: {exc}") from None
        entries = parse_device_list(text, str(source))
        registry = registry.with_devices({d: [*g, *args.group] for d, g in entries.items()})
    else:
        registry = registry.with_devices(_announced(args))
    save_registry(path, registry)
    print(f"{path}: {len(registry)} device(s) ({len(registry) - before:+d})")
    return 0


def _add(registry: Registry, args: argparse.Namespace) -> Registry:
    if not args.items:
        raise InputError("devices add: name at least one device id")
    registry = registry.with_devices(dict.fromkeys(args.items, args.group))
    if args.report_key is not None:
        registry = registry.with_report_key(*_report_key(args.report_key, args.items))
    return registry


def _report_key(path: Path, items: list[str]) -> tuple[str, Ed25519PublicKey]:
    try:
        device, key = decode_report_public(read_capped(path, MAX_KEY_FILE), str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if items != [device]:
        raise InputError(f"{path} is the report key of {device}: add exactly that one device")
    return device, key


def _announced(args: argparse.Namespace) -> dict[str, list[str]]:
    settings = settings_from(args)
    with connect(settings) as client:
        session = FleetSession(client, settings.topic_prefix, read="wildcard")
    return {
        row.device_id: [*(row.status.groups if row.status else ()), *args.group]
        for row in session.known.rows()
    }
