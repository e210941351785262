"""Our discovery payloads against Home Assistant's own MQTT schemas (from its released source).

``tests/support/hass_upstream.py`` reads the key sets from the ``homeassistant`` wheel (PyPI,
sha256-pinned, cached). Home Assistant's discovery schemas drop unknown keys silently
(``extra=vol.REMOVE_EXTRA``), so a key it does not know is not an error there, just a setting
that never takes effect: here it is a failure.
"""

from __future__ import annotations

import json

import pytest

from agent.hass.discovery import discovery_messages
from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from agent.mqtt.topics import DeviceTopics
from tests.hass.test_hass import SCHEMA, UPDATE_STATE_KEYS, render
from tests.support.hass_upstream import UpstreamSchemas, load_schemas

pytestmark = pytest.mark.slow  # the first run downloads the wheel (35 MB)

PLATFORM = "PLATFORM_SCHEMA_MODERN"
TOPICS = DeviceTopics("edge", "pi-kitchen-01")


@pytest.fixture(scope="module")
def upstream() -> UpstreamSchemas:
    return load_schemas()


def test_every_payload_uses_only_keys_home_assistant_validates(upstream: UpstreamSchemas) -> None:
    for discovery in discovery_messages(TOPICS, "homeassistant"):
        config = json.loads(discovery.payload())
        schema = f"{discovery.component}.{PLATFORM}"
        accepted = upstream.keys(schema)
        assert accepted, schema  # the reader found the schema at all
        assert set(config) - accepted == set(), discovery.object_id
        assert upstream.required(schema) <= set(config), discovery.object_id
        device = upstream.keys("schemas.MQTT_ENTITY_DEVICE_INFO_SCHEMA")
        assert set(config["device"]) <= device
        origin = "schemas.MQTT_ORIGIN_INFO_SCHEMA"
        assert upstream.required(origin) <= set(config["origin"]) <= upstream.keys(origin)


def test_the_update_state_is_what_home_assistants_json_update_schema_reads(
    upstream: UpstreamSchemas,
) -> None:
    assert upstream.keys("update.MQTT_JSON_UPDATE_SCHEMA") == UPDATE_STATE_KEYS
    template = next(
        d for d in discovery_messages(TOPICS, "homeassistant") if d.component == "update"
    ).config["value_template"]
    model = ModelRef("digits", "3", "ab" * 32)
    busy = UpdateStatus(state="downloading", name="digits", counter=4, blocks_held=3, blocks=8)
    state = json.loads(render(template, StatusMessage(ts=1.0, state="running", model=model,
                                                      update=busy).to_json()))  # fmt: skip
    assert set(state) <= upstream.keys("update.MQTT_JSON_UPDATE_SCHEMA")
    assert isinstance(state["in_progress"], bool)
    assert 0 <= state["update_percentage"] <= 100
    assert isinstance(state["release_summary"], str)


def test_the_hand_written_schema_only_allows_what_home_assistant_knows(
    upstream: UpstreamSchemas,
) -> None:
    for component, (required, allowed) in SCHEMA.items():
        schema = f"{component}.{PLATFORM}"
        assert required == upstream.required(schema), component
        newer = {"default_entity_id"}  # added to Home Assistant after the pinned release
        assert allowed - newer - upstream.keys(schema) == set(), component
