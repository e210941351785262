"""Home Assistant entities for events: a binary sensor per configured label (on from an event's
start to its end) and one event entity, rendered against real event messages."""

from __future__ import annotations

import json

import pytest

from agent.events.message import EventMessage
from agent.events.tracker import Event
from agent.hass.discovery import Discovery, discovery_messages
from agent.hass.events import label_object_id
from tests.hass.test_hass import COMMON, MODEL, READ_ONLY, TOPICS, render, schema_problems
from tests.support.hass_upstream import load_schemas

# integrations/event.mqtt: state_topic and event_types required (kept out of test_hass.SCHEMA,
# which test_hass_upstream_schema checks against the components it reads from the wheel).
EVENT_SCHEMA = (
    {"state_topic", "event_types"},
    COMMON | READ_ONLY | {"device_class", "event_types"},
)
LABELS = ("cat", 'say "hi" & go')


def _event(type_: str, label: str) -> bytes:
    event = Event(type_, "e1", label, 10.0, 11.0, 0.8, 0.9, None, 4)  # type: ignore[arg-type]
    return EventMessage(7, 12.0, MODEL, event).to_json()


def _by_id() -> dict[str, Discovery]:
    return {
        d.object_id: d for d in discovery_messages(TOPICS, "homeassistant", event_labels=LABELS)
    }


def test_events_off_adds_no_entities() -> None:
    ids = {d.object_id for d in discovery_messages(TOPICS, "homeassistant")}
    assert not any(i.startswith("event") for i in ids)


def test_event_entities_satisfy_the_schema_and_read_the_events_topic() -> None:
    found = _by_id()
    for label in LABELS:
        sensor = found[label_object_id(label)]
        assert sensor.component == "binary_sensor"
        assert sensor.config["name"] == label
        assert sensor.config["state_topic"] == "edge/pi-kitchen-01/events"
        assert schema_problems("binary_sensor", sensor.config) == []
    entity = found["events"]
    assert entity.component == "event"
    required, allowed = EVENT_SCHEMA
    assert required <= set(entity.config) <= allowed
    assert schema_problems("sensor", {**entity.config, "event_types": None}) == [
        "unknown key event_types"
    ]  # and the common keys (device, origin, availability) pass the common checks
    assert entity.topic.value == "homeassistant/event/pi-kitchen-01/events/config"


def test_label_object_ids_are_safe_and_distinct() -> None:
    assert label_object_id("a b") != label_object_id("a_b")
    assert all(c.isalnum() or c == "_" for c in label_object_id('say "hi" & go'))


def test_a_label_sensor_turns_on_at_start_off_at_end_and_ignores_other_labels() -> None:
    found = _by_id()
    template = found[label_object_id('say "hi" & go')].config["value_template"]
    assert render(template, _event("start", 'say "hi" & go')) == "ON"
    assert render(template, _event("update", 'say "hi" & go')) == "ON"
    assert render(template, _event("end", 'say "hi" & go')) == "OFF"
    assert render(template, _event("start", "cat")) == ""  # empty: Home Assistant keeps the state


def test_the_event_entity_fires_the_event_type_with_label_and_score() -> None:
    rendered = json.loads(render(_by_id()["events"].config["value_template"], _event("end", "cat")))
    assert rendered == {
        "event_type": "end", "label": "cat", "id": "e1", "score": 0.9, "start_ts": 10.0,
    }  # fmt: skip
    assert rendered["event_type"] in _by_id()["events"].config["event_types"]


@pytest.mark.slow
def test_label_sensors_use_only_keys_home_assistant_validates() -> None:
    """Against the pinned homeassistant wheel's binary_sensor schema (its event schema is not
    read: tests/support/hass_upstream.py resolves schema names across the modules it reads, and
    mqtt/event.py's names collide with sensor's; the event entity is checked by hand above)."""
    upstream = load_schemas()
    for discovery in _by_id().values():
        if discovery.component != "binary_sensor":
            continue
        config = json.loads(discovery.payload())
        schema = f"{discovery.component}.PLATFORM_SCHEMA_MODERN"
        assert set(config) - upstream.keys(schema) == set(), discovery.object_id
        assert upstream.required(schema) <= set(config), discovery.object_id
