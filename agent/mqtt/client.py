"""The MQTT adapter over paho-mqtt 2 (``CallbackAPIVersion.VERSION2``).

Threads: one supervisor thread (ours) makes a fresh paho client for every connection attempt,
connects, runs paho's network thread (``loop_start``) until the connection ends, then waits a
jittered backoff and tries again. paho callbacks only hand off: they put small event values and
incoming messages on bounded queues (and, on connect, queue the SUBSCRIBE and ``online`` packets).
Everything else -- the outbox, JSON, inference -- runs on the caller's (service) thread.

A fresh paho client per connection means paho never replays its own queue after a reconnect: the
outbox is the only retransmission queue, and ``publish`` returns a *token* that is unique across
connections (``generation << 16 | mid``) so a late PUBACK can never acknowledge the wrong item.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.errors import TransportError
from agent.mqtt.events import (
    BoundedQueue,
    Connected,
    ConnectRefused,
    Disconnected,
    DropLog,
    Event,
    IncomingMessage,
    Published,
    Subscription,
    SubscriptionIndex,
)
from agent.mqtt.messages import AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE
from agent.mqtt.policy import Backoff, Next, Protocol, after_connack
from agent.mqtt.settings import MqttSettings
from agent.mqtt.tls import no_delay, ssl_context
from agent.mqtt.topics import DeviceTopics, Topic, TopicFilter

_log = logging.getLogger(__name__)

# Filters per SUBSCRIBE packet when resubscribing: AWS IoT Core takes at most 8.
_FILTERS_PER_SUBSCRIBE = 8
_PAHO_PROTOCOL = {Protocol.MQTT5: paho.MQTTv5, Protocol.MQTT311: paho.MQTTv311}


def message_token(generation: int, mid: int) -> int:
    """The id ``publish`` returns: unique across connections of one client."""
    return (generation << 16) | mid


@dataclass
class _Session:
    """One connection attempt; written by paho's thread, read by the supervisor."""

    generation: int
    protocol: Protocol
    done: threading.Event = field(default_factory=threading.Event)
    decision: Next | None = None
    last_socket_error: str = ""


