"""The adapter between the service loop and the event tracker: results in, outbox rows out.

Runs on the loop thread. Every result (before the publish policy: rate limits on results must
not hide an event's start or end) is observed; each event message goes to the durable outbox
under ``<prefix>/<device>/events``, so it survives broker outages and restarts exactly as
results do. :meth:`EventPublisher.tick` runs every loop turn so an event ends on time even when
no more results come (a source that went quiet).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import numpy as np

from agent.config import EventsConfig
from agent.errors import EdgeError
from agent.events.message import EventMessage
from agent.events.snapshot import encode_snapshot
from agent.events.tracker import Event, EventRules, EventTracker, observations
from agent.hass.events import label_object_id
from agent.model.active import ActiveModel
from agent.model.pipeline import InferenceResult
from agent.mqtt.messages import ModelRef
from agent.mqtt.ports import Publisher
from agent.mqtt.topics import DeviceTopics, Topic
from agent.store.outbox import Outbox

log = logging.getLogger(__name__)


def event_publisher(
    config: EventsConfig,
    outbox: Outbox,
    topics: DeviceTopics,
    client: Publisher,
    wall: Callable[[], float] = time.time,
) -> EventPublisher:
    """The publisher for ``[events]`` (with no label configured it never publishes anything)."""
    rules = EventRules(
        labels=config.labels,
        threshold=config.threshold,
        thresholds=dict(config.thresholds),
        min_results=config.min_results,
        quiet_s=config.quiet_s,
        update_s=config.update_s,
    )
    return EventPublisher(
        rules,
        outbox,
        str(topics.events),
        wall=wall,
        snapshot_to=retained_sender(client) if config.snapshot else None,
        snapshot_max_bytes=config.snapshot_max_bytes,
    )


def retained_sender(client: Publisher) -> Callable[[str, bytes], bool]:
    """Publish a snapshot retained at QoS 1 when connected; False (try later) otherwise."""

    def send(topic: str, payload: bytes) -> bool:
        if not client.connected:
            return False
        try:
            client.publish(Topic(topic), payload, qos=1, retain=True)
        except EdgeError as exc:
            log.debug("snapshot not published: %s", exc)
            return False
        return True

    return send


def new_event_id(label: str, start_ts: float) -> str:
    """Unique across restarts and devices: start time in ms and 48 random bits."""
    return f"{int(start_ts * 1000)}-{uuid.uuid4().hex[:12]}"


class EventPublisher:
    def __init__(
        self,
        rules: EventRules,
        outbox: Outbox,
        topic: str,
        *,
        wall: Callable[[], float] = time.time,
        new_id: Callable[[str, float], str] = new_event_id,
        snapshot_to: Callable[[str, bytes], bool] | None = None,
        snapshot_max_bytes: int = 65536,
    ) -> None:
        self.tracker = EventTracker(rules, new_id)
        self.outbox = outbox
        self.topic = topic
        self.wall = wall
        self.published: dict[str, int] = {"start": 0, "update": 0, "end": 0}
        self.failed = 0
        self._model: ModelRef | None = None
        #: ``(topic, jpeg) -> sent?``: publishes a retained snapshot; None turns snapshots off.
        self.snapshot_to = snapshot_to
        self.snapshot_max_bytes = snapshot_max_bytes
        self.snapshots = 0
        self._best: dict[str, float] = {}
        self._snapshots_due: dict[str, bytes] = {}

    def on_result(
        self,
        result: InferenceResult,
        now: float,
        active: ActiveModel | None,
        image: np.ndarray | None = None,
    ) -> None:
        """Observe one result (every result, before the publish policy) made at ``now``;
        ``image`` is the frame it came from (for snapshots)."""
        if not self.tracker.rules.labels:
            return
        model = (
            None if active is None else ModelRef(active.name, str(active.version), active.sha256)
        )
        if model != self._model and self._model is not None:
            self._publish(self.tracker.close("model_changed"))
        self._model = model
        captured_wall = self.wall() - (now - result.captured_t)
        self._publish(self.tracker.observe(observations(result.outputs), now, captured_wall))
        if self.snapshot_to is not None and image is not None:
            for event in self.tracker.open_events:
                self._snapshot(event, image, captured_wall)

    def tick(self, now: float) -> None:
        self._publish(self.tracker.tick(now))
        if self._snapshots_due:
            self._send_snapshots()

    def close(self, reason: str = "stopped") -> None:
        self._publish(self.tracker.close(reason))

    def _publish(self, events: list[Event]) -> None:
        for event in events:

            def payload(
                seq: int,
                event: Event = event,
                model: ModelRef | None = self._model,
                ts: float = self.wall(),
            ) -> bytes:
                return EventMessage(seq, ts, model, event).to_json()

            try:
                self.outbox.enqueue(self.topic, payload)
            except EdgeError as exc:
                self.failed += 1
                log.warning("event %s %s not stored: %s", event.type, event.id, exc)
                continue
            self.published[event.type] += 1
            log.info("event %s: %s %s (score %.3f)", event.type, event.label, event.id, event.score)
            if event.type == "end":
                self._best.pop(event.id, None)

    def _snapshot(self, event: Event, image: np.ndarray, captured_wall: float) -> None:
        """Keep the crop of this frame when it gave the event a new best score (in memory)."""
        if event.last_ts != captured_wall or event.score < event.best_score:
            return  # this frame did not see it, or not at its best
        if event.best_score <= self._best.get(event.id, -1.0):
            return
        self._best[event.id] = event.best_score
        jpeg = encode_snapshot(image, event.best_box, self.snapshot_max_bytes)
        if jpeg is not None:
            self._snapshots_due[event.label] = jpeg

    def _send_snapshots(self) -> None:
        assert self.snapshot_to is not None
        for label, jpeg in list(self._snapshots_due.items()):
            topic = f"{self.topic}/snapshot/{label_object_id(label)}"
            if not self.snapshot_to(topic, jpeg):
                return  # not connected: the newest crop waits in memory
            del self._snapshots_due[label]
            self.snapshots += 1
            log.debug("snapshot of %s published on %s (%d bytes)", label, topic, len(jpeg))
