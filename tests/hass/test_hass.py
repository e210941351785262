"""Home Assistant discovery payloads against the documented MQTT discovery schemas.

The schema below is written from Home Assistant's MQTT docs (integrations/sensor.mqtt,
binary_sensor.mqtt, update.mqtt, and the entity-common availability/device/origin options): for
each component, the keys it requires and every key it accepts. The templates are then rendered
with Jinja2's sandbox (what Home Assistant renders them with) against real agent messages.
``tests/hass/test_hass_upstream_schema.py`` checks the same payloads, and this hand-written
schema, against the key sets of Home Assistant's own released MQTT schemas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.hass.discovery import Discovery, discovery_messages, removal_messages, status_topic
from agent.mqtt.messages import ModelRef, ResultMessage, StatusMessage, UpdateStatus
from agent.mqtt.topics import DeviceTopics

# Accepted by every MQTT entity (availability, device registry, origin, naming, QoS).
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "origin", "enabled_by_default",
    "entity_category", "entity_picture", "icon", "json_attributes_topic",
    "json_attributes_template", "name", "object_id", "default_entity_id", "unique_id", "qos",
    "encoding",
}  # fmt: skip
READ_ONLY = {"state_topic", "value_template"}
SCHEMA: dict[str, tuple[set[str], set[str]]] = {  # component: (required, also allowed)
    "sensor": (
        {"state_topic"},
        COMMON | READ_ONLY | {
            "device_class", "expire_after", "force_update", "last_reset_value_template",
            "options", "state_class", "suggested_display_precision", "unit_of_measurement",
        },
    ),
    "binary_sensor": (
        {"state_topic"},
        COMMON | READ_ONLY | {
            "device_class", "expire_after", "force_update", "off_delay", "payload_off",
            "payload_on",
        },
    ),
    "update": (
        {"state_topic"},
        COMMON | READ_ONLY | {
            "command_topic", "device_class", "display_precision", "latest_version_template",
            "latest_version_topic", "payload_install", "release_summary", "release_url",
            "retain", "title",
        },
    ),
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
# Keys Home Assistant's MQTT update entity reads from a JSON state (update.mqtt docs).
UPDATE_STATE_KEYS = {
    "installed_version", "latest_version", "title", "release_summary", "release_url",
    "entity_picture", "in_progress", "update_percentage",
}  # fmt: skip
STATE_CLASSES = {"measurement", "total", "total_increasing"}
DURATION_UNITS = {"d", "h", "min", "s", "ms", "µs"}


def schema_problems(component: str, config: dict[str, Any]) -> list[str]:
    """What Home Assistant's discovery schema would reject in ``config`` (empty when valid)."""
    if component not in SCHEMA:
        return [f"unknown component {component}"]
    required, allowed = SCHEMA[component]
    problems = [f"missing {key}" for key in sorted(required - config.keys())]
    problems += [f"unknown key {key}" for key in sorted(config.keys() - allowed)]
    if "availability" in config and "availability_topic" in config:
        problems.append("availability and availability_topic are exclusive")
    device = config.get("device", {})
    problems += [f"unknown device key {key}" for key in sorted(device.keys() - DEVICE_KEYS)]
    if device and not (device.get("identifiers") or device.get("connections")):
        problems.append("device needs identifiers or connections")
    origin = config.get("origin")
    if origin is not None:
        problems += [f"unknown origin key {key}" for key in sorted(origin.keys() - ORIGIN_KEYS)]
        if "name" not in origin:
            problems.append("origin needs a name")
    if config.get("entity_category", "config") not in ENTITY_CATEGORIES:
        problems.append("bad entity_category")
    if config.get("state_class", "measurement") not in STATE_CLASSES:
        problems.append("bad state_class")
    if config.get("device_class") == "duration" and config.get("unit_of_measurement") not in (
        DURATION_UNITS
    ):
        problems.append("duration needs a time unit")
    if config.get("qos", 0) not in (0, 1, 2):
        problems.append("bad qos")
    problems += [
        f"{key} must be a string"
        for key, value in config.items()
        if key.endswith(("_topic", "_template")) and not isinstance(value, str)
    ]
    return problems


TOPICS = DeviceTopics("edge", "pi-kitchen-01")
MODEL = ModelRef("digits", "3", "ab" * 32)


@pytest.fixture
def discoveries() -> dict[str, Discovery]:
    return {d.object_id: d for d in discovery_messages(TOPICS, "homeassistant")}


def render(template: str, payload: bytes) -> str:
    env = ImmutableSandboxedEnvironment()
    return env.from_string(template).render(value_json=json.loads(payload)).strip()


def test_every_payload_satisfies_the_documented_schema(discoveries: dict[str, Discovery]) -> None:
    assert set(discoveries) == {"result", "fps", "latency", "accelerator", "model"}
    for discovery in discoveries.values():
        config = json.loads(discovery.payload())
        assert schema_problems(discovery.component, config) == [], discovery.object_id


def test_the_schema_check_rejects_what_home_assistant_rejects() -> None:
    assert schema_problems("sensor", {"value_template": "x"}) == ["missing state_topic"]
    assert schema_problems("sensor", {"state_topic": "a", "colour": "red"}) == [
        "unknown key colour"
    ]
    assert schema_problems("update", {"state_topic": "a", "device": {"name": "x"}}) == [
        "device needs identifiers or connections"
    ]
    assert schema_problems("sensor", {"state_topic": "a", "origin": {}}) == ["origin needs a name"]


