"""The MQTT side of Home Assistant discovery: announce on connect and on Home Assistant's birth.

Runs on the service loop thread (:meth:`HassAnnouncer.step` once per turn); the subscription to
``<discovery_prefix>/status`` only queues messages on paho's thread. Payloads come from
:mod:`agent.hass.discovery`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.errors import EdgeError
from agent.hass.discovery import DEFAULT_EXPIRE_AFTER_S, discovery_messages, status_topic
from agent.mqtt.client import MqttClient
from agent.mqtt.events import Subscription
from agent.mqtt.topics import DeviceTopics, TopicFilter

log = logging.getLogger(__name__)

MAX_BIRTH_BYTES = 64


class HassAnnouncer:
    """Publishes the retained discovery configs whenever they may be missing."""

    def __init__(
        self,
        client: MqttClient,
        topics: DeviceTopics,
        discovery_prefix: str,
        after_announce: Callable[[], None] = lambda: None,
        expire_after_s: int = DEFAULT_EXPIRE_AFTER_S,
    ) -> None:
        self._client = client
        self._messages = discovery_messages(topics, discovery_prefix, expire_after_s)
        self._after = after_announce
        self._birth: Subscription = client.subscribe(
            TopicFilter(str(status_topic(discovery_prefix))), max_payload=MAX_BIRTH_BYTES
        )
        self._announced = False
        self.announcements = 0

    def step(self) -> None:
        """Announce after a (re)connect, or when Home Assistant said ``online``."""
        birth = False
        message = self._birth.get(0)
        while message is not None:
            birth = birth or message.payload.strip() == b"online"
            message = self._birth.get(0)
        if not self._client.connected:
            self._announced = False
            return
        if self._announced and not birth:
            return
        try:
            for discovery in self._messages:
                self._client.publish(discovery.topic, discovery.payload(), qos=1, retain=True)
        except EdgeError as exc:
            log.debug("Home Assistant discovery not published: %s", exc)
            self._announced = False
            return
        self._announced = True
        self.announcements += 1
        log.info("announced %d entities to Home Assistant", len(self._messages))
        self._after()
