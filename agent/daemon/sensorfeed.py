"""An ``mqtt_sensor`` source's input: messages on the configured topic, moved to its queue.

The subscription queues messages on paho's thread; the loop moves them to the source's bounded
queue once per turn (:meth:`SensorFeed.step`), counting what does not fit.
"""

from __future__ import annotations

import queue
from collections.abc import Callable

from agent.errors import ErrorLog
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import TopicFilter


class SensorFeed:
    def __init__(
        self,
        subscriber: Subscriber,
        topic: str,
        *,
        max_payload: int,
        readings: queue.Queue[bytes],
        errors: ErrorLog,
        clock: Callable[[], float],
    ) -> None:
        self._subscription = subscriber.subscribe(TopicFilter(topic), max_payload=max_payload)
        self._readings = readings
        self._errors = errors
        self._clock = clock

    def step(self) -> None:
        """Move every message that arrived to the source's queue."""
        message = self._subscription.get(0)
        while message is not None:
            try:
                self._readings.put_nowait(message.payload)
            except queue.Full:
                self._errors.record("sensor_queue_full", self._clock())
            message = self._subscription.get(0)

    @property
    def dropped_oversize(self) -> int:
        return self._subscription.dropped_oversize
