"""Moves outbox items to the MQTT client (QoS 1, bounded in-flight window), deletes on PUBACK.

Runs on the service thread, the only thread that touches the outbox. The decisions are pure
(:func:`free_slots`, :func:`payload_to_send`); :class:`Forwarder` applies them to the outbox and
the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from agent.errors import ErrorLog, TransportError
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
from agent.store.outbox import Outbox, OutboxError, OutboxItem

_log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What the forwarder needs from the MQTT client (``agent.mqtt.client.MqttClient``)."""

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int: ...


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
    ) -> None:
        if window <= 0:
            raise ValueError("the in-flight window must be positive")
        self.outbox = outbox
        self.publisher = publisher
        self.window = window
        self.qos = qos
        self.inflight_timeout_s = inflight_timeout_s
        self._replay = replay
        self._generation = 0
        self.connected = False
        self.sent = 0
        self.acked = 0
        self._errors = ErrorLog()

    def handle(self, event: Event) -> None:
        """Apply one client event: a lost connection turns the queue into backlog (historical);
        PUBACK deletes."""
        if isinstance(event, Published):
            if self.outbox.ack(event.mid):
                self.acked += 1
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
        """Publish as many queued items as the window allows; return how many were handed over."""
        if self.outbox.release_stale(self.inflight_timeout_s):
            _log.warning("PUBACK missing for %ss; re-sending", self.inflight_timeout_s)
        batch = self.outbox.next_batch(
            free_slots(self.connected, self.window, self.outbox.in_flight)
        )
        count = 0
        for item in batch:
            try:
                token = self.publisher.publish(
                    Topic(item.topic), payload_to_send(item, self._replay), self.qos
                )
            except TransportError as exc:
                _log.debug("publish paused: %s", exc)
                break
            self.outbox.mark_sent(item.seq, token)
            count += 1
        self.sent += count
        return count

    def step(self, events: BoundedQueue[Event], wait_s: float) -> list[Event]:
        """Wait up to ``wait_s`` for events, apply all that are queued, pump; return them."""
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
            if self._errors.record("outbox", time.monotonic()):
                _log.error("%s (logged once per minute)", exc)
