"""A bounded-rate state for Home Assistant (pure: the caller passes the clock).

Every inference result would otherwise be a state change in Home Assistant (its recorder writes
each one). :class:`StateThrottle` keeps only the newest payload and lets it out at most once per
``min_interval_s``; an unchanged state is repeated every ``heartbeat_s`` so the entity's
``expire_after`` only fires when the agent really went quiet. A repeated identical payload is
not a state change in Home Assistant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StateThrottle:
    min_interval_s: float
    heartbeat_s: float
    _pending: bytes | None = None
    _sent: bytes | None = None
    _sent_at: float | None = None
    suppressed: int = 0  # offers replaced by a newer one before they were published

    def offer(self, payload: bytes) -> None:
        """The newest state; a not yet published older one is dropped."""
        if self._pending is not None:
            self.suppressed += 1
        self._pending = payload

    def due(self, now: float) -> bytes | None:
        """What to publish now, if anything (call :meth:`sent` once it went out)."""
        since = None if self._sent_at is None else now - self._sent_at
        if self._pending is not None and (since is None or since >= self.min_interval_s):
            if self._pending == self._sent and since is not None and since < self.heartbeat_s:
                self._pending = None  # no change: nothing to tell Home Assistant yet
                return None
            return self._pending
        if self._sent is not None and since is not None and since >= self.heartbeat_s:
            return self._sent
        return None

    def sent(self, payload: bytes, now: float) -> None:
        self._sent, self._sent_at = payload, now
        if self._pending == payload:
            self._pending = None
