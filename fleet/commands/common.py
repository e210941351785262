"""Options every ``edge-fleet`` command that talks to the broker shares, and their resolution."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.errors import ConfigError
from agent.fsutil import read_capped
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
        "--co-sign",
        action="append",
        type=Path,
        default=[],
        metavar="KEY",
        help="another fleet key that signs each command too (repeat; devices with "
        "keys.fleet_threshold k need k distinct keys)",
    )


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
    flags = {key: getattr(args, key, None) for key in _FLAGS}
    return resolve(flags, os.environ, file_values, home=home, base=path.parent)
