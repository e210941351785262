"""What the network thread hands to the service thread: events and incoming messages.

The paho callbacks only build these small values and put them on bounded queues; the service
thread does the work. Overflows are counted, never blocking the network thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.mqtt.topics import TopicFilter


@dataclass(frozen=True, slots=True)
class Connected:
    """A CONNACK accepted the connection; subscriptions and ``online`` were sent."""

    generation: int
    protocol: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection (or an attempt) ended. Messages in flight on it will not be acknowledged."""

    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectRefused:
    """The broker answered CONNECT with a failure reason code; this is not a connection."""

    generation: int
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class Published:
    """The broker acknowledged a QoS 1 publish (PUBACK); ``mid`` is what ``publish`` returned."""

    mid: int


Event = Connected | Disconnected | ConnectRefused | Published


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


T = TypeVar("T")
_log = logging.getLogger(__name__)
DROP_LOG_PERIOD_S = 60.0


def drop_label(topic: str) -> str:
    """The status counter a dropped message on ``topic`` is counted under (few, bounded names):
    ``commands/<name>`` for a device's command topics, ``bundles`` for any bundle part, else the
    topic's last level."""
    levels = topic.split("/")
    if len(levels) >= 2 and levels[-2] == "commands":
        return f"commands/{levels[-1][:32]}"
    if "bundles" in levels:
        return "bundles"
    return levels[-1][:32] or "root"


class DropLog:
    """Messages dropped before parsing, counted per :func:`drop_label` and logged at most once
    per ``period_s`` per label (with the number dropped since the last line). Thread-safe: the
    network thread records, the service thread reads :meth:`counts` for its status."""

    def __init__(
        self, period_s: float = DROP_LOG_PERIOD_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_logged: dict[str, float] = {}
        self._gauges: dict[str, Callable[[], int | None]] = {}

    def record(self, topic: str, size: int, limit: int) -> None:
        key = f"mqtt_oversize.{drop_label(topic)}"
        now = self._clock()
        with self._lock:
            self._counts[key] += 1
            self._unlogged[key] += 1
            last = self._last_logged.get(key)
            if last is not None and now - last < self._period_s:
                return
            self._last_logged[key] = now
            count, self._unlogged[key] = self._unlogged[key], 0
        _log.warning(
            "dropped %s oversize message(s) on %s (this one %s bytes, limit %s); counted in "
            "status errors.%s",
            count,
            topic,
            size,
            limit,
            key,
        )

    def count(self, key: str) -> None:
        """Count a message refused after parsing (a command or root that did not verify)."""
        with self._lock:
            self._counts[key] += 1

    def gauge(self, key: str, read: Callable[[], int | None]) -> None:
        """Report ``read()`` as ``key`` with the counts whenever it is not ``None``."""
        with self._lock:
            self._gauges[key] = read

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts, gauges = dict(self._counts), dict(self._gauges)
        for key, read in gauges.items():
            value = read()
            if value is not None:
                counts[key] = value
        return counts


class BoundedQueue(Generic[T]):
    """A queue that never blocks the producer: a full queue drops the new item and counts it."""

    def __init__(self, maxsize: int) -> None:
        self._queue: queue.Queue[T] = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._dropped = 0

    def offer(self, item: T) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        return True

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, or ``None`` after ``timeout`` seconds (0 = do not wait)."""
        try:
            if timeout == 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[T]:
        items: list[T] = []
        while (item := self.get(0)) is not None:
            items.append(item)
        return items

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def qsize(self) -> int:
        return self._queue.qsize()


class Subscription:
    """Messages for one topic filter, with an oversize cap and drop counters."""

    def __init__(
        self,
        topic_filter: TopicFilter,
        qos: int,
        maxsize: int,
        max_payload: int,
        messages: BoundedQueue[IncomingMessage] | None = None,
        *,
        drops: DropLog | None = None,
    ) -> None:
        """``messages``: a queue shared with other subscriptions (one consumer, many filters);
        ``drops``: where oversize messages are counted and logged too (the client's)."""
        self.topic_filter = topic_filter
        self.drops = drops
        self.qos = qos
        self.max_payload = max_payload
        self.messages = messages if messages is not None else BoundedQueue(maxsize)
        self.acked = threading.Event()  # a SUBACK granted this filter (on some connection)
        self._lock = threading.Lock()
        self._oversize = 0

    def deliver(self, message: IncomingMessage) -> None:
        """Called on the network thread: hand off, or count the drop."""
        if len(message.payload) > self.max_payload:
            with self._lock:
                self._oversize += 1
            if self.drops is not None:
                self.drops.record(message.topic, len(message.payload), self.max_payload)
            return
        self.messages.offer(message)

    def get(self, timeout: float | None = None) -> IncomingMessage | None:
        return self.messages.get(timeout)

    @property
    def dropped_oversize(self) -> int:
        with self._lock:
            return self._oversize

    @property
    def dropped_overflow(self) -> int:
        return self.messages.dropped


class SubscriptionIndex:
    """Which subscriptions a topic is delivered to: exact filters by a dict lookup (a fleet
    manager holds thousands of them), wildcard filters by matching. Not thread-safe."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcard: list[Subscription] = []

    def add(self, subscription: Subscription) -> None:
        name = str(subscription.topic_filter)
        if "+" in name or "#" in name:
            self._wildcard.append(subscription)
        else:
            self._exact.setdefault(name, []).append(subscription)

    def remove(self, subscription: Subscription) -> None:
        name = str(subscription.topic_filter)
        if "+" in name or "#" in name:
            self._wildcard.remove(subscription)
            return
        exact = self._exact[name]
        exact.remove(subscription)
        if not exact:
            del self._exact[name]

    def matching(self, topic: str) -> list[Subscription]:
        found = list(self._exact.get(topic, ()))
        return found + [s for s in self._wildcard if s.topic_filter.matches(topic)]
