"""Topics as validated value types, and the per-device topic layout.

Pure: no sockets, no threads. Modelled on aiomqtt's ``Topic``/``Wildcard``: a bad topic is rejected
when the value is built, and :meth:`TopicFilter.matches` is a pure function.

Layout for one device (``prefix`` may have several levels, e.g. ``site/edge``)::

    <prefix>/<device_id>/availability      retained "online" / "offline" (will)
    <prefix>/<device_id>/results           result JSON, QoS 1, not retained
    <prefix>/<device_id>/status            status JSON, QoS 1, retained
    <prefix>/<device_id>/events            event start/update/end JSON, QoS 1, not retained
    <prefix>/<device_id>/events/snapshot/<label id>   best frame's JPEG crop, QoS 1, retained
    <prefix>/<device_id>/commands/<name>   commands to the device
    <prefix>/<device_id>/sensors/<name>    sensor readings sent to the device
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import InputError

MAX_TOPIC_BYTES = 65535
MAX_DEVICE_ID_CHARS = 128


class TopicError(InputError, ValueError):
    """A topic, topic filter or device id is not valid."""


def _check_common(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise TopicError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise TopicError(f"{what} must not be empty")
    if "\x00" in value:
        raise TopicError(f"{what} {value!r} contains a NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise TopicError(f"{what} {value!r} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_TOPIC_BYTES:
        raise TopicError(f"{what} is {size} bytes in UTF-8, more than {MAX_TOPIC_BYTES}")


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic name to publish to: no ``+`` or ``#``, no NUL, at most 65535 bytes of UTF-8."""

    value: str

    def __post_init__(self) -> None:
        _check_common(self.value, "topic")
        if "+" in self.value or "#" in self.value:
            raise TopicError(f"topic {self.value!r} contains a wildcard (+ or #)")

    def __str__(self) -> str:
        return self.value

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.value.split("/"))

    def child(self, *levels: str) -> Topic:
        """This topic extended by ``levels``; each level must be non-empty and free of ``/``."""
        for level in levels:
            if not level or "/" in level:
                raise TopicError(f"topic level {level!r} must be non-empty and contain no '/'")
        return Topic("/".join((self.value, *levels)))


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """A subscription filter: ``+`` fills a whole level, ``#`` only as the whole last level."""

    value: str

    def __post_init__(self) -> None:
        _check_common(self.value, "topic filter")
        levels = self.value.split("/")
        for index, level in enumerate(levels):
            if "#" in level and (level != "#" or index != len(levels) - 1):
                raise TopicError(f"topic filter {self.value!r}: '#' must be the whole last level")
            if "+" in level and level != "+":
                raise TopicError(f"topic filter {self.value!r}: '+' must fill a whole level")

    def __str__(self) -> str:
        return self.value

    def matches(self, topic: Topic | str) -> bool:
        """Whether a message on ``topic`` is delivered to this filter (MQTT 5 §4.7)."""
        name = topic.value if isinstance(topic, Topic) else topic
        topic_levels = name.split("/")
        filter_levels = self.value.split("/")
        if name.startswith("$") and filter_levels[0] in ("+", "#"):
            return False
        for index, pattern in enumerate(filter_levels):
            if pattern == "#":
                return True
            if index >= len(topic_levels):
                return False
            if pattern not in ("+", topic_levels[index]):
                return False
        return len(topic_levels) == len(filter_levels)


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it can be a topic level and an MQTT client id, else raise."""
    if not isinstance(device_id, str) or not device_id:
        raise TopicError("device id must be a non-empty string")
    if len(device_id) > MAX_DEVICE_ID_CHARS:
        raise TopicError(f"device id is {len(device_id)} characters, limit {MAX_DEVICE_ID_CHARS}")
    for char in device_id:
        if char in "/+#":
            raise TopicError(f"device id {device_id!r} contains {char!r}")
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            raise TopicError(f"device id {device_id!r} contains control character {ord(char):#x}")
    if device_id.startswith("$"):
        raise TopicError(f"device id {device_id!r} must not start with '$'")
    _check_common(device_id, "device id")
    return device_id


def validate_prefix(prefix: str) -> Topic:
    topic = Topic(prefix)
    if prefix.startswith("$"):
        raise TopicError(f"topic prefix {prefix!r} must not start with '$' (broker topics)")
    if any(level == "" for level in topic.levels):
        raise TopicError(f"topic prefix {prefix!r} has an empty level (leading, trailing or //)")
    return topic


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """Every topic one device uses, built from the prefix and the device id."""

    prefix: str
    device_id: str

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)
        validate_device_id(self.device_id)

    @property
    def base(self) -> Topic:
        return Topic(f"{self.prefix}/{self.device_id}")

    @property
    def availability(self) -> Topic:
        return self.base.child("availability")

    @property
    def results(self) -> Topic:
        return self.base.child("results")

    @property
    def status(self) -> Topic:
        return self.base.child("status")

    @property
    def report(self) -> Topic:
        return self.base.child("report")

    @property
    def events(self) -> Topic:
        return self.base.child("events")

    def command(self, name: str) -> Topic:
        return self.base.child("commands", name)

    @property
    def commands(self) -> TopicFilter:
        """Filter for every command to this device."""
        return TopicFilter(f"{self.base.value}/commands/#")

    def sensor(self, name: str) -> Topic:
        """Topic on which readings for sensor ``name`` reach this device."""
        return self.base.child("sensors", name)

    @property
    def sensors(self) -> TopicFilter:
        return TopicFilter(f"{self.base.value}/sensors/+")
