"""What the loop tells systemd: ``READY=1`` once serving, ``STATUS=`` lines, ``WATCHDOG=1``.

Everything is sent from the loop thread (see :mod:`agent.daemon.watchdog` for when a ping is
earned); with no ``NOTIFY_SOCKET`` the notifier drops it all.
"""

from __future__ import annotations

from agent.config import SourceConfig
from agent.daemon.sdnotify import Notifier
from agent.daemon.watchdog import Progress, stall_limit_s


class Systemd:
    def __init__(self, notifier: Notifier, source: SourceConfig) -> None:
        self.notifier = notifier
        self.ready_sent = False
        interval = notifier.watchdog_interval_s
        self.progress = Progress(interval, stall_limit_s(source)) if interval is not None else None

    def start(self, now: float) -> None:
        if self.progress is not None:
            self.progress.start(now)

    def ready(self, text: str) -> None:
        """Serving (or up in safe mode): ``READY=1`` with the status line."""
        self.ready_sent = True
        self.notifier.ready(text)

    def inferred(self, now: float) -> None:
        if self.progress is not None:
            self.progress.inferred(now)

    def status(self, text: str) -> None:
        if self.ready_sent:
            self.notifier.status(text)

    def reloaded(self, source: SourceConfig, now: float) -> None:
        """A new config: the stall limit may have changed, and its clock restarts."""
        if self.progress is not None:
            self.progress.stall_s = stall_limit_s(source)
            self.progress.start(now)

    def feed(self, now: float, *, expecting_input: bool) -> None:
        """``WATCHDOG=1`` when earned (never before ``READY=1``)."""
        if self.progress is None or not self.ready_sent:
            return
        if self.progress.due(now, expecting_input=expecting_input):
            self.notifier.watchdog()
