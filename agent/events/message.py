"""The event message on ``<prefix>/<device>/events`` (pure; QoS 1, not retained, via the outbox).

``{"v": 1, "seq": 41, "ts": ..., "model": {...}, "type": "start", "id": "...", "label": "cat",
"start_ts": ..., "last_ts": ..., "score": 0.91, "best_score": 0.93, "results": 3,
"best_box": {...}?, "end_ts": ...?, "duration_s": ...?, "reason": "quiet"?}``

``seq`` is the outbox's sequence number, shared with results: a subscriber de-duplicates
re-sends by it. ``id`` is the same in an event's start, updates and end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.events.tracker import Event
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.mqtt.messages import MessageError, ModelRef

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 16 * 1024
EVENT_TYPES = ("start", "update", "end")


@dataclass(frozen=True)
class EventMessage:
    seq: int
    ts: float
    model: ModelRef | None
    event: Event

    def to_obj(self) -> dict[str, Any]:
        head: dict[str, Any] = {"v": SCHEMA_VERSION, "seq": self.seq, "ts": round(self.ts, 6)}
        if self.model is not None:
            head["model"] = self.model.to_obj()
        return head | self.event.to_obj()

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_obj())


def parse_event(data: bytes) -> dict[str, Any]:
    """A received event message as a dict, checked for the fields every event has."""
    try:
        obj = loads_strict(bytes(data), MAX_EVENT_BYTES)
    except StrictJSONError as exc:
        raise MessageError(f"event: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != SCHEMA_VERSION:
        raise MessageError("event: not a version 1 event object")
    for key, kind in (("seq", int), ("type", str), ("id", str), ("label", str)):
        if not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool):
            raise MessageError(f"event.{key} is missing or of the wrong type")
    if obj["type"] not in EVENT_TYPES:
        raise MessageError(f"event.type must be one of {', '.join(EVENT_TYPES)}")
    return obj
