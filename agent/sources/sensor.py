"""Sensor readings from a serial device, a growing file, a FIFO, or an MQTT-fed queue.

The stream adapter runs one reader thread: it opens the path (configuring a tty with termios:
raw mode and the baud rate, no pyserial), splits bytes into capped lines, parses each line and
queues :class:`Reading` items (bounded; the oldest is dropped and counted when the consumer
falls behind). Failures to open or read reconnect with backoff; bad lines are counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import stat
import termios
import threading
import time
import tty
from collections import deque
from typing import Literal

from agent.backoff import Backoff
from agent.errors import ConfigError
from agent.sources.base import Reading, SourceHealth
from agent.sources.lines import LineError, LineFormat, LineSplitter, parse_line

logger = logging.getLogger(__name__)

StreamKind = Literal["auto", "serial", "file", "fifo"]
DEFAULT_MAX_PAYLOAD = 64 * 1024


def baud_constant(baud: int) -> int:
    """The termios speed constant for ``baud`` (ConfigError when the platform has none)."""
    value = getattr(termios, f"B{baud}", None)
    if not isinstance(value, int):
        raise ConfigError("source.baud", f"unsupported baud rate {baud}")
    return value


def configure_tty(fd: int, baud: int) -> None:
    """Raw 8N1 input at ``baud``, ignoring modem control lines."""
    speed = baud_constant(baud)
    tty.setraw(fd, termios.TCSANOW)
    attrs = termios.tcgetattr(fd)
    attrs[2] |= termios.CLOCAL | termios.CREAD
    attrs[4] = speed
    attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class _Queue:
    """A bounded FIFO of readings; the oldest is dropped (and counted) when full."""

    def __init__(self, size: int) -> None:
        self._items: deque[Reading] = deque()
        self._size = size
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: Reading) -> None:
        with self._cond:
            if len(self._items) >= self._size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def take(self, timeout: float | None) -> Reading | None:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class StreamSensorSource:
    """Line-delimited readings from ``path``: a serial tty, a FIFO, or a file being appended to.

    ``kind="auto"`` decides from the file type. A file is tailed from its end unless
    ``from_start``; when it is truncated or replaced it is reopened from the start.
    """

    def __init__(
        self,
        path: str,
        *,
        kind: StreamKind = "auto",
        baud: int = 9600,
        fmt: LineFormat | None = None,
        from_start: bool = False,
        queue_size: int = 1024,
        poll_interval: float = 0.05,
        backoff: Backoff | None = None,
    ) -> None:
        if kind == "serial":
            baud_constant(baud)
        self.path = path
        self.kind: StreamKind = kind
        self.baud = baud
        self.fmt = fmt or LineFormat()
        self.health = SourceHealth(f"sensor:{path}", logger)
        self._from_start = from_start
        self._poll = poll_interval
        self._backoff = backoff or Backoff()
        self._queue = _Queue(queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sensor {path}", daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self._stop.is_set()

    def get(self, timeout: float | None = None) -> Reading | None:
        return self._queue.take(timeout)

    def stats(self) -> dict[str, int]:
        return self.health.stats(self._queue.dropped)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._queue.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            fd, kind = self._open(seek_end=first and not self._from_start)
            if fd is None:
                self._stop.wait(self._backoff.next_delay())
                continue
            first = False
            self._backoff.reset()
            try:
                reopen_now = self._pump(fd, kind)
            finally:
                os.close(fd)
            if not reopen_now:
                self._stop.wait(self._backoff.next_delay())

    def _open(self, *, seek_end: bool) -> tuple[int | None, str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            self.health.bad("open_failed", f"cannot open {self.path}: {exc.strerror}")
            return None, ""
        try:
            kind = self._kind_of(fd)
            if kind == "serial":
                configure_tty(fd, self.baud)
            elif kind == "file" and seek_end:
                os.lseek(fd, 0, os.SEEK_END)
        except (OSError, termios.error) as exc:
            os.close(fd)
            self.health.bad("open_failed", f"cannot configure {self.path}: {exc}")
            return None, ""
        return fd, kind

    def _kind_of(self, fd: int) -> str:
        if self.kind != "auto":
            return self.kind
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode):
            return "fifo"
        if stat.S_ISCHR(mode) and os.isatty(fd):
            return "serial"
        return "file"

    def _pump(self, fd: int, kind: str) -> bool:
        """Read until stopped or the stream fails; True when a replaced file should reopen now."""
        splitter = LineSplitter(self.fmt.max_line)
        while not self._stop.is_set():
            readable, _, _ = select.select([fd], [], [], self._poll)
            if not readable:
                if kind == "file" and self._file_replaced(fd):
                    return True
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                self.health.bad("read_failed", f"read from {self.path} failed: {exc.strerror}")
                return False
            if not data:
                if kind == "serial":
                    self.health.bad("hangup", f"{self.path} hung up")
                    return False
                if kind == "file" and self._file_replaced(fd):
                    return True
                self._stop.wait(self._poll)  # FIFO without a writer, or file at its end
                continue
            self._handle(splitter, data)
        return False

    def _handle(self, splitter: LineSplitter, data: bytes) -> None:
        before = splitter.overlong
        lines = splitter.feed(data)
        for _ in range(splitter.overlong - before):
            self.health.bad("line_too_long", f"line longer than {self.fmt.max_line} bytes")
        for line in lines:
            reading = parse_reading(line, self.fmt, self.health)
            if reading is not None:
                self._queue.put(reading)

    def _file_replaced(self, fd: int) -> bool:
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        current = os.fstat(fd)
        position = os.lseek(fd, 0, os.SEEK_CUR)
        replaced = now.st_ino != current.st_ino or current.st_size < position
        if replaced:
            self._from_start = True  # the new file is read from its beginning
        return replaced


def parse_reading(line: bytes, fmt: LineFormat, health: SourceHealth) -> Reading | None:
    """Parse one line into a :class:`Reading`, counting (not raising) a bad line."""
    try:
        values, device_t = parse_line(line, fmt)
    except LineError as exc:
        if exc.kind != "empty_line":
            health.bad(exc.kind, exc.message)
        return None
    return Reading(values, time.monotonic(), health.next_seq(), device_t, health.name)


class QueueReadingSource:
    """Readings from payloads an MQTT adapter puts on ``payloads`` (one or more lines each).

    The paho callback only enqueues bytes; parsing happens here, in the consumer's thread.
    """

    def __init__(
        self,
        payloads: queue.Queue[bytes],
        *,
        fmt: LineFormat | None = None,
        name: str = "mqtt",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self._payloads = payloads
        self.fmt = fmt or LineFormat()
        self.max_payload = max_payload
        self.health = SourceHealth(f"sensor:{name}", logger)
        self._pending: deque[Reading] = deque()
        self._closed = False

    @property
    def finished(self) -> bool:
        return self._closed

    def get(self, timeout: float | None = None) -> Reading | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending and not self._closed:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            try:
                payload = self._payloads.get(timeout=remaining)
            except queue.Empty:
                return None
            self._accept(payload)
        return self._pending.popleft() if self._pending else None

    def _accept(self, payload: bytes) -> None:
        if len(payload) > self.max_payload:
            self.health.bad("too_large", f"payload of {len(payload)} bytes > {self.max_payload}")
            return
        for line in payload.split(b"\n"):
            reading = parse_reading(line.rstrip(b"\r"), self.fmt, self.health)
            if reading is not None:
                self._pending.append(reading)

    def stats(self) -> dict[str, int]:
        return self.health.stats(0)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._payloads.put_nowait(b"")  # wake a consumer blocked in get()
