"""The fleet manager's MQTT connection: our device client without a will or availability.

Thin adapter: :func:`connect` turns :class:`~fleet.settings.FleetSettings` into a started
:class:`~agent.mqtt.client.MqttClient` (reconnect, backoff, hand-off queues all reused), and
:func:`collect` gathers what arrives on a subscription until the broker goes quiet (retained
messages come right after the SUBACK).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from agent.errors import ConfigError
from agent.fsutil import read_capped
from agent.mqtt.client import MqttClient
from agent.mqtt.events import IncomingMessage, Subscription
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics
from fleet.cluster import ClusterConnection
from fleet.settings import FleetSettings

MAX_PASSWORD_BYTES = 4096


def mqtt_settings(
    settings: FleetSettings, url: str | None = None, client_id: str | None = None
) -> MqttSettings:
    password = None
    if settings.password_file is not None:
        try:
            raw = read_capped(settings.password_file, MAX_PASSWORD_BYTES)
        except (OSError, ValueError) as exc:
            raise ConfigError("password_file", f"cannot read: {exc}") from None
        password = raw.decode("utf-8", errors="strict").rstrip("\r\n")
    tls = None
    if settings.ca_file or settings.cert_file or settings.key_file:
        tls = TLSFiles(settings.ca_file, settings.cert_file, settings.key_file)
    return MqttSettings.from_url(
        url or settings.url,
        client_id=client_id or settings.client_id,
        tls=tls,
        username=settings.username,
        password=password,
        backoff_min_s=0.2,
        backoff_max_s=5.0,
        protocol=settings.protocol,
    )


@contextmanager
def connect(
    settings: FleetSettings, timeout_s: float = 10.0
) -> Iterator[MqttClient | ClusterConnection]:
    """A connected client for the duration of the ``with`` block: one per node of
    ``settings.nodes`` behind a :class:`~fleet.cluster.ClusterConnection` when there are two or
    more (every node must connect)."""
    urls = settings.node_urls()
    client: MqttClient | ClusterConnection
    if len(urls) == 1:
        client = _client(settings, urls[0], settings.client_id)
    else:
        nodes = [_client(settings, u, f"{settings.client_id}-{i}") for i, u in enumerate(urls)]
        client = ClusterConnection(nodes, [u.split("://", 1)[-1] for u in urls])
    client.start()
    try:
        client.wait_connected(timeout_s)
        yield client
    finally:
        client.stop()


def _client(settings: FleetSettings, url: str, client_id: str) -> MqttClient:
    return MqttClient(
        mqtt_settings(settings, url, client_id),
        DeviceTopics(settings.topic_prefix, client_id),
        announce=False,
        max_queued=0,
    )


def collect(
    subscription: Subscription,
    *,
    first_s: float = 2.0,
    quiet_s: float = 0.5,
    timeout_s: float = 10.0,
) -> Iterator[IncomingMessage]:
    """Messages until none arrived for ``quiet_s`` (``first_s`` for the first; ``timeout_s``
    in all)."""
    deadline = time.monotonic() + timeout_s
    wait = first_s
    while (left := deadline - time.monotonic()) > 0:
        message = subscription.get(min(wait, left))
        if message is None:
            return
        wait = quiet_s
        yield message
