"""What the updater shows and remembers: the status ``update`` object and the signed commands.

:class:`StatusBoard` holds the ``update`` object the service publishes (read by the loop thread,
written by the updater thread) and the outcome of the desired bundle, persisted so that a restart
reports it again. :class:`CommandGate` opens signed commands and keeps the replay ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agent.bundle import TrustRoot
from agent.errors import BundleRejected, Rejected
from agent.mqtt.events import DropLog
from agent.mqtt.messages import UpdateStatus
from agent.reasons import Reason
from agent.update.commands import CommandLedger, SignedCommand, open_command
from agent.update.records import UpdateRecords

log = logging.getLogger(__name__)


class StatusBoard:
    def __init__(self, records: UpdateRecords) -> None:
        self.records = records
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._status = UpdateStatus()
        self.outcome: UpdateStatus | None = None

    def load(self) -> None:
        """The outcome recorded before a restart is shown again."""
        self.outcome = self.records.load_outcome()
        if self.outcome is not None:
            self._status = self.outcome

    @property
    def status(self) -> UpdateStatus:
        with self._lock:
            return self._status

    def record(self, status: UpdateStatus) -> None:
        """Show a state of the desired bundle and remember it across restarts."""
        self.outcome = status
        self.records.save_outcome(status)
        self.show(status)

    def show(self, status: UpdateStatus) -> None:
        with self._lock:
            self._status = status
        self.changed.set()


class CommandGate:
    """Signed commands for this device, each seq obeyed once (the ledger survives restarts)."""

    def __init__(
        self, fleet: TrustRoot, device_id: str, records: UpdateRecords, board: StatusBoard
    ) -> None:
        self.fleet = fleet
        self.device_id = device_id
        self.records = records
        self.board = board
        self._ledger = CommandLedger()
        self.wall: Callable[[], float] = time.time  # freshness is checked against this clock
        self.drops: DropLog | None = None  # refusals counted as command_rejected.<code>
        self.current_fleet: Callable[[], TrustRoot] = lambda: self.fleet  # rotated by a root

    def load(self) -> None:
        self._ledger = self.records.load_ledger()

    def verify(self, payload: bytes, kind: str) -> tuple[SignedCommand, bool] | None:
        """The command and whether it is new; ``None`` (shown as rejected) when it is not valid."""
        try:
            signed = open_command(payload, self.current_fleet(), self.device_id)
            if signed.command.command != kind:
                raise BundleRejected(
                    Reason.MALFORMED, f"a {signed.command.command} command on the {kind} topic"
                )
            if new := self._ledger.is_new(signed):
                self._ledger.check_fresh(signed, self.wall())
        except Rejected as exc:
            if self.drops is not None:
                self.drops.count(f"command_rejected.{exc.code}")
            log.warning("%s command rejected: %s", kind, exc)
            self.board.show(UpdateStatus("rejected", exc.code, f"{kind} command: {exc.reason}"))
            return None
        if new:
            self._ledger = self._ledger.accept(signed)
            self.records.save_ledger(self._ledger)
            log.info("accepted %s command seq %s", kind, signed.command.seq)
        return signed, new
