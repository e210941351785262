"""Home Assistant MQTT discovery: the retained config messages that describe this device (pure).

Home Assistant subscribes to ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``;
each retained JSON config there creates one entity. Ours read the agent's existing topics, so no
extra state messages are published:

========================  ==============  ================================================
entity                    component       reads
========================  ==============  ================================================
latest result             sensor          ``<prefix>/<id>/hass/result``: the newest result at
                                          most once per ``state_interval_s``: top label
                                          (outputs: attributes)
inference rate            sensor          ``<prefix>/<id>/status`` ``fps``
latency (p50)             sensor          ``<prefix>/<id>/status`` ``latency_ms.p50``
accelerator               binary_sensor   ``<prefix>/<id>/status``: on while an Edge TPU serves
model                     update          ``<prefix>/<id>/status``: installed model version vs
                                          the release the signed desired state orders, with
                                          in_progress, update_percentage, release_summary
<label> (per events       binary_sensor   ``<prefix>/<id>/events``: on from an event's start
label)                                    to its end (other labels' events leave it alone)
events                    event           ``<prefix>/<id>/events``: event_type start/update/end
========================  ==============  ================================================

Results themselves may arrive many times a second; each would be a state change recorded by
Home Assistant, so the agent republishes the newest one on ``<prefix>/<id>/hass/result``
(retained) at a bounded rate instead (:mod:`agent.hass.throttle`).

All share one device block and the agent's availability topic (``online``/``offline``, the
latter through the MQTT will). The agent re-publishes them on every connect and whenever
Home Assistant announces itself on ``<discovery_prefix>/status`` with ``online``.
The keys used are those of Home Assistant's MQTT discovery schemas (sensor, binary_sensor,
update, plus the entity-common availability/device/origin keys); ``tests/hass/test_hass.py`` checks
every payload against them, and ``tests/hass/test_hass_upstream_schema.py`` against the key sets
of Home Assistant's own schemas, read from its released source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent import __version__
from agent.hass.events import event_entities
from agent.mqtt.topics import DeviceTopics, Topic

ORIGIN = {
    "name": "edge-agent",
    "sw_version": __version__,
    "support_url": "https://github.com/edge-agent/edge-agent",
}

# Jinja templates Home Assistant renders against the agent's own JSON messages.
RESULT_TEMPLATE = (
    "{% set o = value_json.outputs %}"
    "{% if o.classes is defined %}{{ o.classes[0].label if o.classes else 'none' }}"
    "{% elif o.detections is defined %}"
    "{{ o.detections | map(attribute='label') | unique | join(',') or 'none' }}"
    "{% else %}raw{% endif %}"
)
RESULT_ATTRIBUTES_TEMPLATE = (
    "{{ dict(value_json.outputs, seq=value_json.seq, model=value_json.model.name,"
    " version=value_json.model.version, latency_ms=value_json.latency_ms) | tojson }}"
)
ACCELERATOR_TEMPLATE = (
    "{{ 'ON' if value_json.accelerator not in ('cpu', '') and not value_json.degraded else 'OFF' }}"
)
# Installed = the serving model's version. Latest = the release the device's signed desired state
# asks for (status ``update.counter``) unless a rollback was ordered, so Home Assistant shows
# "update available" from the moment the device accepts the order, and keeps showing it, with
# the reason in the release summary, if the device refused that release. While blocks arrive:
# in_progress and update_percentage. (``value_json['update']``, not ``.update``: Jinja would
# find the dict method first.)
UPDATE_TEMPLATE = (
    "{% set m = value_json.model %}{% set u = value_json['update'] %}"
    "{% set installed = m.version if m else 'none' %}"
    "{% set active = (u.state in ('downloading', 'verifying', 'canary')) if u else false %}"
    "{% set latest = (u.counter | string) if u and u.counter is not none"
    " and u.state not in ('idle', 'rolled_back') else installed %}"
    "{% set pct = ((100 * u.blocks_held / u.blocks) | round(1))"
    " if active and u.state == 'downloading' and u.blocks else none %}"
    "{% set summary = ((u.name or 'model') ~ ' release ' ~ u.counter ~ ': ' ~ u.state"
    " ~ ((' (' ~ u.reason ~ ')') if u.reason else '')"
    " ~ ((': ' ~ u.detail) if u.detail else ''))[:255] if u and u.counter is not none"
    " else 'no update ordered' %}"
    "{{ {'installed_version': installed, 'latest_version': latest,"
    " 'title': (m.name if m else 'model'), 'in_progress': active,"
    " 'update_percentage': pct, 'release_summary': summary} | tojson }}"
)
# Status sensors go unavailable when no status arrived for this long (3 status intervals).
DEFAULT_EXPIRE_AFTER_S = 90


@dataclass(frozen=True)
class Discovery:
    """One retained discovery message."""

    component: str
    object_id: str
    topic: Topic
    config: dict[str, Any]

    def payload(self) -> bytes:
        return json.dumps(self.config, sort_keys=True, separators=(",", ":")).encode()


def status_topic(discovery_prefix: str) -> Topic:
    """Where Home Assistant publishes ``online`` when it (re)starts (its birth message)."""
    return Topic(f"{discovery_prefix}/status")


def device_block(device_id: str) -> dict[str, Any]:
    return {
        "identifiers": [f"edge-agent_{device_id}"],
        "name": device_id,
        "manufacturer": "edge-agent",
        "model": "edge inference agent",
        "sw_version": __version__,
    }


def result_state_topic(topics: DeviceTopics) -> Topic:
    """The bounded-rate copy of the results that the result sensor reads."""
    return topics.base.child("hass", "result")


def removal_messages(topics: DeviceTopics, discovery_prefix: str) -> list[Topic]:
    """The config topics to clear (empty retained message) to remove the device from HA."""
    return [d.topic for d in discovery_messages(topics, discovery_prefix)]


def discovery_messages(
    topics: DeviceTopics,
    discovery_prefix: str,
    expire_after_s: int = DEFAULT_EXPIRE_AFTER_S,
    event_labels: tuple[str, ...] = (),
) -> list[Discovery]:
    """Every entity's discovery config for the device that ``topics`` belongs to."""
    device_id = topics.device_id
    status = str(topics.status)
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "result",
            {
                "name": "Latest result",
                "icon": "mdi:eye",
                "state_topic": str(result_state_topic(topics)),
                "value_template": RESULT_TEMPLATE,
                "json_attributes_topic": str(result_state_topic(topics)),
                "json_attributes_template": RESULT_ATTRIBUTES_TEMPLATE,
                "expire_after": expire_after_s,
            },
        ),
        (
            "sensor",
            "fps",
            {
                "name": "Inference rate",
                "icon": "mdi:speedometer",
                "state_topic": status,
                "value_template": "{{ value_json.fps }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "expire_after": expire_after_s,
            },
        ),
        (
            "sensor",
            "latency",
            {
                "name": "Inference latency",
                "state_topic": status,
                "value_template": "{{ value_json.latency_ms.p50 }}",
                "unit_of_measurement": "ms",
                "device_class": "duration",
                "state_class": "measurement",
                "expire_after": expire_after_s,
            },
        ),
        (
            "binary_sensor",
            "accelerator",
            {
                "name": "Accelerator",
                "icon": "mdi:chip",
                "state_topic": status,
                "value_template": ACCELERATOR_TEMPLATE,
                "payload_on": "ON",
                "payload_off": "OFF",
                "entity_category": "diagnostic",
                "expire_after": expire_after_s,
            },
        ),
        (
            "update",
            "model",
            {
                "name": "Model",
                "state_topic": status,
                "value_template": UPDATE_TEMPLATE,
                "entity_category": "diagnostic",
            },
        ),
        *event_entities(topics, event_labels),
    ]
    common = {
        "availability_topic": str(topics.availability),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device_block(device_id),
        "origin": ORIGIN,
        "qos": 1,
    }
    return [
        Discovery(
            component,
            object_id,
            Topic(f"{discovery_prefix}/{component}/{device_id}/{object_id}/config"),
            {**config, **common, "unique_id": f"edge-agent_{device_id}_{object_id}"},
        )
        for component, object_id, config in entities
    ]
