"""systemd's notify protocol, written by hand: ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1`` ...

A ``Type=notify`` unit gets ``$NOTIFY_SOCKET`` (a path, or an abstract socket name starting with
``@``) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, the process meant
to send the pings). One datagram carries newline-separated ``KEY=VALUE`` assignments
(sd_notify(3)). Outside systemd every call is a no-op, so the agent runs the same by hand.

:func:`notify_target` is pure (environment in, target out); :class:`Notifier` is the socket
adapter. A failed send is logged once and never stops the service: the watchdog then restarts
it, which is what a broken notify channel should lead to.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_STATUS_CHARS = 200


@dataclass(frozen=True)
class NotifyTarget:
    """Where notifications go and how often the watchdog wants to hear from us.

    ``address`` is a filesystem path or an abstract name (with its leading NUL byte);
    ``watchdog_s`` is systemd's watchdog timeout, or None when the watchdog is off or meant for
    another process.
    """

    address: str | bytes
    watchdog_s: float | None = None

    @property
    def ping_interval_s(self) -> float | None:
        """Ping at half the timeout, as sd_watchdog_enabled(3) recommends."""
        return None if self.watchdog_s is None else self.watchdog_s / 2.0


def notify_target(env: Mapping[str, str], pid: int) -> NotifyTarget | None:
    """The target described by ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID``, or None."""
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw or raw[0] not in "/@":
        return None
    address: str | bytes = b"\0" + raw[1:].encode() if raw.startswith("@") else raw
    return NotifyTarget(address, _watchdog_s(env, pid))


def _watchdog_s(env: Mapping[str, str], pid: int) -> float | None:
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1e6


def status_line(text: str) -> str:
    """A ``STATUS=`` value: one line, bounded (``systemctl status`` shows it)."""
    flat = " ".join(text.split())
    return flat[:MAX_STATUS_CHARS]


class Notifier:
    """Sends notifications to systemd; every method is a no-op without a target."""

    def __init__(self, target: NotifyTarget | None) -> None:
        self.target = target
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Read the environment and unset the variables, so child processes do not inherit them."""
        environ = os.environ if env is None else env
        target = notify_target(environ, os.getpid())
        if env is None:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(name, None)
        return cls(target)

    @property
    def enabled(self) -> bool:
        return self.target is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        return None if self.target is None else self.target.ping_interval_s

    def ready(self, status: str = "") -> bool:
        return self._send("READY=1", status)

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send("RELOADING=1", "", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str = "") -> bool:
        return self._send("STOPPING=1", status)

    def watchdog(self) -> bool:
        return self._send("WATCHDOG=1", "")

    def status(self, text: str) -> bool:
        return self._send("", text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, assignment: str, status: str, *extra: str) -> bool:
        if self.target is None:
            return False
        lines = [line for line in (assignment, *extra) if line]
        if status:
            lines.append(f"STATUS={status_line(status)}")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.target.address)
        except OSError as exc:
            if not self._failed:
                log.warning("systemd notification failed (%s): %s", self.target.address, exc)
                self._failed = True
            return False
        self._failed = False
        return True
