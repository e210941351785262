"""Results into the durable outbox: one result message per admitted inference."""

from __future__ import annotations

from collections.abc import Callable

from agent.daemon.status import model_ref
from agent.model.active import ActiveModel
from agent.model.pipeline import InferenceResult
from agent.mqtt.topics import Topic
from agent.store.outbox import Outbox


class Results:
    """Writes result messages to the outbox (the forwarder publishes them); counts them."""

    def __init__(self, outbox: Outbox, topic: Topic, wall: Callable[[], float]) -> None:
        self.outbox = outbox
        self.topic = topic
        self.wall = wall
        self.published = 0
        #: Sees each result message as enqueued (Home Assistant's bounded-rate copy).
        self.on_result: Callable[[bytes], None] | None = None

    def enqueue(self, result: InferenceResult, now: float, active: ActiveModel) -> None:
        """Raises :class:`~agent.store.outbox.OutboxError` when the outbox cannot take it."""
        captured_wall = self.wall() - (now - result.captured_t)
        model = model_ref(active)

        def payload(seq: int) -> bytes:
            return result.to_message(seq, captured_wall, model).to_json()

        seq = self.outbox.enqueue(str(self.topic), payload)
        self.published += 1
        if self.on_result is not None:
            self.on_result(payload(seq))
