"""The update protocol's names: bundle ids, bundle topics, command topics."""

from __future__ import annotations

import hashlib

import pytest

from agent.errors import BundleRejected
from agent.mqtt.topics import DeviceTopics, TopicError
from agent.update.protocol import (
    BundleTopics,
    bundle_id,
    command_topic,
    root_filter,
    root_topic,
    root_version,
    split_bundle,
)
from tests.bundle.world import World

BID = "0123456789abcdef0123456789abcdef"


def test_bundle_id_is_the_first_32_hex_digits_of_the_header_sha256() -> None:
    header = b"EDGEPKG\x01 header bytes"
    assert bundle_id(header) == hashlib.sha256(header).hexdigest()[:32]


def test_bundle_topics_live_under_the_shared_bundles_namespace() -> None:
    topics = BundleTopics("site/edge")
    assert str(topics.header(BID)) == f"site/edge/bundles/{BID}/header"
    assert str(topics.block(BID, 12)) == f"site/edge/bundles/{BID}/blocks/12"
    assert str(topics.bundle(BID)) == f"site/edge/bundles/{BID}/#"


def test_block_index_reads_back_only_canonical_block_topics_of_that_bundle() -> None:
    topics = BundleTopics("edge")
    assert topics.block_index(BID, str(topics.block(BID, 7))) == 7
    assert topics.block_index(BID, f"edge/bundles/{BID}/blocks/07") is None
    assert topics.block_index(BID, f"edge/bundles/{BID}/blocks/-1") is None
    assert topics.block_index(BID, f"edge/bundles/{BID}/header") is None
    assert topics.block_index(BID, f"edge/bundles/{'f' * 32}/blocks/1") is None


@pytest.mark.parametrize("bad", ["0123", "G" * 32, BID.upper(), BID + "0", "../" + BID[3:]])
def test_a_bundle_id_that_is_not_32_lower_case_hex_digits_is_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="bundle id"):
        BundleTopics("edge").header(bad)


def test_a_negative_block_index_is_refused() -> None:
    with pytest.raises(TopicError, match="non-negative"):
        BundleTopics("edge").block(BID, -1)


def test_command_topics_are_the_device_commands_desired_and_rollback() -> None:
    device = DeviceTopics("edge", "cam-1")
    assert str(command_topic(device, "desired")) == "edge/cam-1/commands/desired"
    assert str(command_topic(device, "rollback")) == "edge/cam-1/commands/rollback"
    with pytest.raises(TopicError, match="unknown command"):
        command_topic(device, "reboot")


def test_a_device_named_bundles_would_collide_with_the_bundle_namespace() -> None:
    with pytest.raises(TopicError, match="collides"):
        command_topic(DeviceTopics("edge", "bundles"), "desired")


def test_split_bundle_separates_the_header_from_the_payload() -> None:
    world = World()
    data = world.bundle()
    header, payload_length = split_bundle(data)
    verified = world.verifier().verify_header(header)
    assert len(header) == verified.header_length
    assert payload_length == verified.manifest.payload.length == len(data) - len(header)


def test_split_bundle_refuses_trailing_or_missing_bytes() -> None:
    data = World().bundle()
    for bad in (data + b"x", data[:-1]):
        with pytest.raises(BundleRejected, match="its prefix says"):
            split_bundle(bad)


def test_a_device_named_trust_would_collide_with_the_trust_namespace() -> None:
    with pytest.raises(TopicError, match="device id 'trust' collides with the trust namespace"):
        command_topic(DeviceTopics("edge", "trust"), "desired")


def test_root_topics_carry_their_version_and_nothing_else_parses_as_one() -> None:
    assert str(root_topic("edge", 3)) == "edge/trust/root/3"
    assert str(root_filter("edge")) == "edge/trust/root/+"
    assert root_version("edge", "edge/trust/root/12") == 12
    for other in ("edge/trust/root/012", "edge/trust/root/x", "edge/trust/timestamp", "a/b"):
        assert root_version("edge", other) is None
