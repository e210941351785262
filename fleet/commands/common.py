"""Options every ``edge-fleet`` command that talks to the broker shares, and their resolution."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agent.errors import ConfigError, EdgeError
from agent.fsutil import read_capped
from agent.mqtt.ports import EventConnection
from fleet.reader import DEFAULT_WINDOW as DEFAULT_READ_WINDOW
from fleet.registry import load_registry
from fleet.session import FleetSession
from fleet.settings import FleetSettings, default_config_path, parse_toml, resolve

_FLAGS = {
    "url": "broker URL, mqtt://host[:port] or mqtts://host[:port]",
    "topic_prefix": "topic prefix the devices use (default edge)",
    "fleet_key": "Ed25519 fleet signing key (from `edge-fleet keygen`)",
    "username": "MQTT user name",
    "password_file": "file holding the MQTT password",
    "ca_file": "CA bundle that verifies the broker (mqtts)",
    "cert_file": "client certificate (mqtts)",
    "key_file": "client certificate's private key (mqtts)",
    "client_id": "MQTT client id (default edge-fleet-<random>)",
    "protocol": "MQTT version tried first: 5 (default; 3.1.1 if refused) or 3.1.1",
    "registry": "device registry (default ~/.config/edge-fleet/devices.json)",
}


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "connection", "each also from $EDGE_FLEET_<NAME> or fleet.toml; flags win"
    )
    group.add_argument(
        "--config", type=Path, help="fleet.toml (default ~/.config/edge-fleet/fleet.toml)"
    )
    for key, text in _FLAGS.items():
        flag = "--prefix" if key == "topic_prefix" else "--" + key.replace("_", "-")
        group.add_argument(flag, dest=key, help=text)
    group.add_argument(
        "--node",
        dest="nodes",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a node of a broker cluster that keeps retained messages per node (RabbitMQ); "
        "repeat for every node: retained messages go to each, statuses are read from each "
        "(replaces --url; every node must connect)",
    )
    group.add_argument(
        "--co-sign",
        action="append",
        type=Path,
        default=[],
        metavar="KEY",
        help="another fleet key that signs each command too (repeat; devices with "
        "keys.fleet_threshold k need k distinct keys)",
    )


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fleet view")
    group.add_argument(
        "--read",
        choices=("auto", "exact", "wildcard"),
        default="auto",
        help="how statuses are read: exact topics per registered device (auto with a "
        "registry), or wildcard subscriptions (no registry; cannot see what a broker drops)",
    )
    group.add_argument(
        "--read-window",
        type=int,
        default=DEFAULT_READ_WINDOW,
        help="devices whose retained status may be on its way at once with --read exact "
        f"(default {DEFAULT_READ_WINDOW}: 2 messages each, below mosquitto's default queue of "
        "1000 per client; lower it for brokers with smaller queues)",
    )
    group.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="go on when some registered devices could not be read",
    )


def open_session(
    client: EventConnection, settings: FleetSettings, args: argparse.Namespace
) -> FleetSession:
    """The session with the registry of ``settings``; logs the read on stderr."""
    registry = load_registry(settings.registry) if settings.registry is not None else None
    session = FleetSession(
        client,
        settings.topic_prefix,
        registry=registry,
        read=getattr(args, "read", "auto"),
        window=getattr(args, "read_window", DEFAULT_READ_WINDOW),
    )
    report = session.report
    if registry is None:
        print(
            f"edge-fleet: no device registry at {settings.registry}: {len(report.read)} "
            "device(s) announced; cannot tell whether that is all (add devices with "
            "`edge-fleet devices add/import/adopt`)",
            file=sys.stderr,
        )
    return session


def require_complete(session: FleetSession, args: argparse.Namespace) -> None:
    """Refuse to act on a partial view unless ``--allow-incomplete``."""
    problem = session.report.problem()
    if problem is not None and not getattr(args, "allow_incomplete", False):
        raise IncompleteView(f"the fleet view is incomplete: {problem} (--allow-incomplete)")


class IncompleteView(EdgeError):
    """Some registered devices could not be read: exit 1 with the numbers."""


def settings_from(args: argparse.Namespace) -> FleetSettings:
    home = Path.home()
    path: Path = args.config or default_config_path(home)
    file_values = {}
    if args.config is not None or path.exists():
        try:
            data = read_capped(path, 64 * 1024)
        except (OSError, ValueError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from None
        file_values = parse_toml(data, str(path))
    flags: dict[str, str | list[str] | None] = {key: getattr(args, key, None) for key in _FLAGS}
    flags["nodes"] = getattr(args, "nodes", None) or None
    return resolve(flags, os.environ, file_values, home=home, base=path.parent)