class MqttClient:
    """A device's connection: will + retained availability, resubscribe, reconnect, hand-off.

    ``announce=False`` is for clients that are not devices (``edge-fleet``): no will, no
    ``online``/``offline`` on ``topics.availability``.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topics: DeviceTopics,
        *,
        events_maxsize: int = 10_000,
        max_queued: int = 1000,
        backoff: Backoff | None = None,
        announce: bool = True,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self._announce = announce
        self.events: BoundedQueue[Event] = BoundedQueue(events_maxsize)
        self.drops = DropLog()
        self._max_queued = max_queued
        self._backoff = backoff or Backoff(settings.backoff_min_s, settings.backoff_max_s)
        self._ssl_context = ssl_context(settings) if settings.tls is not None else None
        self._lock = threading.Lock()
        self._subscriptions: list[Subscription] = []
        self._index = SubscriptionIndex()
        self._unacked: dict[tuple[int, int], list[Subscription]] = {}  # (generation, mid)
        self._paho: paho.Client | None = None
        self._session: _Session | None = None
        self._generation = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.protocol = Protocol(settings.protocol)
        self.last_error = ""

    # -- public API (service thread) --------------------------------------------------------

    def subscribe(
        self,
        topic_filter: TopicFilter,
        *,
        qos: int = 1,
        maxsize: int = 1000,
        max_payload: int = 64 * 1024,
        messages: BoundedQueue[IncomingMessage] | None = None,
    ) -> Subscription:
        """Subscribe now (if connected) and again on every connect; messages go to the result
        (or to ``messages``, a queue several subscriptions share)."""
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
        """Like :meth:`subscribe` for several filters, sent in one SUBSCRIBE packet."""
        subscriptions = [
            Subscription(f, qos, maxsize, max_payload, messages, drops=self.drops)
            for f in topic_filters
        ]
        with self._lock:
            self._subscriptions.extend(subscriptions)
            for subscription in subscriptions:
                self._index.add(subscription)
            client = self._paho if self._connected.is_set() else None
            if client is not None and subscriptions and self._session is not None:
                self._send_subscribe(client, self._session, subscriptions)
        return subscriptions

    def _send_subscribe(
        self, client: paho.Client, session: _Session, subscriptions: list[Subscription]
    ) -> None:
        """One SUBSCRIBE for ``subscriptions``; their SUBACK sets ``acked`` (lock held)."""
        _rc, mid = client.subscribe([(str(s.topic_filter), s.qos) for s in subscriptions])
        if mid is not None:
            self._unacked[(session.generation, mid)] = subscriptions

    def unsubscribe(self, *subscriptions: Subscription) -> None:
        """Stop delivering to ``subscriptions``; UNSUBSCRIBE (one packet) the filters no other
        subscription still uses. Unknown subscriptions are ignored."""
        with self._lock:
            gone = [s for s in subscriptions if s in self._subscriptions]
            for subscription in gone:
                self._subscriptions.remove(subscription)
                self._index.remove(subscription)
            kept = {s.topic_filter for s in self._subscriptions}
            filters = sorted({str(s.topic_filter) for s in gone if s.topic_filter not in kept})
            client = self._paho if self._connected.is_set() else None
        if client is not None and filters:
            client.unsubscribe(filters)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("MQTT client already started")
        self._thread = threading.Thread(target=self._supervise, name="mqtt-supervisor", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> None:
        """Return once connected; raise TransportError naming the last failure after ``timeout``."""
        if not self._connected.wait(timeout):
            why = self.last_error or "no answer yet"
            raise TransportError(
                f"not connected to {self.settings.host}:{self.settings.port} "
                f"after {timeout:g} s: {why}"
            )

    def publish(self, topic: Topic, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a PUBLISH on the live connection; return its token (see :class:`Published`)."""
        with self._lock:
            client, session = self._paho, self._session
            live = self._connected.is_set()
        if client is None or session is None or not live:
            raise TransportError("not connected to the broker")
        info = client.publish(str(topic), payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return message_token(session.generation, info.mid)

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` (retained), disconnect cleanly (no will), and end the threads."""
        deadline = time.monotonic() + timeout
        with self._lock:
            client, session = self._paho, self._session
            live = self._connected.is_set()
        self._stopping.set()
        if client is not None and live and self._announce:
            info = client.publish(
                str(self.topics.availability), AVAILABILITY_OFFLINE, qos=1, retain=True
            )
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                _log.warning("could not publish offline before stopping: %s", exc)
        if client is not None:
            client.disconnect()  # also ends an attempt still waiting for its CONNACK
        if session is not None:
            session.done.wait(max(0.0, deadline - time.monotonic()))
            session.done.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    # -- supervisor thread ------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            decision = self._attempt()
            if self._stopping.is_set():
                break
            if decision is Next.FALL_BACK:
                _log.warning("broker does not speak MQTT 5; falling back to MQTT 3.1.1")
                self.protocol = Protocol.MQTT311
                continue
            if decision is Next.CONNECTED:
                self._backoff.reset()
            delay = self._backoff.next()
            _log.debug("reconnecting in %.2f s", delay)
            self._stopping.wait(delay)

    def _attempt(self) -> Next | None:
        self._generation += 1
        session = _Session(self._generation, self.protocol)
        client = self._make_paho(session)
        settings = self.settings
        try:
            if session.protocol is Protocol.MQTT5:
                client.connect(
                    settings.host,
                    settings.port,
                    settings.keepalive_s,
                    clean_start=True,
                    properties=connect_properties(settings),
                )
            else:
                client.connect(settings.host, settings.port, settings.keepalive_s)
        except OSError as exc:
            self._note_failure(
                session, f"cannot connect to {settings.host}:{settings.port}: {exc}", log=True
            )
            return None
        no_delay(client)
        with self._lock:
            self._paho, self._session = client, session
        client.loop_start()
        session.done.wait()
        client.loop_stop()
        with self._lock:
            self._connected.clear()
            self._paho = None
        return session.decision

    def _make_paho(self, session: _Session) -> paho.Client:
        settings = self.settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=_PAHO_PROTOCOL[session.protocol],
            clean_session=True if session.protocol is Protocol.MQTT311 else None,
            reconnect_on_failure=False,
        )
        client.connect_timeout = settings.connect_timeout_s
        client.max_queued_messages_set(self._max_queued)
        client.max_inflight_messages_set(0)  # the forwarder bounds what is in flight
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if self._ssl_context is not None:
            client.tls_set_context(self._ssl_context)
        if self._announce:
            client.will_set(str(self.topics.availability), AVAILABILITY_OFFLINE, qos=1, retain=True)
        client.on_connect = lambda c, _u, _f, rc, _p: self._on_connect(session, c, rc)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._on_disconnect(session, rc)
        client.on_publish = lambda _c, _u, mid, rc, _p: self._on_publish(session, mid, rc)
        client.on_subscribe = lambda _c, _u, mid, codes, _p: self._on_subscribe(session, mid, codes)
        client.on_message = lambda _c, _u, msg: self._on_message(msg)
        client.on_log = lambda _c, _u, level, text: self._on_log(session, level, text)
        return client

    def _note_failure(self, session: _Session, reason: str, *, log: bool) -> None:
        if log and reason != self.last_error:
            _log.warning("%s", reason)
        self.last_error = reason
        self.events.offer(Disconnected(session.generation, reason))

    # -- paho callbacks (paho's network thread): hand off only --------------------------------

    def _on_connect(self, session: _Session, client: paho.Client, reason: ReasonCode) -> None:
        decision = after_connack(session.protocol, int(reason.value))
        session.decision = decision.next
        if decision.next is not Next.CONNECTED:
            if decision.reason != self.last_error:
                _log.warning("%s", decision.reason)
            self.last_error = decision.reason
            self.events.offer(
                ConnectRefused(session.generation, int(reason.value), decision.reason)
            )
            return
        with self._lock:
            subscriptions = list(self._subscriptions)
            for start in range(0, len(subscriptions), _FILTERS_PER_SUBSCRIBE):
                self._send_subscribe(
                    client, session, subscriptions[start : start + _FILTERS_PER_SUBSCRIBE]
                )
        if self._announce:
            client.publish(str(self.topics.availability), AVAILABILITY_ONLINE, qos=1, retain=True)
        self.last_error = ""
        _log.info(
            "connected to %s:%s with MQTT %s",
            self.settings.host,
            self.settings.port,
            session.protocol.value,
        )
        self._connected.set()
        self.events.offer(Connected(session.generation, session.protocol.value))

    def _on_disconnect(self, session: _Session, reason: ReasonCode) -> None:
        was_connected = session.decision is Next.CONNECTED
        self._connected.clear()
        with self._lock:
            for key in [k for k in self._unacked if k[0] == session.generation]:
                del self._unacked[key]
        if session.decision is None:
            detail = session.last_socket_error or str(reason)
            if self.settings.tls is not None and self.settings.tls.cert_file is None:
                detail += "; the broker may require a client certificate (mqtt.cert_file)"
            self._note_failure(session, f"connection closed before CONNACK: {detail}", log=True)
        elif was_connected and not self._stopping.is_set():
            self._note_failure(session, f"connection lost: {reason}", log=True)
        else:
            self.events.offer(Disconnected(session.generation, str(reason)))
        session.done.set()

    def _on_publish(self, session: _Session, mid: int, reason: ReasonCode) -> None:
        if reason.is_failure:
            _log.warning("broker refused publish %s: %s", mid, reason)
            return
        self.events.offer(Published(message_token(session.generation, mid)))

    def _on_subscribe(self, session: _Session, mid: int, codes: list[ReasonCode]) -> None:
        with self._lock:
            subscriptions = self._unacked.pop((session.generation, mid), [])
        for subscription, code in zip(subscriptions, codes, strict=False):
            if code.is_failure:
                _log.warning("broker refused subscription %s: %s", subscription.topic_filter, code)
            else:
                subscription.acked.set()

    def _on_message(self, message: paho.MQTTMessage) -> None:
        incoming = IncomingMessage(
            message.topic, bytes(message.payload), message.qos, bool(message.retain)
        )
        with self._lock:
            subscriptions = self._index.matching(incoming.topic)
        for subscription in subscriptions:
            subscription.deliver(incoming)

    def _on_log(self, session: _Session, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            session.last_socket_error = text


def connect_properties(settings: MqttSettings) -> Properties:
    """MQTT 5 CONNECT properties: the Maximum Packet Size this client accepts. A broker must not
    send a larger packet (MQTT 5.0, 3.1.2.11.4): mosquitto drops such a message for this client
    instead of sending it, so an oversize retained message never reaches the agent's memory."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.MaximumPacketSize = settings.max_packet_bytes
    return properties
