"""The MQTT side of Home Assistant discovery: announce on connect and on Home Assistant's birth,
and publish the latest result at a bounded rate (:class:`~agent.hass.throttle.StateThrottle`).

Runs on the service loop thread (:meth:`HassAnnouncer.step` once per turn); the subscription to
``<discovery_prefix>/status`` only queues messages on paho's thread. Payloads come from
:mod:`agent.hass.discovery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.errors import EdgeError
from agent.hass.discovery import (
    DEFAULT_EXPIRE_AFTER_S,
    discovery_messages,
    result_state_topic,
    status_topic,
)
from agent.hass.throttle import StateThrottle
from agent.mqtt.events import Subscription
from agent.mqtt.ports import Connection
from agent.mqtt.topics import DeviceTopics, TopicFilter

log = logging.getLogger(__name__)

MAX_BIRTH_BYTES = 64


@dataclass(frozen=True)
class HassOptions:
    """``expire_after_s``: entities go unavailable without news for this long (the result
    state is repeated at a third of it); ``state_interval_s``: least time between two result
    state changes (``homeassistant.state_interval_s``)."""

    expire_after_s: int = DEFAULT_EXPIRE_AFTER_S
    state_interval_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    event_labels: tuple[str, ...] = ()  # a binary sensor each and an event entity (agent.events)


def announcer_for(
    client: Connection,
    topics: DeviceTopics,
    config: AgentConfig,
    after_announce: Callable[[], None],
    clock: Callable[[], float],
) -> HassAnnouncer | None:
    """The announcer the config asks for (None when Home Assistant is off); entities expire
    after three status intervals."""
    hass = config.homeassistant
    if not hass.enabled:
        return None
    expire = max(10, round(3 * config.status.interval_s))
    options = HassOptions(expire, hass.state_interval_s, clock, config.events.labels)
    return HassAnnouncer(client, topics, hass.discovery_prefix, after_announce, options)


class HassAnnouncer:
    """Publishes the retained discovery configs whenever they may be missing."""

    def __init__(
        self,
        client: Connection,
        topics: DeviceTopics,
        discovery_prefix: str,
        after_announce: Callable[[], None] = lambda: None,
        options: HassOptions = HassOptions(),
    ) -> None:
        self._client = client
        self._messages = discovery_messages(
            topics, discovery_prefix, options.expire_after_s, options.event_labels
        )
        self._state_topic = result_state_topic(topics)
        self._clock = options.clock
        self.throttle = StateThrottle(options.state_interval_s, options.expire_after_s / 3)
        self._after = after_announce
        self._birth: Subscription = client.subscribe(
            TopicFilter(str(status_topic(discovery_prefix))), max_payload=MAX_BIRTH_BYTES
        )
        self._announced = False
        self.announcements = 0

    def offer_result(self, payload: bytes) -> None:
        """The newest result message; Home Assistant sees at most one per state interval."""
        self.throttle.offer(payload)

    def step(self) -> None:
        """Announce after a (re)connect, or when Home Assistant said ``online``; then the
        result state, when one is due."""
        self._announce_if_needed()
        if self._announced:
            self._publish_state()

    def _announce_if_needed(self) -> None:
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

    def _publish_state(self) -> None:
        now = self._clock()
        payload = self.throttle.due(now)
        if payload is None:
            return
        try:
            self._client.publish(self._state_topic, payload, qos=1, retain=True)
        except EdgeError as exc:
            log.debug("Home Assistant result state not published: %s", exc)
            return
        self.throttle.sent(payload, now)
