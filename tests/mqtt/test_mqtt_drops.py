"""Messages dropped before parsing: counted per topic kind, logged at most once a minute."""

from __future__ import annotations

import logging

import pytest

from agent.jsonutil import StrictJSONError, check_depth, loads_strict
from agent.mqtt.client import connect_properties
from agent.mqtt.events import DropLog, drop_label
from agent.mqtt.settings import MqttSettings


@pytest.mark.parametrize(
    ("topic", "label"),
    [
        ("edge/cam-1/commands/desired", "commands/desired"),
        ("edge/bundles/0123/blocks/7", "bundles"),
        ("edge/bundles/0123/header", "bundles"),
        ("edge/cam-1/sensor", "sensor"),
    ],
)
def test_drops_are_counted_under_a_few_bounded_labels(topic: str, label: str) -> None:
    assert drop_label(topic) == label


def test_a_drop_is_counted_every_time_and_logged_once_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    drops = DropLog(clock=lambda: now[0])
    topic = "edge/cam-1/commands/rollback"
    with caplog.at_level(logging.WARNING):
        drops.record(topic, 102_400, 16_384)
        now[0] = 130.0
        drops.record(topic, 50_000, 16_384)
        now[0] = 161.0
        drops.record(topic, 60_000, 16_384)
    assert drops.counts() == {"mqtt_oversize.commands/rollback": 3}
    assert [r.getMessage() for r in caplog.records] == [
        "dropped 1 oversize message(s) on edge/cam-1/commands/rollback (this one 102400 bytes, "
        "limit 16384); counted in status errors.mqtt_oversize.commands/rollback",
        "dropped 2 oversize message(s) on edge/cam-1/commands/rollback (this one 60000 bytes, "
        "limit 16384); counted in status errors.mqtt_oversize.commands/rollback",
    ]


def test_refusals_after_parsing_are_counted_beside_the_drops() -> None:
    drops = DropLog()
    drops.count("command_rejected.expired")
    drops.count("command_rejected.expired")
    assert drops.counts() == {"command_rejected.expired": 2}


def test_json_nested_deeper_than_the_bound_is_refused_before_parsing() -> None:
    check_depth(b'{"a":[{"b":"[[[[[[[[[["}]}', 3)  # brackets in strings do not count
    with pytest.raises(StrictJSONError, match="JSON nests deeper than 8 levels"):
        loads_strict(b"[" * 7000 + b"]" * 7000, 16_384, 8)


def test_connect_announces_the_maximum_packet_size() -> None:
    settings = MqttSettings.from_url("mqtt://broker", client_id="cam-1", max_packet_bytes=70_000)
    assert connect_properties(settings).MaximumPacketSize == 70_000
