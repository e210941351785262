"""Home Assistant entities for events: a binary sensor per configured label, one event entity.

Both read ``<prefix>/<id>/events`` (:mod:`agent.events.message`); no extra state is published.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from agent.mqtt.topics import DeviceTopics

EVENT_TEMPLATE = (
    "{{ {'event_type': value_json.type, 'label': value_json.label, 'id': value_json.id,"
    " 'score': value_json.best_score, 'start_ts': value_json.start_ts} | tojson }}"
)


def label_object_id(label: str) -> str:
    """An object id for ``label`` (letters, digits, ``_``), unique even when labels slug alike."""
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_")[:40] or "label"
    return f"event_{slug}_{hashlib.sha256(label.encode()).hexdigest()[:6]}"


def event_entities(
    topics: DeviceTopics, labels: tuple[str, ...]
) -> list[tuple[str, str, dict[str, Any]]]:
    """A binary sensor per event label and one event entity (none when events are off)."""
    if not labels:
        return []
    events = str(topics.events)
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "binary_sensor",
            label_object_id(label),
            {
                "name": label,
                "icon": "mdi:motion-sensor",
                "state_topic": events,
                # Empty for other labels' events: Home Assistant then keeps the state.
                "value_template": (
                    f"{{% if value_json.label == {json.dumps(label)} %}}"
                    "{{ 'OFF' if value_json.type == 'end' else 'ON' }}{% endif %}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
            },
        )
        for label in labels
    ]
    entities.append(
        (
            "event",
            "events",
            {
                "name": "Events",
                "icon": "mdi:bell-ring",
                "state_topic": events,
                "event_types": ["start", "update", "end"],
                "value_template": EVENT_TEMPLATE,
            },
        )
    )
    return entities
