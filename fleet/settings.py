"""``edge-fleet`` settings: command-line flags over environment over ``fleet.toml``. Pure.

The fleet manager connects with its own client id and credentials. Every value can come from a
flag, an environment variable (``EDGE_FLEET_<KEY>``) or the TOML file
(``~/.config/edge-fleet/fleet.toml`` unless ``--config`` names another); the first that sets a
key wins. Secrets are never in the file, only the names of files that hold them.

    url = "mqtts://broker.example:8883"
    topic_prefix = "edge"
    fleet_key = "~/.config/edge-fleet/fleet.key"
    username = "fleet"
    password_file = "~/.config/edge-fleet/password"
    ca_file = "/etc/ssl/certs/ca.pem"
    cert_file = "fleet.crt"
    key_file = "fleet.pem"
    client_id = "edge-fleet-laptop"
    protocol = "5"          # or "3.1.1" for brokers that hang up on MQTT 5 (amqtt)
    registry = "devices.json"   # the devices the fleet expects (`edge-fleet devices`)
    nodes = ["rabbit-a:1883", "rabbit-b:1883"]  # every node of a cluster (then url is unused)

``nodes`` (``--node`` repeated, ``EDGE_FLEET_NODES`` comma-separated): with two or more, the
fleet connects to each node (scheme of ``url``; client id ``<client_id>-<n>``), see
:mod:`fleet.cluster`.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import PREFIX_RE
from agent.errors import ConfigError

MAX_FLEET_CONFIG_BYTES = 64 * 1024
ENV_PREFIX = "EDGE_FLEET_"
KEYS = (
    "url",
    "topic_prefix",
    "fleet_key",
    "username",
    "password_file",
    "ca_file",
    "cert_file",
    "key_file",
    "client_id",
    "protocol",
    "registry",
    "nodes",
)
_PATH_KEYS = ("fleet_key", "password_file", "ca_file", "cert_file", "key_file", "registry")


def default_config_path(home: Path) -> Path:
    return home / ".config" / "edge-fleet" / "fleet.toml"


@dataclass(frozen=True)
class FleetSettings:
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "edge"
    fleet_key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str = ""
    protocol: str = "5"
    registry: Path | None = None
    nodes: tuple[str, ...] = ()

    def node_urls(self) -> list[str]:
        """The URL of each node (``host:port`` takes the scheme of ``url``); ``[url]`` alone."""
        if len(self.nodes) < 2:
            return [self.nodes[0] if self.nodes else self.url]
        scheme = self.url.split("://", 1)[0] if "://" in self.url else "mqtt"
        return [n if "://" in n else f"{scheme}://{n}" for n in self.nodes]

    def require_fleet_key(self) -> Path:
        if self.fleet_key is None:
            raise ConfigError(
                "fleet_key",
                "commands to devices are signed: pass --fleet-key, set EDGE_FLEET_FLEET_KEY "
                "or fleet_key in fleet.toml (make one with `edge-fleet keygen`)",
            )
        return self.fleet_key


def parse_toml(text: bytes, where: str) -> dict[str, Any]:
    """The ``fleet.toml`` table, size-capped and closed to unknown keys."""
    if len(text) > MAX_FLEET_CONFIG_BYTES:
        raise ConfigError(where, f"is {len(text)} bytes, limit {MAX_FLEET_CONFIG_BYTES}")
    try:
        table = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(where, f"is not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown key in {where}; known: {', '.join(KEYS)}")
    for key, value in table.items():
        if key == "nodes":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(key, f"must be a list of host:port strings in {where}")
        elif not isinstance(value, str):
            raise ConfigError(key, f"must be a string in {where}")
    return table


def resolve(
    flags: Mapping[str, str | list[str] | None],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
    *,
    home: Path,
    base: Path,
) -> FleetSettings:
    """Merge the sources (flags first); relative paths in the file are relative to ``base``."""
    chosen: dict[str, Any] = {}
    for key in KEYS:
        flag = flags.get(key)
        if flag is not None and flag != []:
            chosen[key] = (
                _path(flag, home, Path.cwd())
                if isinstance(flag, str) and key in _PATH_KEYS
                else flag
            )
        elif ENV_PREFIX + key.upper() in env:
            value = env[ENV_PREFIX + key.upper()]
            chosen[key] = _path(value, home, Path.cwd()) if key in _PATH_KEYS else value
        elif key in file_values:
            value = file_values[key]
            chosen[key] = _path(value, home, base) if key in _PATH_KEYS else value
    chosen["nodes"] = _nodes(chosen.get("nodes"))
    chosen.setdefault("registry", home / ".config" / "edge-fleet" / "devices.json")
    settings = FleetSettings(**chosen)
    if not PREFIX_RE.match(settings.topic_prefix):
        raise ConfigError("topic_prefix", f"{settings.topic_prefix!r} is not a valid topic prefix")
    if settings.protocol not in ("5", "3.1.1"):
        raise ConfigError("protocol", f"must be 5 or 3.1.1; got {settings.protocol!r}")
    if not settings.client_id:
        settings = FleetSettings(**{**chosen, "client_id": f"edge-fleet-{secrets.token_hex(4)}"})
    return settings


def _nodes(value: str | list[str] | None) -> tuple[str, ...]:
    """Flags and the file give a list; the environment a comma-separated string."""
    if value is None:
        return ()
    listed = value.split(",") if isinstance(value, str) else value
    nodes = tuple(n.strip() for n in listed if n.strip())
    for node in nodes:
        address = node.split("://", 1)[-1]
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("nodes", f"{node!r} is not host:port")
    return nodes


def _path(value: str, home: Path, base: Path) -> Path:
    path = Path(value)
    if value.startswith("~/"):
        return home / value[2:]
    return path if path.is_absolute() else base / path
