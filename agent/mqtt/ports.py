"""What the agent's MQTT users need from a connection: narrow protocols, pure.

:class:`~agent.mqtt.client.MqttClient` implements both; the updater, the Home Assistant announcer
and the sensor source take these instead, so tests run them against a fake broker that keeps
retained messages (``tests/support/fakebroker.py``) as well as against mosquitto; ``edge-fleet``'s
publisher and session take them too.
"""

from __future__ import annotations

from typing import Protocol

from agent.mqtt.events import BoundedQueue, Event, IncomingMessage, Subscription
from agent.mqtt.topics import Topic, TopicFilter


class Publisher(Protocol):
    """Sends messages on the live connection (raises ``TransportError`` when there is none)."""

    @property
    def connected(self) -> bool: ...

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a PUBLISH; a token that a later ``Published`` event names."""
        ...


class EventPublisher(Publisher, Protocol):
    """A publisher whose acknowledgements arrive as events (``Published`` on PUBACK, and the
    connection's ``Connected``/``Disconnected``/``ConnectRefused``): what ``edge-fleet`` needs."""

    @property
    def events(self) -> BoundedQueue[Event]: ...


class Subscriber(Protocol):
    """Delivers messages on topic filters to :class:`Subscription` queues.

    A subscription lasts across reconnects (the broker sends its retained messages again on each
    subscribe); messages are handed to ``messages`` when given (one queue for many filters).
    """

    @property
    def connected(self) -> bool: ...

    def subscribe(
        self,
        topic_filter: TopicFilter,
        *,
        qos: int = 1,
        maxsize: int = 1000,
        max_payload: int = 64 * 1024,
        messages: BoundedQueue[IncomingMessage] | None = None,
    ) -> Subscription: ...

    def subscribe_many(
        self,
        topic_filters: list[TopicFilter],
        *,
        qos: int = 1,
        maxsize: int = 1000,
        max_payload: int = 64 * 1024,
        messages: BoundedQueue[IncomingMessage] | None = None,
    ) -> list[Subscription]:
        """Several filters in one SUBSCRIBE."""
        ...

    def unsubscribe(self, *subscriptions: Subscription) -> None:
        """Stop delivering to ``subscriptions`` (unknown ones are ignored)."""
        ...


class Connection(Publisher, Subscriber, Protocol):
    """Both sides of one connection (what the Home Assistant announcer needs)."""


class EventConnection(EventPublisher, Subscriber, Protocol):
    """Both sides, with acknowledgements as events (``edge-fleet``'s session)."""
