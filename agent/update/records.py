"""What the updater remembers across restarts, in ``state_dir/updates/``: the command ledger
(``commands.json``, the replay defence) and the outcome of the last desired bundle
(``outcome.json``: so the retained ``desired`` command, delivered again on every connect, resumes
an unfinished transfer but does not redo a finished one). Both are written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.fsutil import atomic_write, read_capped
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.mqtt.messages import MessageError, UpdateStatus
from agent.reasons import Reason
from agent.update.commands import CommandLedger

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 64 * 1024
FINAL_STATES = ("installed", "rejected", "rolled_back")
RETRIED_REASONS = (Reason.TOO_SLOW, Reason.DEADLINE, Reason.TRANSPORT)


def is_final(status: UpdateStatus) -> bool:
    """Whether the bundle this status is about needs no more work from this device."""
    return status.state in FINAL_STATES and status.reason not in RETRIED_REASONS


class UpdateRecords:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.ledger_path = self.directory / "commands.json"
        self.outcome_path = self.directory / "outcome.json"

    def load_ledger(self) -> CommandLedger:
        data = self._read(self.ledger_path)
        if data is None:
            return CommandLedger()
        try:
            return CommandLedger.from_json(data)
        except ValueError as exc:
            # Whoever can corrupt the state directory owns the device already; keep the file
            # for inspection and start afresh rather than refuse every command forever.
            aside = self.ledger_path.with_suffix(".corrupt")
            self.ledger_path.replace(aside)
            log.error("command ledger was corrupt (%s); moved to %s, starting empty", exc, aside)
            return CommandLedger()

    def save_ledger(self, ledger: CommandLedger) -> None:
        self._write(self.ledger_path, ledger.to_json())

    def load_outcome(self) -> UpdateStatus | None:
        data = self._read(self.outcome_path)
        if data is None:
            return None
        try:
            return UpdateStatus.from_obj(loads_strict(data, MAX_RECORD_BYTES), "outcome")
        except (StrictJSONError, MessageError) as exc:
            log.warning("ignoring unreadable %s: %s", self.outcome_path, exc)
            return None

    def save_outcome(self, status: UpdateStatus) -> None:
        self._write(self.outcome_path, dumps_canonical(status.to_obj()))

    def _read(self, path: Path) -> bytes | None:
        try:
            return read_capped(path, MAX_RECORD_BYTES)
        except FileNotFoundError:
            return None

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, 0o600)
