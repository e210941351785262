"""Errors split by blame.

Callers decide what to do by the class, never by parsing messages:

* :class:`InputError` -- a file or argument the user gave us is wrong; fix it, do not retry.
* :class:`ConfigError` -- the configuration is wrong; names the dotted key.
* :class:`BundleRejected` -- a bundle (or signed command) failed verification; carries a
  reason code that a status message can publish. Never retried with the same bytes.
* :class:`DeviceError` -- the device could not take a bundle that may well be good (no space,
  an I/O error, its runtime refused the model); carries a reason code too.
* :class:`TransportError` -- the network or broker failed; retrying may help.
* :class:`BackendError` -- the inference runtime or accelerator failed.

:class:`BundleRejected` and :class:`DeviceError` are both :class:`Rejected`: catch that to report
any refusal of an update; their codes are :class:`agent.reasons.Reason` members. The parsers'
own errors (``MetadataError``, ``CanaryError``, ``StrictJSONError``, ``TopicError``,
``StreamError``, ``TFLiteFormatError``) are :class:`InputError` and stay ``ValueError`` for
callers that catch that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agent.reasons import Reason


class EdgeError(Exception):
    """Base of every error this project raises on purpose."""

    code: str = Reason.ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(EdgeError):
    """A file or argument supplied by the user is missing, malformed or unsuitable."""

    code = Reason.BAD_INPUT


class ConfigError(EdgeError):
    """The configuration is invalid. ``key`` is the dotted path of the offending entry."""

    code = Reason.BAD_CONFIG

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class Rejected(EdgeError):
    """An update step was refused. ``code`` is the reason the status publishes, ``reason`` the
    human sentence. Catch this to report any refusal; raise one of the two subclasses."""

    code: Reason

    def __init__(self, code: Reason, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class BundleRejected(Rejected):
    """A bundle or signed message failed verification: the bytes are bad, never retry them."""


class DeviceError(Rejected):
    """The device could not install or serve a bundle that may be good: ``no_space``,
    ``io_error``, ``load_failed`` (its runtime refused a model that passed the canary),
    ``no_previous_slot``. The fix is on the device, not in the bundle."""


class TransportError(EdgeError):
    """The broker or network failed; the operation may succeed when retried."""

    code = Reason.TRANSPORT


class BackendError(EdgeError):
    """The inference runtime or an accelerator failed."""

    code = Reason.BACKEND


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


class ConfigErrors(ConfigError):
    """Every problem found in one config file. ``problems`` holds ``{"key", "line", "message"}``
    records (``line`` is the TOML line of the key, or of its table, or None)."""

    def __init__(self, path: str, problems: list[dict[str, object]]) -> None:
        first = problems[0]
        super().__init__(str(first["key"] or ""), str(first["message"]))
        self.problems = problems
        self.message = "\n".join(
            f"{path}:{p['line']}: {p['message']}" if p["line"] else f"{path}: {p['message']}"
            for p in problems
        )
