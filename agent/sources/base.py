"""What every source yields, how it counts bad input, and the newest-only hand-off slot."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from agent.backoff import Backoff

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Frame:
    """One image: ``uint8`` BGR ``HxWx3`` (or gray ``HxW``) as OpenCV returns it.

    ``t`` is ``time.monotonic()`` at capture; ``seq`` counts frames the source produced (gaps are
    frames dropped before the consumer took them); ``source`` names the source
    (``imagedir:/srv/in``, ``camera``) and ``file`` the image file for an image folder.
    """

    image: np.ndarray
    t: float
    seq: int
    source: str = ""
    file: str = ""


@dataclass(frozen=True)
class Reading:
    """One sensor sample: its values in field order, the monotonic arrival time and a sequence.

    ``device_t`` is the sender's own timestamp (the ``t`` field or CSV time column) when present.
    """

    values: tuple[float, ...]
    t: float
    seq: int
    device_t: float | None = None
    source: str = ""


class Source(Protocol[T_co]):
    """A stream of items. ``get`` returns ``None`` on timeout or once ``finished``."""

    @property
    def finished(self) -> bool: ...

    def get(self, timeout: float | None = None) -> T_co | None: ...

    def stats(self) -> dict[str, int]: ...

    def close(self) -> None: ...


@dataclass
class ErrorCounter:
    """Counts bad input per kind and decides when a kind may be logged (at most once per interval).

    Pure: the caller passes the clock. ``record`` returns True when this occurrence should be
    logged.
    """

    interval: float = 60.0
    counts: dict[str, int] = field(default_factory=dict)
    _last_logged: dict[str, float] = field(default_factory=dict)

    def record(self, kind: str, now: float) -> bool:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        last = self._last_logged.get(kind)
        if last is None or now - last >= self.interval:
            self._last_logged[kind] = now
            return True
        return False

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class LatestSlot(Generic[T]):
    """A one-item hand-off between a producer thread and a consumer.

    With ``block=False`` (live sources) a new item replaces an untaken one and ``dropped`` counts
    the replaced items. With ``block=True`` (benchmarks over a file) the producer waits for the
    consumer instead, so nothing is dropped.
    """

    def __init__(self, *, block: bool = False) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._block = block
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; returns False when the slot was closed."""
        with self._cond:
            if self._block:
                while self._item is not None and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting up to ``timeout`` seconds; ``None`` on timeout or close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._item is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class SourceHealth:
    """Counters every source keeps: items produced, items dropped, bad input by kind.

    Bad input is logged at most once per kind per minute (with the running count).
    """

    def __init__(self, name: str, logger: logging.Logger, interval: float = 60.0) -> None:
        self.name = name
        self.produced = 0
        self.dropped = 0
        self.errors = ErrorCounter(interval)
        self._logger = logger
        self._lock = threading.Lock()

    def bad(self, kind: str, message: str) -> None:
        with self._lock:
            should_log = self.errors.record(kind, time.monotonic())
            count = self.errors.counts[kind]
        if should_log:
            self._logger.warning("source %s: %s (%s, %d so far)", self.name, message, kind, count)

    def next_seq(self) -> int:
        with self._lock:
            self.produced += 1
            return self.produced

    def stats(self, dropped: int | None = None) -> dict[str, int]:
        with self._lock:
            result = {
                "produced": self.produced,
                "dropped": self.dropped if dropped is None else dropped,
                "errors": self.errors.total,
            }
            result.update({f"error.{k}": v for k, v in self.errors.counts.items()})
        return result


class CaptureSource:
    """A capture thread that hands frames over newest-only through a :class:`LatestSlot`.

    A subclass calls :meth:`_init_capture` first, then :meth:`_start_capture` once its own state
    is set, and implements ``_session``: one open session of its device, stream or file, which
    returns ``"ended"`` or ``"closed"`` (the thread stops) or ``"failed"`` (reopened after a
    jittered backoff delay).
    """

    health: SourceHealth
    _slot: LatestSlot[Frame]

    def _init_capture(
        self, health: SourceHealth, *, keep_all: bool, backoff: Backoff | None
    ) -> None:
        self.health = health
        self._slot = LatestSlot(block=keep_all)
        self._skipped = 0  # frames not due under the fps cap, never decoded
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._finished = threading.Event()

    def _start_capture(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        """True once a non-looping file has ended (or the source was closed)."""
        return self._finished.is_set()

    def get(self, timeout: float | None = None) -> Frame | None:
        return self._slot.take(timeout)

    def stats(self) -> dict[str, int]:
        return self.health.stats(self._slot.dropped + self._skipped)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._slot.close()
        self._thread.join(timeout)
        self._finished.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                outcome = self._session()
                if outcome in ("ended", "closed"):
                    return
                if outcome == "failed":
                    self._stop.wait(self._backoff.next_delay())
        finally:
            self._finished.set()
            self._slot.close()

    def _session(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class FrameNeed:
    """The smallest frame the consumer can use: the model input size and colour.

    A decoder that can produce a smaller image cheaply (JPEG's scaled IDCT decodes at 1/2, 1/4
    or 1/8 size for a fraction of the work) may deliver any frame at least this large along the
    axes the resize keeps: both axes for a stretch resize, the fitted axis for a letterbox.
    """

    width: int
    height: int
    gray: bool = False
    letterbox: bool = False


JPEG_SCALES = (8, 4, 2)


def jpeg_reduction(src_w: int, src_h: int, need: FrameNeed | None) -> int:
    """The largest JPEG scale-down factor (1, 2, 4 or 8) that still satisfies ``need``."""
    if need is None or src_w <= 0 or src_h <= 0:
        return 1
    fx, fy = src_w / need.width, src_h / need.height
    room = max(fx, fy) if need.letterbox else min(fx, fy)
    return next((k for k in JPEG_SCALES if k <= room), 1)
