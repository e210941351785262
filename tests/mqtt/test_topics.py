"""Topic value types and the device topic layout, without a broker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.mqtt.topics import DeviceTopics, Topic, TopicError, TopicFilter, validate_device_id


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#", "a\x00b", "é" * 40000])
def test_topic_rejects_wildcards_nul_empty_and_oversize(bad: str) -> None:
    with pytest.raises(TopicError):
        Topic(bad)


def test_topic_allows_empty_levels_and_spaces_as_mqtt_does() -> None:
    assert Topic("a//b ").levels == ("a", "", "b ")


@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a+/b", "#/a", "", "x\x00"])
def test_topic_filter_rejects_misplaced_wildcards(bad: str) -> None:
    with pytest.raises(TopicError):
        TopicFilter(bad)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "a/b", True),
        ("+", "", True),
        ("a/+/c", "a//c", True),
        ("a/b", "a/c", False),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
    ],
)
def test_topic_filter_matches_by_mqtt_rules(pattern: str, topic: str, expected: bool) -> None:
    assert TopicFilter(pattern).matches(topic) is expected


@given(st.lists(st.text(alphabet="abc", max_size=3), min_size=1, max_size=5))
def test_hash_filter_matches_every_topic_below_its_prefix(levels: list[str]) -> None:
    topic = "/".join(["root", *levels])
    assert TopicFilter("root/#").matches(topic)
    assert TopicFilter(topic).matches(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "a#", "tab\tid", "bell\x07", "$sys", "x" * 129])
def test_device_id_rejects_separators_wildcards_and_control_chars(bad: str) -> None:
    with pytest.raises(TopicError):
        validate_device_id(bad)


def test_device_topics_follow_the_documented_layout() -> None:
    topics = DeviceTopics("site/edge", "pi-7")
    assert str(topics.availability) == "site/edge/pi-7/availability"
    assert str(topics.results) == "site/edge/pi-7/results"
    assert str(topics.status) == "site/edge/pi-7/status"
    assert str(topics.command("reload")) == "site/edge/pi-7/commands/reload"
    assert str(topics.commands) == "site/edge/pi-7/commands/#"
    assert str(topics.sensor("temp")) == "site/edge/pi-7/sensors/temp"
    assert topics.sensors.matches(topics.sensor("temp"))
    assert not topics.commands.matches(topics.results)


@pytest.mark.parametrize("prefix", ["", "/edge", "edge/", "a//b", "$SYS", "edge/+"])
def test_device_topics_reject_a_bad_prefix(prefix: str) -> None:
    with pytest.raises(TopicError):
        DeviceTopics(prefix, "pi-7")


def test_command_name_cannot_smuggle_extra_levels() -> None:
    with pytest.raises(TopicError):
        DeviceTopics("edge", "pi-7").command("a/b")
