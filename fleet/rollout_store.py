"""Where rollout states live: one JSON file per rollout, replaced atomically, plus a request
file that ``pause``/``cancel`` write and the running rollout reads.

Directory: ``$XDG_STATE_HOME/edge-fleet/rollouts`` (``~/.local/state/...``) unless
``--state-dir`` names another.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from agent.errors import ConfigError, InputError
from agent.fsutil import atomic_write, read_capped
from fleet.rollout_state import RolloutState, check_name

MAX_STATE_BYTES = 64 << 20
REQUESTS = ("pause", "cancel")


def default_state_dir(env: Mapping[str, str], home: Path) -> Path:
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else home / ".local" / "state"
    return base / "edge-fleet" / "rollouts"


class RolloutStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def _request_path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.request"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str) -> RolloutState:
        path = self.path(name)
        try:
            data = read_capped(path, MAX_STATE_BYTES)
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise InputError(f"no rollout {name!r} in {self.directory} (known: {known})") from None
        except (OSError, ValueError) as exc:
            raise ConfigError("rollout", f"cannot read {path}: {exc}") from None
        return RolloutState.from_json(data, str(path))

    def save(self, state: RolloutState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state.updated = time.time()
        atomic_write(self.path(state.name), state.to_json(), mode=0o600)

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))

    def request(self, name: str, what: str | None) -> None:
        """Leave ``pause`` or ``cancel`` for the running rollout (``None`` clears it)."""
        path = self._request_path(name)
        if what is None:
            path.unlink(missing_ok=True)
            return
        if what not in REQUESTS:
            raise ValueError(what)
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, what.encode(), mode=0o600)

    def requested(self, name: str) -> str | None:
        try:
            text = read_capped(self._request_path(name), 64).decode("ascii", "replace").strip()
        except (OSError, ValueError):
            return None
        return text if text in REQUESTS else None


def process_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
