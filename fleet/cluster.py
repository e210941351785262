"""One ``edge-fleet`` connection per node of a broker cluster, presented as one connection.

Some clustered brokers (RabbitMQ's MQTT plugin) keep retained messages per node: a device on
node b never sees what the fleet retained through node a, and its retained status stays on b.
:class:`ClusterConnection` speaks to every node at once, behind the same
:class:`~agent.mqtt.ports.EventConnection` the session and the publisher already use:

* ``publish`` sends the message on every node's connection; its ``Published`` event comes once
  every node sent its PUBACK. So every retained message (bundle, desired commands, trust roots,
  their clears) is on every node before :func:`fleet.publish.publish_all` returns.
* ``subscribe``/``subscribe_many`` subscribe on every node into one queue: a retained status is
  read from whichever node holds it. A live publish crosses the cluster and so arrives once per
  node; the copies after the first are dropped (:class:`_Dedup`), so it is heard once. Which of
  two retained statuses is newer is the view's call (``newest_status``).
* Policy for a node that is down: every node must be connected. A node that does not connect
  (or refuses) is a :class:`TransportError` naming it, and the command fails before it sends.

Thin adapter: no thread of its own; ``events.get`` polls the nodes' event queues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from agent.errors import TransportError
from agent.mqtt.client import MqttClient
from agent.mqtt.events import (
    BoundedQueue,
    ConnectRefused,
    Disconnected,
    Event,
    IncomingMessage,
    Published,
    Subscription,
)
from agent.mqtt.policy import Next, Protocol, after_connack
from agent.mqtt.topics import Topic, TopicFilter

POLL_S = 0.01
ECHO_S = 30.0  # how long a message waits for its copies from the other nodes
MAX_ECHOES = 100_000


class _Dedup:
    """Echo removal: a live publish crosses the cluster, so each node delivers it to us. Per
    topic and payload, each node's deliveries are counted: the n-th delivery from a node is new
    when no other node delivered it n times yet, else an echo (dropped). So the copies are
    dropped however the nodes' connections interleave, and a payload that comes back later
    (``online`` after ``offline``) is heard again. Counts are forgotten once every node is
    even, or ``ECHO_S`` after the last delivery. Shared by every node's subscriptions."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self._seen: dict[tuple[str, bytes], tuple[list[int], float]] = {}
        self._lock = threading.Lock()

    def first(self, node: int, message: IncomingMessage) -> bool:
        key = (message.topic, message.payload)
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= MAX_ECHOES:
                self._prune(now)
            entry = self._seen.get(key)
            counts = [0] * self.nodes if entry is None or now - entry[1] > ECHO_S else entry[0]
            counts[node] += 1
            new = counts[node] > max(c for i, c in enumerate(counts) if i != node)
            if min(counts) == max(counts):
                self._seen.pop(key, None)
            else:
                self._seen[key] = (counts, now)
            return new

    def _prune(self, now: float) -> None:
        for key in [k for k, (_n, at) in self._seen.items() if now - at > ECHO_S]:
            del self._seen[key]
        if len(self._seen) >= MAX_ECHOES:
            self._seen.clear()

    def forget(self, topic: str) -> None:
        """A fresh SUBSCRIBE asks for the retained message again: let it through once."""
        with self._lock:
            for key in [k for k in self._seen if k[0] == topic]:
                del self._seen[key]


class _DedupQueue(BoundedQueue[IncomingMessage]):
    """What a node's subscription delivers into: the shared queue, after the echo removal."""

    def __init__(self, target: BoundedQueue[IncomingMessage], dedup: _Dedup, node: int) -> None:
        super().__init__(1)
        self.target, self.dedup, self.node = target, dedup, node

    def offer(self, item: IncomingMessage) -> bool:
        return self.target.offer(item) if self.dedup.first(self.node, item) else True


class _AllAcked(threading.Event):
    """Set when every node's SUBACK granted the filter."""

    def __init__(self, parts: Sequence[Subscription]) -> None:
        super().__init__()
        self.parts = parts

    def is_set(self) -> bool:
        return all(p.acked.is_set() for p in self.parts)


class ClusterSubscription(Subscription):
    """One filter subscribed on every node; ``parts`` are the nodes' own subscriptions."""

    def __init__(
        self, topic_filter: TopicFilter, qos: int, maxsize: int, max_payload: int,
        messages: BoundedQueue[IncomingMessage] | None,
    ) -> None:  # fmt: skip
        super().__init__(topic_filter, qos, maxsize, max_payload, messages)
        self.parts: list[Subscription] = []

    def attach(self, parts: list[Subscription]) -> None:
        self.parts = parts
        self.acked = _AllAcked(parts)

    @property
    def dropped_oversize(self) -> int:
        return sum(p.dropped_oversize for p in self.parts)


