"""The devices the fleet expects: a registry file kept by ``edge-fleet devices``. Pure core.

The broker only knows the devices that announced themselves, and a broker may deliver fewer
retained messages than it holds (queue limits, clustered nodes). The registry is what the view
is counted against: a view is complete when every registered device was read. The file is JSON,
written atomically::

    {"version": 1, "devices": {"cam-01": {"groups": ["lab", "north"],
                                          "report_key": "<base64 raw Ed25519>"}, ...}}

``report_key`` (optional) is the public half of the device's report-signing key
(``edge-agent keygen``'s ``*-report.pub``): ``edge-fleet status`` verifies reports with it.

Groups in the registry select devices for ``--group`` together with the groups devices publish
in their status, so a device that is offline (or never announced) still belongs to its group.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.bundle.crypto import raw_public
from agent.errors import ConfigError, InputError
from agent.fsutil import atomic_write, read_capped
from agent.mqtt.topics import TopicError, validate_device_id

REGISTRY_VERSION = 1
MAX_REGISTRY_BYTES = 64 << 20  # ~400,000 devices with two groups each
MAX_GROUP_CHARS = 64


def default_registry_path(home: Path) -> Path:
    return home / ".config" / "edge-fleet" / "devices.json"


@dataclass(frozen=True)
class Registry:
    """Device id -> the groups the fleet manager assigned it (sorted, unique)."""

    devices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    report_keys: Mapping[str, str] = field(default_factory=dict)  # device -> base64 raw Ed25519

    def __len__(self) -> int:
        return len(self.devices)

    def __contains__(self, device: object) -> bool:
        return device in self.devices

    def ids(self) -> list[str]:
        return sorted(self.devices)

    def group(self, name: str) -> list[str]:
        return sorted(d for d, groups in self.devices.items() if name in groups)

    def with_devices(self, entries: Mapping[str, Iterable[str]]) -> Registry:
        """This registry plus ``entries`` (device -> groups); groups of a known device merge."""
        merged = {d: set(g) for d, g in self.devices.items()}
        for device, groups in entries.items():
            merged.setdefault(check_device(device), set()).update(check_group(g) for g in groups)
        return Registry({d: tuple(sorted(g)) for d, g in sorted(merged.items())}, self.report_keys)

    def with_report_key(self, device: str, key: Ed25519PublicKey) -> Registry:
        """The device (registered if new) with ``key`` as its report key (replacing any)."""
        registry = self.with_devices({device: []})
        raw = base64.b64encode(raw_public(key)).decode("ascii")
        return Registry(registry.devices, {**registry.report_keys, device: raw})

    def report_key(self, device: str) -> Ed25519PublicKey | None:
        raw = self.report_keys.get(device)
        return None if raw is None else Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))

    def without(self, devices: Iterable[str]) -> Registry:
        gone = set(devices)
        return Registry(
            {d: g for d, g in self.devices.items() if d not in gone},
            {d: k for d, k in self.report_keys.items() if d not in gone},
        )

    def to_json(self) -> bytes:
        obj = {
            "version": REGISTRY_VERSION,
            "devices": {
                d: {"groups": list(g)}
                | ({"report_key": self.report_keys[d]} if d in self.report_keys else {})
                for d, g in sorted(self.devices.items())
            },
        }
        return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def check_device(device: str) -> str:
    try:
        return validate_device_id(device)
    except TopicError as exc:
        raise InputError(str(exc)) from None


def check_group(group: str) -> str:
    if not isinstance(group, str) or not group or len(group) > MAX_GROUP_CHARS:
        raise InputError(f"group {group!r} must be 1 to {MAX_GROUP_CHARS} characters")
    if any(c in group for c in ",/+#") or not group.isprintable() or group != group.strip():
        raise InputError(f"group {group!r} must not contain ',', '/', '+', '#' or control chars")
    return group


def parse_registry(data: bytes, where: str) -> Registry:
    """The registry in ``data``; :class:`ConfigError` naming what is wrong."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("registry", f"{where} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("version") != REGISTRY_VERSION:
        raise ConfigError("registry", f"{where}: expected {{'version': 1, 'devices': {{...}}}}")
    devices = obj.get("devices")
    if not isinstance(devices, dict):
        raise ConfigError("registry", f"{where}: 'devices' must be an object")
    entries: dict[str, list[str]] = {}
    report_keys: dict[str, str] = {}
    for device, entry in devices.items():
        groups = entry.get("groups", []) if isinstance(entry, dict) else None
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError("registry", f"{where}: {device!r}: 'groups' must be strings")
        entries[device] = groups
        if isinstance(entry, dict) and "report_key" in entry:
            report_keys[device] = _report_key(entry["report_key"], f"{where}: {device!r}")
    try:
        return Registry(Registry().with_devices(entries).devices, report_keys)
    except InputError as exc:
        raise ConfigError("registry", f"{where}: {exc}") from None


def _report_key(value: object, where: str) -> str:
    try:
        raw = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise ConfigError("registry", f"{where}: 'report_key' must be 32 bytes of base64")
    return base64.b64encode(raw).decode("ascii")


def parse_device_list(text: str, where: str) -> dict[str, list[str]]:
    """``edge-fleet devices import``: one device a line, ``ID [GROUP[,GROUP...]]``; ``#``
    starts a comment. CSV exports work too (``ID,GROUP``: the first comma splits)."""
    entries: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        device, _, rest = line.replace(",", " ", 1).partition(" ")
        groups = [g.strip() for g in rest.replace(" ", ",").split(",") if g.strip()]
        try:
            entries.setdefault(check_device(device), []).extend(check_group(g) for g in groups)
        except InputError as exc:
            raise InputError(f"{where}:{number}: {exc}") from None
    return entries


def load_registry(path: Path) -> Registry | None:
    """The registry at ``path``, or ``None`` when there is no such file."""
    try:
        data = read_capped(path, MAX_REGISTRY_BYTES)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError("registry", f"cannot read {path}: {exc}") from None
    return parse_registry(data, str(path))


def save_registry(path: Path, registry: Registry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, registry.to_json(), mode=0o644)
