"""What the network thread hands to the service thread: events and incoming messages.

The paho callbacks only build these small values and put them on bounded queues; the service
thread does the work. Overflows are counted, never blocking the network thread.
"""

from __future__ import annotations

import queue
import threading
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
    ) -> None:
        """``messages``: a queue shared with other subscriptions (one consumer, many filters)."""
        self.topic_filter = topic_filter
        self.qos = qos
        self.max_payload = max_payload
        self.messages = messages if messages is not None else BoundedQueue(maxsize)
        self._lock = threading.Lock()
        self._oversize = 0

    def deliver(self, message: IncomingMessage) -> None:
        """Called on the network thread: hand off, or count the drop."""
        if len(message.payload) > self.max_payload:
            with self._lock:
                self._oversize += 1
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
