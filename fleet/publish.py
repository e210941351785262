"""Publish many retained QoS 1 messages at broker speed with a bounded in-flight window.

Used for bundles (header + blocks). At most ``window`` PUBLISHes wait for their PUBACK at any
time; each PUBACK frees a slot for the next message. A dropped connection loses whatever was in
flight on it (a fresh paho client per connection, see :mod:`agent.mqtt.client`), so those
messages are sent again after the reconnect; retained messages are idempotent, so a message the
broker had already stored before the drop is harmless to send twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from agent.errors import TransportError
from agent.mqtt.events import Connected, ConnectRefused, Disconnected, Published
from agent.mqtt.policy import Next, Protocol, after_connack
from agent.mqtt.ports import EventPublisher
from agent.mqtt.topics import Topic

_log = logging.getLogger(__name__)

DEFAULT_WINDOW = 16
RESEND_S = 30.0  # no PUBACK for this long with messages in flight: send those again
Progress = Callable[[int, int], None]


def publish_all(
    client: EventPublisher,
    messages: Sequence[tuple[Topic, bytes]],
    *,
    retain: bool = True,
    window: int = DEFAULT_WINDOW,
    timeout_s: float = 600.0,
    progress: Progress | None = None,
    resend_s: float = RESEND_S,
) -> None:
    """Publish every message (QoS 1) and return once each has its PUBACK (what waited
    ``resend_s`` for one is sent again).

    Raises :class:`TransportError` when the broker does not acknowledge everything within
    ``timeout_s`` (naming how many are missing) or refuses the connection.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    todo: deque[int] = deque(range(len(messages)))
    in_flight: dict[int, int] = {}  # token -> message index
    acked = 0
    deadline = time.monotonic() + timeout_s
    progress_at = time.monotonic()
    while acked < len(messages):
        while todo and len(in_flight) < window and client.connected:
            index = todo[0]
            topic, payload = messages[index]
            try:
                token = client.publish(topic, payload, qos=1, retain=retain)
            except TransportError:
                break  # the connection dropped; the Disconnected event re-queues
            todo.popleft()
            in_flight[token] = index
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError(
                f"broker acknowledged {acked} of {len(messages)} messages in {timeout_s:g} s"
            )
        if in_flight and time.monotonic() - progress_at >= resend_s:
            # A 10,000-device rollout once waited here for PUBACKs that never came back with
            # the connection up; retained messages and signed commands are safe to repeat.
            _log.warning("no PUBACK for %d publishes in %g s; sending them again",
                         len(in_flight), resend_s)  # fmt: skip
            todo.extendleft(sorted(in_flight.values(), reverse=True))
            in_flight.clear()
            progress_at = time.monotonic()
            continue
        event = client.events.get(min(left, 1.0))
        if isinstance(event, Published) and in_flight.pop(event.mid, None) is not None:
            acked += 1
            progress_at = time.monotonic()
            if progress is not None:
                progress(acked, len(messages))
        elif isinstance(event, Disconnected) and in_flight:
            _log.warning("connection lost with %d publishes in flight; resending", len(in_flight))
            todo.extendleft(sorted(in_flight.values(), reverse=True))
            in_flight.clear()
        elif isinstance(event, ConnectRefused) and not is_fallback(event):
            raise TransportError(f"broker refused the connection: {event.text}")
        elif isinstance(event, Connected):
            _log.debug("connected again; %d messages left", len(todo))


def is_fallback(event: ConnectRefused) -> bool:
    """A refusal of MQTT 5, which the client answers by falling back to 3.1.1 (not a failure:
    it is still on the queue when the 3.1.1 connection is up)."""
    return after_connack(Protocol.MQTT5, event.code).next is Next.FALL_BACK


def clear_retained(
    client: EventPublisher,
    topics: Sequence[Topic],
    *,
    window: int = DEFAULT_WINDOW,
    timeout_s: float = 600.0,
) -> None:
    """Delete retained messages: an empty retained publish on each topic."""
    publish_all(client, [(t, b"") for t in topics], window=window, timeout_s=timeout_s)
