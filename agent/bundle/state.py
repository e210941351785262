"""What a device remembers between bundles: the highest installed release counter per model
name and a time floor (the Pi has no real-time clock).

:class:`ReleaseState` is a pure value; :class:`StateStore` is the thin adapter that loads it
from and saves it to a JSON file with :func:`agent.fsutil.atomic_write` (fsync, rename, fsync).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.fsutil import atomic_write, read_capped
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict

if TYPE_CHECKING:
    from agent.bundle.verify import DecryptedBundle

STATE_FILE = "bundle-state.json"
MAX_STATE_BYTES = 1 << 20
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseState:
    counters: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    time_floor: int = 0

    def highest(self, name: str) -> int | None:
        return self.counters.get(name)

    def installed(self, name: str, counter: int, created: int) -> ReleaseState:
        """The state after installing release ``counter`` of ``name`` signed at ``created``."""
        counters = dict(self.counters)
        counters[name] = max(counter, counters.get(name, counter))
        return ReleaseState(MappingProxyType(counters), max(self.time_floor, created))

    def observed_time(self, trusted_time: int) -> ReleaseState:
        """Raise the floor to a time from a trusted source (never lowers it)."""
        return ReleaseState(self.counters, max(self.time_floor, trusted_time))

    def to_json(self) -> bytes:
        return dumps_canonical(
            {"version": 1, "counters": dict(self.counters), "time_floor": self.time_floor}
        )

    @classmethod
    def from_json(cls, data: bytes) -> ReleaseState:
        raw = loads_strict(data, MAX_STATE_BYTES)
        if not isinstance(raw, dict) or set(raw) != {"version", "counters", "time_floor"}:
            raise StrictJSONError("state needs exactly version, counters and time_floor")
        counters: Any = raw["counters"]
        floor = raw["time_floor"]
        if (
            raw["version"] != 1
            or not isinstance(counters, dict)
            or not all(_is_int(v) and v >= 0 for v in counters.values())
            or not _is_int(floor)
        ):
            raise StrictJSONError("state fields have the wrong types")
        return cls(MappingProxyType(dict(counters)), floor)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class StateStore:
    """The persisted :class:`ReleaseState` in ``directory/bundle-state.json``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / STATE_FILE

    def load(self) -> ReleaseState:
        """The saved state; an empty state when none was saved yet."""
        try:
            data = read_capped(self.path, MAX_STATE_BYTES)
        except FileNotFoundError:
            return ReleaseState()
        except (OSError, ValueError) as exc:
            raise ConfigError("state_dir", f"cannot read {self.path}: {exc}") from None
        try:
            return ReleaseState.from_json(data)
        except StrictJSONError as exc:
            raise ConfigError("state_dir", f"{self.path} is corrupt: {exc}") from None

    def save(self, state: ReleaseState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, state.to_json(), 0o600)

    def record_installed(self, bundle: DecryptedBundle) -> ReleaseState:
        """Commit the counter of a bundle the caller has installed; returns the new state."""
        manifest = bundle.verified.manifest
        state = self.load().installed(manifest.name, manifest.counter, manifest.created)
        self.save(state)
        _log.info("recorded %s release %s as installed", manifest.name, manifest.counter)
        return state
