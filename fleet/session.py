"""One connected fleet manager: the adapter the commands share (MQTT in, MQTT out).

It keeps two views of the devices: ``known`` from every status (retained included: who exists,
which groups, online or not) and ``live`` from statuses published after the session started, the
only ones that may confirm the outcome of a command sent in this session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import InputError
from agent.mqtt.events import BoundedQueue, IncomingMessage, Subscription
from agent.mqtt.messages import MAX_STATUS_BYTES, StatusMessage
from agent.mqtt.ports import EventConnection
from agent.mqtt.topics import DeviceTopics, TopicFilter
from agent.update.commands import (
    BundleOffer,
    desired_command,
    rollback_command,
    sign_command,
)
from agent.update.protocol import (
    COMMAND_DESIRED,
    COMMAND_ROLLBACK,
    BundleTopics,
    command_topic,
)
from fleet.bundles import PreparedBundle
from fleet.cluster import ClusterConnection
from fleet.connection import collect
from fleet.publish import Progress, publish_all
from fleet.reader import DEFAULT_WINDOW as DEFAULT_READ_WINDOW
from fleet.reader import (
    FILTERS_PER_SUBSCRIBE,
    KINDS,
    STATUS_QOS,
    ExactReader,
    ReadReport,
    finish_report,
)
from fleet.registry import Registry
from fleet.status import FleetView, ParsedMessage, parse_message

INBOX_SIZE = 500_000


class FleetSession:
    """``read``: ``exact`` (needs a registry), ``wildcard``, or ``auto`` (exact if registered).
    Over a :class:`~fleet.cluster.ClusterConnection` statuses come from several nodes: the
    views keep the newest of each (``newest_status``)."""

    def __init__(
        self,
        client: EventConnection,
        prefix: str,
        *,
        registry: Registry | None = None,
        read: str = "auto",
        read_timeout_s: float | None = None,
        window: int = DEFAULT_READ_WINDOW,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.registry = registry
        newest_status = isinstance(client, ClusterConnection)
        self.known = FleetView(prefix, newest_status=newest_status)
        self.live = FleetView(prefix, newest_status=newest_status)
        self._topic_prefix = prefix.rstrip("/") + "/"
        self._rereading: dict[str, float] = {}  # device -> its status counts as live from then
        self._exact: dict[TopicFilter, Subscription] | None = None  # once something is re-read
        self._dropped_before = 0
        self.inbox: BoundedQueue[IncomingMessage] = BoundedQueue(INBOX_SIZE)
        mode = ("exact" if registry is not None else "wildcard") if read == "auto" else read
        if mode == "exact" and registry is None:
            raise InputError("--read exact needs a device registry (see `edge-fleet devices`)")
        started = time.monotonic()
        expected = len(registry) if registry is not None else None
        report = ReadReport(mode, expected)
        if mode == "exact" and registry is not None:
            ids = registry.ids()
            timeout = read_timeout_s if read_timeout_s is not None else 30.0 + 0.02 * len(ids)
            reader = ExactReader(
                client, prefix, self.inbox, self.known, window=window, settle_only=newest_status
            )
            report.read, report.unread = reader.read(ids, timeout)
            self._subscriptions = reader.subscriptions
        else:
            self._subscriptions = [
                client.subscribe(
                    TopicFilter(f"{prefix}/+/{kind}"),
                    max_payload=MAX_STATUS_BYTES,
                    messages=self.inbox,
                )
                for kind in KINDS
            ]
            for message in collect(self._subscriptions[0]):
                self.known.apply(message.topic, message.payload)
            seen = {row.device_id for row in self.known.rows()}
            if registry is not None:
                report.read = {d for d in registry.ids() if d in seen}
                report.unread = [d for d in registry.ids() if d not in seen]
            else:
                report.read = seen
        report.seconds = time.monotonic() - started
        self.report = finish_report(report, self.known, registry, self.dropped())

    def dropped(self) -> int:
        """Messages lost on our side: the inbox was full, or a payload over the status cap."""
        subscriptions = [*self._subscriptions, *(self._exact or {}).values()]
        return (
            self.inbox.dropped
            + self._dropped_before
            + sum(s.dropped_oversize for s in subscriptions)
        )

    def poll(self, timeout_s: float, *, at_least_s: float = 0.0) -> set[str]:
        """Apply what arrived within ``timeout_s``; return the devices whose live status changed.

        Returns at the first change once ``at_least_s`` has passed (a caller that re-evaluates
        the whole fleet per call keeps its rate bounded that way)."""
        changed: set[str] = set()
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            changed |= self._take_all(self.inbox.drain())
            now = time.monotonic()
            left = deadline - now
            if (changed and now - started >= at_least_s) or left <= 0:
                return changed
            time.sleep(min(left, 0.05))

    def _take_all(self, messages: list[IncomingMessage]) -> set[str]:
        """Only the last message per topic matters (a status replaces the one before), so a
        backlog of progress statuses costs one parse per topic, not one per message."""
        last: dict[str, IncomingMessage] = {}
        last_live: dict[str, IncomingMessage] = {}
        for message in messages:
            last[message.topic] = message
            if not message.retain:
                last_live[message.topic] = message
        changed: set[str] = set()
        for topic, message in last.items():
            parsed = parse_message(self._topic_prefix, topic, message.payload)
            if parsed is None:
                continue
            self.known.take(parsed, retained=message.retain)
            live = last_live.get(topic)
            if live is not None and live is not message:
                parsed = parse_message(self._topic_prefix, topic, live.payload)
            counts = live is not None or self._reread_counts(parsed)
            if counts and parsed is not None:
                changed.add(self.live.take(parsed, retained=live is None))
        return changed

    def _by_filter(self) -> dict[TopicFilter, Subscription]:
        if self._exact is None:
            self._exact = {s.topic_filter: s for s in self._subscriptions}
            self._subscriptions = []
        return self._exact

    def _reread_counts(self, parsed: ParsedMessage | None) -> bool:
        """A retained status asked for by :meth:`reread`, published since it was asked for."""
        since = None if parsed is None else self._rereading.get(parsed.device_id)
        if parsed is None or since is None or parsed.kind != "status":
            return False
        del self._rereading[parsed.device_id]
        return isinstance(parsed.value, StatusMessage) and parsed.value.ts >= since

    def reread(self, devices: Sequence[str], since: float) -> None:
        """Ask the broker again for the retained status of ``devices`` (a fresh SUBSCRIBE to the
        same exact topic delivers it again): a status it dropped on its way to us (a full queue,
        QoS 0) or sent while we were reconnecting comes back, and counts as live when its
        ``ts`` is at or after ``since`` (the device's clock, as :meth:`accept_since`)."""
        for start in range(0, len(devices), FILTERS_PER_SUBSCRIBE):
            batch = devices[start : start + FILTERS_PER_SUBSCRIBE]
            fresh = self.client.subscribe_many(
                [TopicFilter(str(DeviceTopics(self.prefix, d).status)) for d in batch],
                qos=STATUS_QOS,
                max_payload=MAX_STATUS_BYTES,
                messages=self.inbox,
            )
            by_filter = self._by_filter()
            old = [by_filter[s.topic_filter] for s in fresh if s.topic_filter in by_filter]
            self.client.unsubscribe(*old)  # the same filter stays subscribed through ``fresh``
            self._dropped_before += sum(s.dropped_oversize for s in old)
            for subscription in fresh:
                by_filter[subscription.topic_filter] = subscription
            for device in batch:
                self._rereading[device] = since

    def online(self, device: str) -> bool:
        row = self.known.row(device)
        return row is not None and row.online is True

    def group(self, name: str) -> list[str]:
        """Devices the registry puts in group ``name`` or whose retained status lists it."""
        listed = {
            row.device_id
            for row in self.known.rows()
            if row.status is not None and name in row.status.groups
        }
        if self.registry is not None:
            listed = {d for d in listed if d in self.registry} | set(self.registry.group(name))
        return sorted(listed)

    def publish_bundle(
        self, bundle: PreparedBundle, *, window: int, progress: Progress | None = None
    ) -> None:
        publish_all(self.client, bundle.messages(self.prefix), window=window, progress=progress)

    def send_desired(
        self, devices: Iterable[str], offer: BundleOffer, signers: Sequence[Ed25519PrivateKey]
    ) -> None:
        """A signed, retained ``desired`` command per device (offline devices get it later)."""
        now = time.time()
        messages = [
            (
                command_topic(DeviceTopics(self.prefix, device), COMMAND_DESIRED),
                sign_command(desired_command(device, offer, now), signers),
            )
            for device in devices
        ]
        publish_all(self.client, messages)

    def clear_desired(self, devices: Iterable[str]) -> None:
        """Withdraw the retained ``desired`` command of each device (an empty retained publish:
        a device connected now hears it and cancels; one that connects later hears nothing)."""
        topics = [command_topic(DeviceTopics(self.prefix, d), COMMAND_DESIRED) for d in devices]
        publish_all(self.client, [(t, b"") for t in topics])

    def clear_bundle(self, bid: str, blocks: int) -> None:
        """Delete the bundle's retained header and blocks: nobody can fetch it any more."""
        topics = BundleTopics(self.prefix)
        messages = [(topics.header(bid), b"")]
        messages += [(topics.block(bid, i), b"") for i in range(blocks)]
        publish_all(self.client, messages)

    def accept_since(self, devices: Iterable[str], since: float) -> None:
        """Count retained statuses the devices published after ``since`` (their clock) as live:
        a resumed rollout must see what happened while nobody was watching."""
        for device in devices:
            row = self.known.row(device)
            if row is not None and row.status is not None and row.status.ts >= since:
                self.live.apply(str(DeviceTopics(self.prefix, device).status), row.status.to_json())

    def send_rollback(self, devices: Iterable[str], signers: Sequence[Ed25519PrivateKey]) -> None:
        """A signed ``rollback`` command per device, not retained: it acts now or never."""
        now = time.time()
        messages = [
            (
                command_topic(DeviceTopics(self.prefix, device), COMMAND_ROLLBACK),
                sign_command(rollback_command(device, now), signers),
            )
            for device in devices
        ]
        publish_all(self.client, messages, retain=False)