def test_topics_ids_device_and_availability(discoveries: dict[str, Discovery]) -> None:
    for object_id, discovery in discoveries.items():
        assert str(discovery.topic) == (
            f"homeassistant/{discovery.component}/pi-kitchen-01/{object_id}/config"
        )
        config = discovery.config
        assert config["unique_id"] == f"edge-agent_pi-kitchen-01_{object_id}"
        assert config["availability_topic"] == "edge/pi-kitchen-01/availability"
        assert config["device"]["identifiers"] == ["edge-agent_pi-kitchen-01"]
    assert discoveries["accelerator"].component == "binary_sensor"
    assert discoveries["model"].component == "update"
    assert str(status_topic("homeassistant")) == "homeassistant/status"


def test_result_sensor_shows_the_top_label_and_the_outputs_as_attributes(
    discoveries: dict[str, Discovery],
) -> None:
    config = discoveries["result"].config
    classes = {"classes": [{"label": "7", "score": 0.93}, {"label": "1", "score": 0.04}]}
    message = ResultMessage(seq=12, ts=1.0, model=MODEL, latency_ms=3.2, outputs=classes)
    assert render(config["value_template"], message.to_json()) == "7"
    attributes = json.loads(render(config["json_attributes_template"], message.to_json()))
    assert attributes["classes"][0] == {"label": "7", "score": 0.93}
    assert (attributes["seq"], attributes["version"]) == (12, "3")
    found = {"detections": [{"label": "cat"}, {"label": "dog"}, {"label": "cat"}]}
    detections = ResultMessage(seq=1, ts=1.0, model=MODEL, latency_ms=1.0, outputs=found)
    assert render(config["value_template"], detections.to_json()) == "cat,dog"
    empty = ResultMessage(seq=1, ts=1.0, model=MODEL, latency_ms=1.0, outputs={"classes": []})
    assert render(config["value_template"], empty.to_json()) == "none"


def test_status_sensors_fps_latency_and_accelerator(discoveries: dict[str, Discovery]) -> None:
    tpu = StatusMessage(ts=1.0, state="running", fps=9.5, latency_p50_ms=4.25,
                        accelerator="edgetpu", model=MODEL).to_json()  # fmt: skip
    cpu = StatusMessage(ts=1.0, state="degraded", accelerator="cpu", degraded=True).to_json()
    assert render(discoveries["fps"].config["value_template"], tpu) == "9.5"
    assert render(discoveries["latency"].config["value_template"], tpu) == "4.25"
    accelerator = discoveries["accelerator"].config
    assert render(accelerator["value_template"], tpu) == accelerator["payload_on"]
    assert render(accelerator["value_template"], cpu) == accelerator["payload_off"]


def test_update_entity_shows_installed_and_ordered_release_with_progress(
    discoveries: dict[str, Discovery],
) -> None:
    template = discoveries["model"].config["value_template"]
    idle = StatusMessage(ts=1.0, state="running", model=MODEL).to_json()
    assert json.loads(render(template, idle)) == {
        "installed_version": "3",
        "latest_version": "3",
        "title": "digits",
        "in_progress": False,
        "update_percentage": None,
        "release_summary": "no update ordered",
    }
    incoming = UpdateStatus(state="downloading", name="digits", counter=4, blocks_held=2, blocks=8)
    busy = json.loads(render(template, StatusMessage(ts=1.0, state="running", model=MODEL,
                                                     update=incoming).to_json()))  # fmt: skip
    assert (busy["latest_version"], busy["in_progress"], busy["update_percentage"]) == (
        "4",
        True,
        25.0,
    )
    assert busy["release_summary"] == "digits release 4: downloading"
    refused = UpdateStatus(state="rejected", reason="canary_mismatch", counter=4, detail="off by 3")
    done = json.loads(render(template, StatusMessage(ts=1.0, state="running", model=MODEL,
                                                     update=refused).to_json()))  # fmt: skip
    # Still not at the release the desired state orders: the update stays visible, with why.
    assert (done["installed_version"], done["latest_version"], done["in_progress"]) == (
        "3",
        "4",
        False,
    )
    assert done["release_summary"] == "model release 4: rejected (canary_mismatch): off by 3"
    back = UpdateStatus(state="rolled_back", reason="ordered", counter=2)
    rolled = json.loads(render(template, StatusMessage(ts=1.0, state="running", model=MODEL,
                                                       update=back).to_json()))  # fmt: skip
    assert rolled["latest_version"] == "3"
    nothing = StatusMessage(ts=1.0, state="error").to_json()
    assert json.loads(render(template, nothing))["installed_version"] == "none"


def test_sensors_expire_after_three_status_intervals_and_the_update_entity_never(
    discoveries: dict[str, Discovery],
) -> None:
    assert {k: d.config.get("expire_after") for k, d in discoveries.items()} == {
        "result": 90, "fps": 90, "latency": 90, "accelerator": 90, "model": None,
    }  # fmt: skip
    shorter = discovery_messages(TOPICS, "homeassistant", expire_after_s=15)
    assert {d.config.get("expire_after") for d in shorter} == {None, 15}


def test_removal_clears_every_config_topic() -> None:
    topics = [str(t) for t in removal_messages(TOPICS, "homeassistant")]
    assert topics == [str(d.topic) for d in discovery_messages(TOPICS, "homeassistant")]
    assert len(topics) == 5


def test_update_state_uses_only_keys_home_assistant_reads(
    discoveries: dict[str, Discovery],
) -> None:
    template = discoveries["model"].config["value_template"]
    state = json.loads(render(template, StatusMessage(ts=1.0, state="running").to_json()))
    assert set(state) <= UPDATE_STATE_KEYS
    assert len(state["release_summary"]) <= 255


def test_the_result_sensor_reads_the_bounded_rate_copy_of_the_results(
    discoveries: dict[str, Discovery],
) -> None:
    config = discoveries["result"].config
    assert config["state_topic"] == "edge/pi-kitchen-01/hass/result"
    assert config["json_attributes_topic"] == "edge/pi-kitchen-01/hass/result"
