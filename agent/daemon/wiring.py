"""Adapters the service builds from its config: the MQTT client settings and the updater."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.config import AgentConfig
from agent.errors import ConfigError, InputError
from agent.model.active import ModelStore, load_credentials
from agent.model.swap import ServedModel
from agent.model.switch import SlotSwitch
from agent.mqtt.ports import Subscriber
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics
from agent.secrets import FileResolver, read_secret
from agent.update.canary_worker import CanaryRunner, run_canary
from agent.update.install import Installer
from agent.update.updater import Updater

log = logging.getLogger(__name__)


def mqtt_settings(config: AgentConfig, resolver: FileResolver) -> MqttSettings:
    """Client settings from the config; the password is read from its file here."""
    mqtt = config.mqtt
    password = None
    if mqtt.password_file:
        raw = read_secret(resolver, "mqtt.password_file", mqtt.password_file)
        password = raw.decode("utf-8").strip()
    tls = None
    if mqtt.tls:
        tls = TLSFiles(
            ca_file=resolver.path(mqtt.ca_file) if mqtt.ca_file else None,
            cert_file=resolver.path(mqtt.cert_file) if mqtt.cert_file else None,
            key_file=resolver.path(mqtt.key_file) if mqtt.key_file else None,
        )
    return MqttSettings.from_url(
        mqtt.url,
        client_id=config.device_id,
        tls=tls,
        username=mqtt.username,
        password=password,
        keepalive_s=mqtt.keepalive_s,
        backoff_min_s=mqtt.reconnect_min_s,
        backoff_max_s=mqtt.reconnect_max_s,
        protocol=mqtt.protocol,
        max_packet_bytes=mqtt.max_packet_bytes,
    )


def build_updater(
    config: AgentConfig,
    resolver: FileResolver,
    store: ModelStore,
    served: ServedModel,
    *,
    subscriber: Subscriber,
    topics: DeviceTopics,
    clock: Callable[[], float],
    wall: Callable[[], float],
    canary: CanaryRunner = run_canary,
) -> Updater | None:
    """The updater for signed commands over MQTT, ``None`` (logged) when updates are off.

    Its swaps go to ``served``, and ``served`` reports back to it (retire, watch failed).
    ``canary``: how the canary runs (its own process; tests of the updater may run it inline).
    """
    try:
        credentials = load_credentials(config, resolver)
    except (ConfigError, InputError) as exc:
        log.error("updates over MQTT are off: %s", exc)
        return None
    if credentials.fleet is None:
        log.info("updates over MQTT are off: keys.fleet_keys is not set")
        return None
    host = SlotSwitch(store.slots, store.state, served.load, served.offer)
    installer = Installer(config, credentials, host, store.state, wall=wall, canary=canary)
    drops = getattr(subscriber, "drops", None)  # the MqttClient's: per-topic oversize drops too
    updater = Updater(
        config, subscriber, topics, credentials.fleet, installer, clock=clock, drops=drops
    )
    served.feedback = updater
    return updater
