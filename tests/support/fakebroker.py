"""An in-memory MQTT broker with one device connection: the ``Publisher`` and ``Subscriber``
protocols of :mod:`agent.mqtt.ports`, implemented faithfully enough to test the updater in-process.

Modelled on python-tuf's ``tests/repository_simulator.py``: the fake serves what the test put
there, from memory, through the very interface the production code uses, and records what was
asked for so that a test can assert on requests as well as on outcomes.

What it does as mosquitto + :class:`~agent.mqtt.client.MqttClient` do:

* **Retained messages.** :meth:`FakeBroker.put` with ``retain=True`` stores the message (an empty
  payload clears it) and delivers it to matching subscriptions; a SUBSCRIBE delivers every
  retained message matching each new filter (``retain=True``), also when the same filter is
  already subscribed -- so a second subscription sees duplicates, as on a real broker.
* **Fan-out on the client.** A message goes to every local :class:`Subscription` whose filter
  matches (``MqttClient._on_message``), with the same oversize cap and bounded queues.
* **Unsubscribe** stops delivery at once; unknown subscriptions are ignored.
* **Connection.** :meth:`disconnect` drops messages published meanwhile (clean session, as the
  agent's client connects); :meth:`reconnect` resubscribes every filter, so the broker sends
  its retained messages again; :meth:`new_session` is a new process connecting (no
  subscription survives).

``subscribes`` and ``unsubscribes`` record each packet's filters, in order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from agent.errors import TransportError
from agent.mqtt.events import BoundedQueue, IncomingMessage, Subscription
from agent.mqtt.topics import Topic, TopicFilter


@dataclass(frozen=True)
class Sent:
    """A message the device published."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class FakeBroker:
    connected_now: bool = True
    retained: dict[str, bytes] = field(default_factory=dict)
    subscribes: list[list[str]] = field(default_factory=list)
    unsubscribes: list[list[str]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._subscriptions: list[Subscription] = []
        self._token = 0

    # -- the test's side (the fleet publishing) ---------------------------------------------------

    def put(self, topic: str | Topic, payload: bytes, *, retain: bool = True) -> None:
        """Publish as another client would: retained when asked, delivered when connected."""
        name = str(topic)
        with self._lock:
            if retain:
                if payload:
                    self.retained[name] = payload
                else:
                    self.retained.pop(name, None)
            if self.connected_now:
                self._deliver(IncomingMessage(name, payload, 1, False))

    def disconnect(self) -> None:
        with self._lock:
            self.connected_now = False

    def reconnect(self) -> None:
        """Connect again: every subscription's filter is subscribed again (one packet each)."""
        with self._lock:
            self.connected_now = True
            for subscription in list(self._subscriptions):
                self.subscribes.append([str(subscription.topic_filter)])
                self._send_retained(subscription.topic_filter)

    def new_session(self) -> None:
        """The device process ended and a new one connects: no subscription survives."""
        with self._lock:
            self._subscriptions.clear()

    def requested_blocks(self, bid: str, since: int = 0) -> list[int]:
        """Block indices subscribed for bundle ``bid`` in SUBSCRIBE packets ``since`` onwards,
        in order (what mosquitto's subscribe log shows)."""
        marker = f"/bundles/{bid}/blocks/"
        with self._lock:
            packets = self.subscribes[since:]
        return [
            int(name.rsplit("/", 1)[1]) for packet in packets for name in packet if marker in name
        ]

    @property
    def subscribed(self) -> set[str]:
        """The filters with a live subscription now."""
        with self._lock:
            return {str(s.topic_filter) for s in self._subscriptions}

    # -- the device's side: agent.mqtt.ports.Publisher and Subscriber ----------------------------

    @property
    def connected(self) -> bool:
        return self.connected_now

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        with self._lock:
            if not self.connected_now:
                raise TransportError("not connected to the broker")
            self.sent.append(Sent(str(topic), payload, qos, retain))
            self._token += 1
            if retain:
                self.put(topic, payload, retain=True)
            else:
                self._deliver(IncomingMessage(str(topic), payload, qos, False))
            return self._token

    def subscribe(
        self,
        topic_filter: TopicFilter,
        *,
        qos: int = 1,
        maxsize: int = 1000,
        max_payload: int = 64 * 1024,
        messages: BoundedQueue[IncomingMessage] | None = None,
    ) -> Subscription:
        return self.subscribe_many(
            [topic_filter], qos=qos, maxsize=maxsize, max_payload=max_payload, messages=messages
        )[0]

    def subscribe_many(
        self,
        topic_filters: list[TopicFilter],
        *,
        qos: int = 1,
        maxsize: int = 1000,
        max_payload: int = 64 * 1024,
        messages: BoundedQueue[IncomingMessage] | None = None,
    ) -> list[Subscription]:
        subscriptions = [
            Subscription(f, qos, maxsize, max_payload, messages) for f in topic_filters
        ]
        with self._lock:
            self._subscriptions.extend(subscriptions)
            if self.connected_now and subscriptions:
                self.subscribes.append([str(f) for f in topic_filters])
                for topic_filter in topic_filters:
                    self._send_retained(topic_filter)
        return subscriptions

    def unsubscribe(self, *subscriptions: Subscription) -> None:
        with self._lock:
            gone = [s for s in subscriptions if s in self._subscriptions]
            for subscription in gone:
                self._subscriptions.remove(subscription)
            kept = {s.topic_filter for s in self._subscriptions}
            filters = sorted({str(s.topic_filter) for s in gone if s.topic_filter not in kept})
            if self.connected_now and filters:
                self.unsubscribes.append(filters)

    # -- delivery ---------------------------------------------------------------------------------

    def _send_retained(self, topic_filter: TopicFilter) -> None:
        for name, payload in sorted(self.retained.items()):
            if topic_filter.matches(name):
                self._deliver(IncomingMessage(name, payload, 1, True))

    def _deliver(self, message: IncomingMessage) -> None:
        for subscription in list(self._subscriptions):
            if subscription.topic_filter.matches(message.topic):
                subscription.deliver(message)
