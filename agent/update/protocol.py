"""The model-update protocol over MQTT: topic names, bundle ids and the status ``update`` object.

Pure: no sockets, no files. Shared by the device (the updater) and ``edge-fleet`` (the publisher),
so both sides build exactly the same names. The whole protocol is in ``docs/mqtt-protocol.md``::

    <prefix>/bundles/<bid>/header          retained: the bundle header, bytes
                                           0..header_length of the .edgepkg
    <prefix>/bundles/<bid>/blocks/<i>      retained: ciphertext block i of the payload
    <prefix>/<device_id>/commands/desired  retained: signed command naming the bundle to install
    <prefix>/<device_id>/commands/rollback signed command: go back to the previous slot

``<bid>`` is the first 32 hex digits of the SHA-256 of the header bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from agent.bundle.container import Limits, parse_prefix
from agent.errors import BundleRejected
from agent.mqtt.messages import UPDATE_STATES, UpdateStatus
from agent.mqtt.topics import DeviceTopics, Topic, TopicError, TopicFilter, validate_prefix
from agent.reasons import Reason

BUNDLES_LEVEL = "bundles"
TRUST_LEVEL = "trust"  # <prefix>/trust/root/<version>: device ids must not be "trust"
COMMAND_DESIRED = "desired"
COMMAND_ROLLBACK = "rollback"
COMMANDS = (COMMAND_DESIRED, COMMAND_ROLLBACK)
BUNDLE_ID_CHARS = 32
DEFAULT_BLOCK_LIMIT = 128 << 10  # AWS IoT Core rejects messages over 128 KiB
_BUNDLE_ID = re.compile(r"[0-9a-f]{32}")

__all__ = [
    "BUNDLES_LEVEL",
    "COMMANDS",
    "COMMAND_DESIRED",
    "COMMAND_ROLLBACK",
    "UPDATE_STATES",
    "BundleTopics",
    "UpdateStatus",
    "bundle_id",
    "check_bundle_id",
    "command_topic",
    "split_bundle",
]


def bundle_id(header: bytes | memoryview) -> str:
    """The id a bundle is published under: 32 hex digits of the SHA-256 of its header bytes."""
    return hashlib.sha256(header).hexdigest()[:BUNDLE_ID_CHARS]


def check_bundle_id(value: str) -> str:
    if not isinstance(value, str) or not _BUNDLE_ID.fullmatch(value):
        raise TopicError(f"bundle id {value!r} must be {BUNDLE_ID_CHARS} lower-case hex digits")
    return value


def split_bundle(data: bytes | memoryview, limits: Limits | None = None) -> tuple[bytes, int]:
    """A bundle's header bytes and its payload length, from the structural prefix only.

    Raises :class:`BundleRejected` when the prefix is malformed, over the limits, or the data
    does not hold exactly the header plus the payload.
    """
    prefix = parse_prefix(data, limits or Limits())
    expected = prefix.header_length + prefix.payload_length
    if len(data) != expected:
        raise BundleRejected(
            Reason.MALFORMED, f"bundle is {len(data)} bytes; its prefix says {expected}"
        )
    return bytes(data[: prefix.header_length]), prefix.payload_length


@dataclass(frozen=True, slots=True)
class BundleTopics:
    """The bundle namespace shared by every device under one topic prefix."""

    prefix: str

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)

    @property
    def base(self) -> Topic:
        return Topic(f"{self.prefix}/{BUNDLES_LEVEL}")

    def header(self, bid: str) -> Topic:
        return self.base.child(check_bundle_id(bid), "header")

    def block(self, bid: str, index: int) -> Topic:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise TopicError(f"block index {index!r} must be a non-negative integer")
        return self.base.child(check_bundle_id(bid), "blocks", str(index))

    def bundle(self, bid: str) -> TopicFilter:
        """Every topic of one bundle (what ``edge-fleet gc`` clears)."""
        return TopicFilter(f"{self.base.value}/{check_bundle_id(bid)}/#")

    def block_index(self, bid: str, topic: str) -> int | None:
        """The block index ``topic`` carries for bundle ``bid``, or ``None`` if it is not one."""
        head = f"{self.base.value}/{check_bundle_id(bid)}/blocks/"
        if not topic.startswith(head):
            return None
        tail = topic[len(head) :]
        if not tail.isascii() or not tail.isdigit() or (len(tail) > 1 and tail[0] == "0"):
            return None
        return int(tail)


def root_topic(prefix: str, version: int) -> Topic:
    """``<prefix>/trust/root/<version>``: root metadata version ``version`` (retained)."""
    validate_prefix(prefix)
    return Topic(f"{prefix}/{TRUST_LEVEL}/root/{version}")


def root_filter(prefix: str) -> TopicFilter:
    """Every root version (a device that missed rotations gets each one in order)."""
    validate_prefix(prefix)
    return TopicFilter(f"{prefix}/{TRUST_LEVEL}/root/+")


def root_version(prefix: str, topic: str) -> int | None:
    """The version a root topic carries, or ``None`` when ``topic`` is not one."""
    head = f"{prefix}/{TRUST_LEVEL}/root/"
    tail = topic[len(head) :] if topic.startswith(head) else ""
    if not tail.isascii() or not tail.isdigit() or tail[0] == "0" or len(tail) > 9:
        return None
    return int(tail)


def command_topic(topics: DeviceTopics, name: str) -> Topic:
    """``<prefix>/<device_id>/commands/<name>`` for one of :data:`COMMANDS`."""
    if name not in COMMANDS:
        raise TopicError(f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
    if topics.device_id in (BUNDLES_LEVEL, TRUST_LEVEL):
        raise TopicError(
            f"device id {topics.device_id!r} collides with the {topics.device_id} namespace"
        )
    return topics.command(name)
