"""Process lifecycle: signal handlers only set flags; the service loop acts on them.

SIGTERM and SIGINT ask for a graceful stop, SIGHUP for a config reload. Tests call
:meth:`Flags.handle` directly instead of sending signals.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Flags:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()

    def handle(self, signum: int, _frame: FrameType | None = None) -> None:
        if signum == signal.SIGHUP:
            self.reload.set()
        else:
            self.stop.set()
        self.wake.set()

    def install(self) -> None:
        """Install the handlers (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.handle)
