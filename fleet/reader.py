"""Reading every device's retained status without trusting a broker's queue sizes.

Two ways, both counted against the registry when there is one:

* ``exact`` (the default with a registry): one exact-topic subscription per device and topic
  (``<prefix>/<id>/status`` and ``.../availability``), sent 8 filters per SUBSCRIBE (AWS IoT
  Core's limit), with at most ``window`` devices outstanding (flow control: never more retained
  messages on their way than a default mosquitto queues per client, 1,000). A device is read
  when both its messages arrived, or when the broker acknowledged both subscriptions and the
  connection then stayed quiet for ``settle_s`` (no retained message: it never announced). No
  wildcard retained delivery is needed, so clustered brokers that keep retained messages per
  node or skip wildcard delivery of them still answer, as long as any node holds the topic.
* ``wildcard``: ``<prefix>/+/status`` and ``/+/availability``, read until quiet. Cheap, but a
  broker drops what exceeds its per-client queue; only the registry can tell it happened.

:class:`ReadReport` says what was read; :attr:`ReadReport.complete` is what commands check.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.mqtt.events import BoundedQueue, IncomingMessage, Subscription
from agent.mqtt.messages import MAX_STATUS_BYTES
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import DeviceTopics, Topic, TopicFilter
from fleet.registry import Registry
from fleet.status import FleetView, device_topic

KINDS = ("availability", "status")
FILTERS_PER_SUBSCRIBE = 8
DEFAULT_WINDOW = 200  # devices outstanding: 400 retained messages at most on their way
DEFAULT_SETTLE_S = 1.0
# Exact reads are QoS 0: a broker holds QoS 1 deliveries to one client to a small in-flight
# window (mosquitto: 20) and drops what its queue (1,000) cannot hold, so 10,000 devices'
# progress overflowed it; QoS 0 is bounded by how fast we read the socket instead. What is lost
# either way is read again (:meth:`fleet.session.FleetSession.reread`): statuses are retained
# state, not events. (``wildcard`` reads stay QoS 1, the mode whose losses only a registry sees.)
STATUS_QOS = 0


@dataclass
class ReadReport:
    mode: str
    expected: int | None  # registered devices; None without a registry
    read: set[str] = field(default_factory=set)
    unread: list[str] = field(default_factory=list)  # registered, not read before the timeout
    never_announced: list[str] = field(default_factory=list)  # read: no retained message
    unregistered: list[str] = field(default_factory=list)  # announced, not in the registry
    dropped: int = 0  # messages our client dropped (queue full or oversize)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Every registered device read, nothing dropped. Without a registry: unknown."""
        return self.expected is not None and not self.unread and self.dropped == 0

    def problem(self) -> str | None:
        """One line naming why the view is not complete, or ``None``."""
        if self.expected is None:
            return None
        parts = []
        if self.unread:
            listed = ", ".join(self.unread[:5]) + (" ..." if len(self.unread) > 5 else "")
            parts.append(f"{len(self.unread)} of {self.expected} registered not read ({listed})")
        if self.dropped:
            parts.append(f"{self.dropped} message(s) dropped by the client queue")
        return "; ".join(parts) or None

    def to_obj(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "complete": self.complete,
            "expected": self.expected,
            "read": len(self.read),
            "unread": self.unread,
            "never_announced": self.never_announced,
            "unregistered": self.unregistered,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class _Pending:
    subscriptions: list[Subscription]
    got: set[str] = field(default_factory=set)
    acked_at: float | None = None


class ExactReader:
    """Drives the exact-topic read over ``client``; the subscriptions stay (live updates)."""

    def __init__(
        self,
        client: Subscriber,
        prefix: str,
        inbox: BoundedQueue[IncomingMessage],
        view: FleetView,
        *,
        window: int = DEFAULT_WINDOW,
        settle_s: float = DEFAULT_SETTLE_S,
        settle_only: bool = False,
    ) -> None:
        """``settle_only``: a device is read only once every SUBACK came and ``settle_s``
        passed quietly, never as soon as both messages arrived (several cluster nodes each send
        their own retained copy; the first pair is not necessarily the newest)."""
        self.client, self.prefix, self.inbox, self.view = client, prefix, inbox, view
        self.settle_only = settle_only
        self.window = max(1, window)
        self.settle_s = settle_s
        self.subscriptions: list[Subscription] = []
        self._prefix = prefix.rstrip("/") + "/"

    def read(self, devices: Sequence[str], timeout_s: float) -> tuple[set[str], list[str]]:
        """``(read, unread)``: every device read, or those left when ``timeout_s`` passed."""
        todo = deque(devices)
        outstanding: dict[str, _Pending] = {}
        done: set[str] = set()
        deadline = time.monotonic() + timeout_s
        last_message = time.monotonic()
        while (todo or outstanding) and time.monotonic() < deadline:
            per_packet = FILTERS_PER_SUBSCRIBE // len(KINDS)
            while todo and len(outstanding) < self.window and self.client.connected:
                batch = [todo.popleft() for _ in range(min(per_packet, len(todo)))]
                self._subscribe(batch, outstanding)
            message = self.inbox.get(0.05)
            now = time.monotonic()
            while message is not None:
                last_message = now
                self._take(message, outstanding, done)
                message = self.inbox.get(0)
            for device, pending in list(outstanding.items()):
                if pending.acked_at is None:
                    if all(s.acked.is_set() for s in pending.subscriptions):
                        pending.acked_at = now
                elif now - max(pending.acked_at, last_message) >= self.settle_s:
                    done.add(device)
                    del outstanding[device]
        return done, sorted(outstanding) + sorted(todo)

    def _subscribe(self, devices: list[str], outstanding: dict[str, _Pending]) -> None:
        filters = [
            TopicFilter(str(getattr(DeviceTopics(self.prefix, d), kind)))
            for d in devices
            for kind in KINDS
        ]
        subscriptions = self.client.subscribe_many(
            filters, qos=STATUS_QOS, max_payload=MAX_STATUS_BYTES, messages=self.inbox
        )
        self.subscriptions += subscriptions
        for index, device in enumerate(devices):
            pair = subscriptions[index * len(KINDS) : (index + 1) * len(KINDS)]
            outstanding[device] = _Pending(pair)

    def _take(
        self, message: IncomingMessage, outstanding: dict[str, _Pending], done: set[str]
    ) -> None:
        self.view.apply(message.topic, message.payload, retained=message.retain)
        place = device_topic(self._prefix, message.topic)
        if place is None or place[0] not in outstanding or self.settle_only:
            return
        pending = outstanding[place[0]]
        pending.got.add(place[1])
        if len(pending.got) == len(KINDS):
            done.add(place[0])
            del outstanding[place[0]]


def finish_report(
    report: ReadReport, view: FleetView, registry: Registry | None, dropped: int
) -> ReadReport:
    """Fill in what follows from the view: never-announced and unregistered devices."""
    seen = {row.device_id for row in view.rows()}
    report.dropped = dropped
    if registry is not None:
        report.never_announced = sorted(d for d in report.read if d not in seen)
        report.unregistered = sorted(d for d in seen if d not in registry)
    return report


def read_retained(
    client: Subscriber,
    topics: Sequence[Topic],
    *,
    max_payload: int,
    window: int = 2 * DEFAULT_WINDOW,
    settle_s: float = DEFAULT_SETTLE_S,
    timeout_s: float = 60.0,
) -> tuple[dict[str, bytes], list[str]]:
    """The retained message of each exact topic: ``(payloads, unread)``, read as statuses are
    (8 filters per SUBSCRIBE, at most ``window`` topics outstanding, QoS 0) without any
    wildcard. A topic with no retained message is read once its SUBACK came and ``settle_s``
    passed quietly; it is absent from ``payloads``. The subscriptions end with the read."""
    inbox: BoundedQueue[IncomingMessage] = BoundedQueue(max(1, window) * 2)
    todo = deque(str(t) for t in topics)
    outstanding: dict[str, tuple[Subscription, float | None]] = {}
    payloads: dict[str, bytes] = {}
    deadline = time.monotonic() + timeout_s
    last_message = time.monotonic()
    while (todo or outstanding) and time.monotonic() < deadline:
        while todo and len(outstanding) < max(1, window) and client.connected:
            batch = [todo.popleft() for _ in range(min(FILTERS_PER_SUBSCRIBE, len(todo)))]
            fresh = client.subscribe_many(
                [TopicFilter(t) for t in batch], qos=STATUS_QOS, max_payload=max_payload,
                messages=inbox,
            )  # fmt: skip
            outstanding.update((t, (s, None)) for t, s in zip(batch, fresh, strict=True))
        now = time.monotonic()
        finished: list[Subscription] = []
        for message in _arrived(inbox):
            last_message = now
            if message.topic in outstanding and message.payload:
                payloads[message.topic] = message.payload
                finished.append(outstanding.pop(message.topic)[0])
        for topic, (subscription, acked_at) in list(outstanding.items()):
            if acked_at is None and subscription.acked.is_set():
                outstanding[topic] = (subscription, now)
            elif acked_at is not None and now - max(acked_at, last_message) >= settle_s:
                finished.append(outstanding.pop(topic)[0])
        client.unsubscribe(*finished)  # one UNSUBSCRIBE (and one pass over the client's list)
    client.unsubscribe(*(s for s, _ in outstanding.values()))
    return payloads, sorted(outstanding) + sorted(todo)


def _arrived(inbox: BoundedQueue[IncomingMessage]) -> list[IncomingMessage]:
    first = inbox.get(0.05)
    return [] if first is None else [first, *inbox.drain()]
