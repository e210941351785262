"""A/B model slots in ``state_dir/models``: ``slot-a.edgepkg``, ``slot-b.edgepkg``, ``slots.json``.

Each slot holds a whole bundle exactly as signed (encrypted at rest). ``slots.json`` says which
slot is active and which holds the previous model, kept for rollback. Every write is atomic and
fsync'd (:func:`agent.fsutil.atomic_write`); the commit order of an install is: write the new
bundle into the inactive slot, prove it (canary), then switch ``slots.json``. A crash before the
switch leaves the old model active; after it, the new one.

The older layout (one ``current.edgepkg``) is migrated to slot a on first use.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from agent.bundle.container import Limits, parse_prefix
from agent.bundle.files import read_bundle
from agent.errors import BundleRejected, ConfigError
from agent.fsutil import atomic_write, fsync_dir, read_capped
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
SLOTS_FILE = "slots.json"
LEGACY_CURRENT = "current.edgepkg"


@dataclass(frozen=True)
class SlotState:
    """Which slot serves (``active``) and which holds the model before it (``previous``)."""

    active: str | None = None
    previous: str | None = None

    def __post_init__(self) -> None:
        for slot in (self.active, self.previous):
            if slot is not None and slot not in SLOTS:
                raise ValueError(f"slot must be one of {', '.join(SLOTS)}, got {slot!r}")
        if self.active is None and self.previous is not None:
            raise ValueError("a previous slot needs an active one")
        if self.active is not None and self.active == self.previous:
            raise ValueError("active and previous must be different slots")

    @property
    def inactive(self) -> str:
        """The slot a new bundle is written to (never the active one)."""
        return "b" if self.active == "a" else "a"

    def activated(self, slot: str) -> SlotState:
        """The state after ``slot`` went live; the active one becomes the previous."""
        return SlotState(slot, self.active)

    def rolled_back(self) -> SlotState:
        """The state after going back to the previous slot (a second rollback returns)."""
        if self.previous is None:
            raise ValueError("there is no previous slot to roll back to")
        return SlotState(self.previous, self.active)

    def to_json(self) -> bytes:
        return dumps_canonical({"active": self.active, "previous": self.previous})

    @classmethod
    def from_json(cls, data: bytes) -> SlotState:
        obj = loads_strict(data, 4096)
        if not isinstance(obj, dict) or set(obj) != {"active", "previous"}:
            raise ValueError("slots.json needs exactly active and previous")
        return cls(obj["active"], obj["previous"])


class SlotStore:
    """The slot files and ``slots.json`` (thin adapter; the updater and the service use it)."""

    def __init__(self, state_dir: Path, limits: Limits | None = None) -> None:
        self.directory = Path(state_dir) / "models"
        self.limits = limits or Limits()
        self.state_path = self.directory / SLOTS_FILE

    def path(self, slot: str) -> Path:
        if slot not in SLOTS:
            raise ValueError(f"unknown slot {slot!r}")
        return self.directory / f"slot-{slot}.edgepkg"

    def load(self) -> SlotState:
        """The slot state, migrating ``current.edgepkg`` to slot a first if it is there."""
        self._migrate()
        try:
            data = read_capped(self.state_path, 4096)
        except FileNotFoundError:
            return SlotState()
        except (OSError, ValueError) as exc:
            raise ConfigError("state_dir", f"cannot read {self.state_path}: {exc}") from None
        try:
            return SlotState.from_json(data)
        except (StrictJSONError, ValueError) as exc:
            raise ConfigError("state_dir", f"{self.state_path} is corrupt: {exc}") from None

    def read(self, slot: str) -> bytes:
        """The bundle in ``slot``; :class:`BundleRejected` ``malformed`` unless it is exactly
        as long as its signed prefix says (header plus payload, nothing between or after)."""
        data = read_bundle(self.path(slot), self.limits)
        prefix = parse_prefix(data, self.limits)
        expected = prefix.header_length + prefix.payload_length
        if len(data) != expected:
            raise BundleRejected(
                Reason.MALFORMED,
                f"slot {slot} holds {len(data)} bytes; its signed prefix says {expected} "
                f"(header {prefix.header_length} + payload {prefix.payload_length})",
            )
        return data

    def write(self, slot: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path(slot), data, 0o600)

    def commit(self, state: SlotState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.state_path, state.to_json(), 0o600)
        log.info("slots: active %s, previous %s", state.active, state.previous)

    def _migrate(self) -> None:
        legacy = self.directory / LEGACY_CURRENT
        if self.state_path.exists():
            return
        if legacy.exists():
            os.replace(legacy, self.path("a"))
            fsync_dir(self.directory)
            log.info("migrated %s to slot a", LEGACY_CURRENT)
        if self.path("a").exists():
            self.commit(SlotState("a"))