class _MergedEvents(BoundedQueue[Event]):
    """The nodes' events as one connection's: a ``Published`` once all nodes acknowledged."""

    def __init__(self, cluster: ClusterConnection) -> None:
        super().__init__(1)
        self.cluster = cluster

    def get(self, timeout: float | None = None) -> Event | None:
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            for index, node in enumerate(self.cluster.nodes):
                event = node.events.get(0)
                if event is not None:
                    merged = self.cluster.merge(index, event)
                    if merged is not None:
                        return merged
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def drain(self) -> list[Event]:
        events = []
        while (event := self.get(0)) is not None:
            events.append(event)
        return events


class ClusterConnection:
    """Every node of a cluster as one :class:`~agent.mqtt.ports.EventConnection`."""

    def __init__(self, nodes: Sequence[MqttClient], names: Sequence[str]) -> None:
        if not nodes or len(nodes) != len(names):
            raise ValueError("one name per node, at least one node")
        self.nodes, self.names = list(nodes), list(names)
        self._events = _MergedEvents(self)
        self._dedup = _Dedup(len(self.nodes))
        self._next_token = 1
        self._tokens: dict[tuple[int, int], int] = {}  # (node, its token) -> ours
        self._waiting: dict[int, set[int]] = {}  # our token -> nodes yet to acknowledge

    @property
    def connected(self) -> bool:
        return all(node.connected for node in self.nodes)

    @property
    def events(self) -> BoundedQueue[Event]:
        return self._events

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def wait_connected(self, timeout: float) -> None:
        """Every node connected, or a :class:`TransportError` naming the first that is not."""
        deadline = time.monotonic() + timeout
        for node, name in zip(self.nodes, self.names, strict=True):
            try:
                node.wait_connected(max(0.1, round(deadline - time.monotonic(), 1)))
            except TransportError as exc:
                raise TransportError(f"node {name} refused the connection: {exc}") from None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        token = self._next_token
        self._next_token += 1
        self._waiting[token] = set(range(len(self.nodes)))
        for index, node in enumerate(self.nodes):
            try:
                self._tokens[(index, node.publish(topic, payload, qos=qos, retain=retain))] = token
            except TransportError as exc:
                del self._waiting[token]
                raise TransportError(f"node {self.names[index]}: {exc}") from None
        if qos == 0:
            del self._waiting[token]
        return token

    def merge(self, index: int, event: Event) -> Event | None:
        """One node's event as the cluster's (``None``: nothing to tell yet)."""
        if isinstance(event, Published):
            token = self._tokens.pop((index, event.mid), None)
            left = self._waiting.get(token) if token is not None else None
            if token is None or left is None:
                return None
            left.discard(index)
            if left:
                return None
            del self._waiting[token]
            return Published(token)
        if isinstance(event, ConnectRefused):
            if after_connack(Protocol.MQTT5, event.code).next is Next.FALL_BACK:
                return None  # the node's client falls back to 3.1.1 by itself
            raise TransportError(f"node {self.names[index]} refused the connection: {event.text}")
        if isinstance(event, Disconnected):
            # What was in flight on that node is lost: publish_all sends it again (new tokens).
            for token in [t for t, left in self._waiting.items() if index in left]:
                del self._waiting[token]
            return Disconnected(event.generation, f"node {self.names[index]}: {event.reason}")
        return event

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
        ours = [ClusterSubscription(f, qos, maxsize, max_payload, messages) for f in topic_filters]
        for subscription in ours:
            self._dedup.forget(str(subscription.topic_filter))
        per_node = [self._subscribe_node(i, ours, qos, max_payload) for i in range(len(self.nodes))]
        for position, subscription in enumerate(ours):
            subscription.attach([parts[position] for parts in per_node])
        return list(ours)

    def _subscribe_node(
        self, index: int, ours: list[ClusterSubscription], qos: int, max_payload: int
    ) -> list[Subscription]:
        """One SUBSCRIBE per node when every filter shares one queue (the usual case)."""
        node = self.nodes[index]
        queues = {id(s.messages) for s in ours}
        if len(queues) == 1:
            return node.subscribe_many(
                [s.topic_filter for s in ours],
                qos=qos,
                max_payload=max_payload,
                messages=_DedupQueue(ours[0].messages, self._dedup, index),
            )
        return [
            node.subscribe(
                s.topic_filter,
                qos=qos,
                max_payload=max_payload,
                messages=_DedupQueue(s.messages, self._dedup, index),
            )
            for s in ours
        ]

    def unsubscribe(self, *subscriptions: Subscription) -> None:
        parts = [p for s in subscriptions if isinstance(s, ClusterSubscription) for p in s.parts]
        for node in self.nodes:
            node.unsubscribe(*parts)  # each node ignores the others' subscriptions
