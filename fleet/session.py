"""One connected fleet manager: the adapter the commands share (MQTT in, MQTT out).

It keeps two views of the devices: ``known`` from every status (retained included: who exists,
which groups, online or not) and ``live`` from statuses published after the session started, the
only ones that may confirm the outcome of a command sent in this session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.mqtt.events import IncomingMessage
from agent.mqtt.messages import MAX_STATUS_BYTES
from agent.mqtt.ports import EventConnection
from agent.mqtt.topics import DeviceTopics, TopicFilter
from agent.update.commands import (
    BundleOffer,
    desired_command,
    rollback_command,
    sign_command,
)
from agent.update.protocol import COMMAND_DESIRED, COMMAND_ROLLBACK, command_topic
from fleet.bundles import PreparedBundle
from fleet.connection import collect
from fleet.publish import Progress, publish_all
from fleet.status import FleetView


class FleetSession:
    def __init__(self, client: EventConnection, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.known = FleetView(prefix)
        self.live = FleetView(prefix)
        self._subscriptions = [
            client.subscribe(
                TopicFilter(f"{prefix}/+/{kind}"), maxsize=100_000, max_payload=MAX_STATUS_BYTES
            )
            for kind in ("availability", "status")
        ]
        for subscription in self._subscriptions:
            for message in collect(subscription):
                self.known.apply(message.topic, message.payload)

    def poll(self, timeout_s: float) -> set[str]:
        """Apply what arrived within ``timeout_s``; return the devices whose live status changed."""
        changed: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while True:
            for subscription in self._subscriptions:
                for message in subscription.messages.drain():
                    changed |= self._take(message)
            left = deadline - time.monotonic()
            if changed or left <= 0:
                return changed
            time.sleep(min(left, 0.05))

    def _take(self, message: IncomingMessage) -> set[str]:
        self.known.apply(message.topic, message.payload)
        if message.retain:
            return set()
        device = self.live.apply(message.topic, message.payload)
        return set() if device is None else {device}

    def group(self, name: str) -> list[str]:
        """Devices whose retained status lists group ``name``."""
        return [
            row.device_id
            for row in self.known.rows()
            if row.status is not None and name in row.status.groups
        ]

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
