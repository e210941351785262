"""A real ``NOTIFY_SOCKET`` listener: what systemd would receive from a ``Type=notify`` service."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Notification:
    """One datagram: its ``KEY=VALUE`` lines and the monotonic time it arrived."""

    t: float
    fields: dict[str, str]

    def has(self, key: str, value: str = "1") -> bool:
        return self.fields.get(key) == value


class NotifyListener:
    """A datagram socket bound to a path (short, under /tmp) or an abstract name.

    ``env`` is what to give the service: ``NOTIFY_SOCKET`` and, with ``watchdog_s``,
    ``WATCHDOG_USEC`` (no ``WATCHDOG_PID``: the test cannot know the child's pid in advance,
    and systemd leaves it out for the main process too).
    """

    def __init__(self, *, abstract: bool = False, watchdog_s: float | None = None) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if abstract:
            name = f"edge-agent-test-{os.getpid()}-{id(self)}"
            self._sock.bind(b"\0" + name.encode())
            address = "@" + name
        else:
            self._dir = tempfile.mkdtemp(prefix="notify-")  # AF_UNIX paths are short
            address = str(Path(self._dir) / "notify.sock")
            self._sock.bind(address)
        self._sock.settimeout(0.2)
        self.env = {"NOTIFY_SOCKET": address}
        if watchdog_s is not None:
            self.env["WATCHDOG_USEC"] = str(int(watchdog_s * 1e6))
        self._lock = threading.Lock()
        self._got: list[Notification] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self._got.append(Notification(time.monotonic(), fields))

    @property
    def received(self) -> list[Notification]:
        with self._lock:
            return list(self._got)

    def having(self, key: str, value: str = "1") -> list[Notification]:
        return [n for n in self.received if n.has(key, value)]

    def wait_for(
        self,
        predicate: Callable[[list[Notification]], bool],
        timeout: float,
        describe: Callable[[], str] = str,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.received):
                return
            time.sleep(0.05)
        got = [n.fields for n in self.received][-8:]
        pytest.fail(f"notification not seen within {timeout} s; last {got}\n{describe()}")

    def wait_quiet(self, key: str, quiet_s: float, timeout: float) -> float:
        """Wait until no ``key=1`` arrived for ``quiet_s``; returns when the last one came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = max((n.t for n in self.having(key)), default=0.0)
            if time.monotonic() - last >= quiet_s:
                return last
            time.sleep(0.1)
        pytest.fail(f"{key}=1 kept arriving for {timeout} s")

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)
        if self._dir is not None:
            for name in os.listdir(self._dir):
                os.unlink(os.path.join(self._dir, name))
            os.rmdir(self._dir)
