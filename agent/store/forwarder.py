"""Moves outbox items to the MQTT client (QoS 1, bounded in-flight window), deletes on PUBACK.

Runs on the service thread, the only thread that touches the outbox. Each :meth:`Forwarder.step`
commits the outbox's pending results when due (group commit), deletes the PUBACKs it finds in
one transaction and publishes. With ``coalesce`` topics (the results topic), a run of several
waiting results on one such topic goes out as one batch message (:mod:`agent.mqtt.batch`); a
lone result goes out alone. The window counts messages, so a batch takes one slot.

The decisions are pure (:func:`free_slots`, :func:`payload_to_send`, :func:`plan_messages`);
:class:`Forwarder` applies them to the outbox and the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent.errors import ErrorLog, TransportError
from agent.mqtt.batch import MAX_BATCH_BYTES, MAX_BATCH_RESULTS, batch_size, encode_batch
from agent.mqtt.events import (
    BoundedQueue,
    Connected,
    ConnectRefused,
    Disconnected,
    Event,
    Published,
)
from agent.mqtt.messages import MessageError, mark_historical
from agent.mqtt.topics import Topic
from agent.store.inflight import OutboxItem
from agent.store.outbox import Outbox, OutboxError

_log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What the forwarder needs from the MQTT client (``agent.mqtt.client.MqttClient``)."""

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int: ...


#: Validated topics kept (an outbox holds results, events and a few more).
_MAX_TOPICS = 64


def free_slots(connected: bool, window: int, in_flight: int) -> int:
    """How many more items may be published now."""
    return max(0, window - in_flight) if connected else 0


def payload_to_send(item: OutboxItem, replay: Callable[[bytes], bytes]) -> bytes:
    """The stored payload, or its replay form (``historical: true``) for a backlog item."""
    if not item.historical:
        return item.payload
    try:
        return replay(item.payload)
    except MessageError:
        return item.payload  # not a result message: send it unchanged


def plan_messages(
    topics: list[str],
    sizes: list[int],
    coalesce: frozenset[str],
    messages: int,
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    max_items: int = MAX_BATCH_RESULTS,
) -> list[tuple[int, int]]:
    """At most ``messages`` messages for items of these topics and payload sizes, in order, as
    ``(start, end)`` index ranges: consecutive items on one ``coalesce`` topic share a batch
    while it stays within ``max_bytes`` and ``max_items``; anything else goes alone."""
    plan: list[tuple[int, int]] = []
    start = 0
    while start < len(topics) and len(plan) < messages:
        end = start + 1
        if topics[start] in coalesce:
            total = batch_size(sizes[start:end])
            while end < len(topics) and topics[end] == topics[start] and end - start < max_items:
                total += sizes[end] + 1
                if total > max_bytes:
                    break
                end += 1
        plan.append((start, end))
        start = end
    return plan


class Forwarder:
    """Store-and-forward pump: feed it the client's events, then call :meth:`pump`."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher,
        *,
        window: int = 32,
        qos: int = 1,
        inflight_timeout_s: float = 60.0,
        replay: Callable[[bytes], bytes] = mark_historical,
        coalesce: frozenset[str] = frozenset(),
        read_max: int = 4096,
    ) -> None:
        """``coalesce``: topics whose waiting items may share one batch message (empty: one
        message per item); ``read_max``: most rows read from the outbox per pump."""
        if window <= 0:
            raise ValueError("the in-flight window must be positive")
        self.outbox = outbox
        self.publisher = publisher
        self.window = window
        self.qos = qos
        self.inflight_timeout_s = inflight_timeout_s
        self._replay = replay
        self.coalesce = coalesce
        self.read_max = read_max
        self._generation = 0
        self.connected = False
        self.sent = 0
        self.acked = 0
        self._errors = ErrorLog()
        self._topics: dict[str, Topic] = {}  # validated once per topic name, not per message
        #: Told of every outbox failure (a group commit on a full disk), e.g. to set health.
        self.on_outbox_error: Callable[[OutboxError], None] | None = None

    def handle(self, event: Event) -> None:
        """Apply one client event: a lost connection turns the queue into backlog (historical);
        PUBACK deletes."""
        if isinstance(event, Published):
            self.acked += self.outbox.ack_many([event.mid])
        elif isinstance(event, Connected):
            self._generation = event.generation
            self.connected = True
            self.outbox.live = True
            self.outbox.release_inflight()
        elif (
            isinstance(event, Disconnected | ConnectRefused)
            and event.generation >= self._generation
        ):
            self.connected = False
            self.outbox.live = False
            self.outbox.release_inflight()
            self.outbox.mark_backlog()

    def pump(self) -> int:
        """Publish as many committed items as the window allows; return how many were handed
        over (results, not messages)."""
        if self.outbox.release_stale(self.inflight_timeout_s):
            _log.warning("PUBACK missing for %ss; re-sending", self.inflight_timeout_s)
        free = free_slots(self.connected, self.window, self.outbox.in_flight)
        per_message = MAX_BATCH_RESULTS if self.coalesce else 1
        items = self.outbox.next_batch(min(free * per_message, self.read_max))
        # Planned on the stored sizes (a replay only turns "historical" false into true, one
        # byte shorter), so only what goes out now is rebuilt.
        plan = plan_messages(
            [item.topic for item in items], [len(i.payload) for i in items], self.coalesce, free
        )
        count = 0
        for start, planned in plan:
            end = planned
            payloads = [payload_to_send(item, self._replay) for item in items[start:end]]
            try:
                data = payloads[0] if end - start == 1 else encode_batch(payloads)
            except MessageError:  # a replay that grew past the bound: this one alone, then stop
                data, end = payloads[0], start + 1
            try:
                token = self.publisher.publish(self._topic(items[start].topic), data, self.qos)
            except TransportError as exc:
                _log.debug("publish paused: %s", exc)
                break
            self.outbox.mark_sent_many([item.seq for item in items[start:end]], token)
            count += end - start
            if end != planned:
                break  # the rest of this batch must go before anything after it
        self.sent += count
        return count

    def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            if len(self._topics) >= _MAX_TOPICS:
                self._topics.clear()
            topic = self._topics[name] = Topic(name)
        return topic

    def step(self, events: BoundedQueue[Event], wait_s: float) -> list[Event]:
        """Commit pending results if due (all of them before a wait), wait up to ``wait_s`` for
        events, apply all that are queued, pump; return the events."""
        if self.outbox.pending and (wait_s > 0 or self.outbox.commit_due()):
            self._guarded(self.outbox.commit)
        seen: list[Event] = []
        acks: list[int] = []  # consecutive PUBACKs are deleted in one transaction
        event = events.get(wait_s)
        while event is not None:
            seen.append(event)
            if isinstance(event, Published):
                acks.append(event.mid)
            else:
                self._guarded(self._ack, acks)
                acks = []
                self._guarded(self.handle, event)
            event = events.get(0)
        self._guarded(self._ack, acks)
        self._guarded(self.pump)
        return seen

    def _ack(self, tokens: list[int]) -> None:
        self.acked += self.outbox.ack_many(tokens)

    def _guarded(self, action: Callable[..., object], *args: object) -> None:
        """Outbox trouble (disk full) is counted and logged once a minute; the loop goes on."""
        try:
            action(*args)
        except OutboxError as exc:
            if self.on_outbox_error is not None:
                self.on_outbox_error(exc)  # it logs, as it does for its own outbox errors
            elif self._errors.record("outbox", time.monotonic()):
                _log.error("%s (logged once per minute)", exc)
