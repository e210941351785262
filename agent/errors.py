"""Errors split by blame.

Callers decide what to do by the class, never by parsing messages:

* :class:`InputError` -- a file or argument the user gave us is wrong; fix it, do not retry.
* :class:`ConfigError` -- the configuration is wrong; names the dotted key.
* :class:`BundleRejected` -- a bundle (or signed command) failed verification; carries a
  reason code that a status message can publish. Never retried with the same bytes.
* :class:`TransportError` -- the network or broker failed; retrying may help.
* :class:`BackendError` -- the inference runtime or accelerator failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class EdgeError(Exception):
    """Base of every error this project raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(EdgeError):
    """A file or argument supplied by the user is missing, malformed or unsuitable."""

    code = "bad_input"


class ConfigError(EdgeError):
    """The configuration is invalid. ``key`` is the dotted path of the offending entry."""

    code = "bad_config"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class BundleRejected(EdgeError):
    """A bundle or signed message failed verification. ``code`` is a stable reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class TransportError(EdgeError):
    """The broker or network failed; the operation may succeed when retried."""

    code = "transport"


class BackendError(EdgeError):
    """The inference runtime or an accelerator failed."""

    code = "backend"


@dataclass
class ErrorLog:
    """Counts bad input per kind and says when a kind may be logged again (once per period)."""

    period_s: float = 60.0
    counts: Counter[str] = field(default_factory=Counter)
    _last_logged: dict[str, float] = field(default_factory=dict)

    def record(self, kind: str, now: float) -> bool:
        """Count one error of ``kind``; True when it should be logged now."""
        self.counts[kind] += 1
        last = self._last_logged.get(kind)
        if last is None or now - last >= self.period_s:
            self._last_logged[kind] = now
            return True
        return False
