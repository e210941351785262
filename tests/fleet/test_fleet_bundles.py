"""Splitting a bundle file into retained messages, and which retained bundles gc deletes."""

from __future__ import annotations

import hashlib
import inspect

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.container import Limits
from agent.errors import BundleRejected
from agent.update.commands import desired_command, rollback_command, sign_command
from fleet.bundles import prepare_bundle, unwanted_bundles
from fleet.commands.gc import block_count, desired_bundle

MODEL = bytes(range(256)) * 1000  # 256000 bytes: four 64 KiB blocks


def _bundle(block_size: int = 64 << 10) -> bytes:
    return build_bundle(
        Release("digits", 7, 1_800_000_000, block_size=block_size),
        {"model.tflite": MODEL},
        [Ed25519PrivateKey.generate()],
        [RecipientKey("group:lab", X25519PrivateKey.generate().public_key())],
    )


def test_messages_are_the_header_then_every_block_under_the_bundle_id() -> None:
    data = _bundle()
    bundle = prepare_bundle(data)
    header = data[: len(bundle.header)]
    bid = hashlib.sha256(header).hexdigest()[:32]
    messages = bundle.messages("site/edge")
    assert [str(t) for t, _ in messages] == [f"site/edge/bundles/{bid}/header"] + [
        f"site/edge/bundles/{bid}/blocks/{i}" for i in range(4)
    ]
    assert b"".join(p for _, p in messages) == data


def test_the_offer_binds_the_header_and_describes_the_bundle() -> None:
    data = _bundle()
    offer = prepare_bundle(data).offer
    assert offer.header_matches(prepare_bundle(data).header)
    assert (offer.name, offer.counter, offer.size, offer.blocks) == ("digits", 7, len(data), 4)


def test_blocks_larger_than_aws_iot_core_accepts_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 131072"):
        prepare_bundle(_bundle(block_size=256 << 10))


def test_a_truncated_file_is_rejected_before_anything_is_published() -> None:
    with pytest.raises(BundleRejected, match="prefix says"):
        prepare_bundle(_bundle()[:-1])


def test_gc_keeps_bundles_a_device_still_wants_and_deletes_the_rest() -> None:
    published = {"a" * 32: 3, "b" * 32: 5, "c" * 32: 1}
    desired = {"pi-1": "a" * 32, "pi-2": "b" * 32}
    installed = {"pi-1": "a" * 32, "pi-2": None}
    assert unwanted_bundles(published, desired, installed) == ["a" * 32, "c" * 32]


def test_gc_reads_block_counts_and_desired_bundle_ids_from_retained_messages() -> None:
    bundle = prepare_bundle(_bundle())
    key = Ed25519PrivateKey.generate()
    desired = sign_command(desired_command("pi-1", bundle.offer, 1_800_000_000.0), [key])
    rollback = sign_command(rollback_command("pi-1", 1_800_000_000.0), [key])
    assert block_count(bundle.header, Limits()) == 4
    assert desired_bundle(desired) == bundle.bid
    assert desired_bundle(rollback) is None
    assert desired_bundle(b'{"not": "an envelope"}') is None


def test_by_default_a_header_and_a_block_are_each_capped_at_128_kib() -> None:
    """AWS IoT Core's message limit is what ``push`` and ``rollout`` check against."""
    defaults = inspect.signature(prepare_bundle).parameters
    assert defaults["max_message"].default == defaults["max_block"].default == 128 * 1024


def test_a_header_over_the_message_limit_is_refused_saying_how_many_recipients_fit() -> None:
    """A per-device bundle: 40 recipients of ~90 bytes each against a 2 KiB limit."""
    recipients = [
        RecipientKey(f"device:cam-{i:04d}", X25519PrivateKey.generate().public_key())
        for i in range(40)
    ]
    data = build_bundle(
        Release("digits", 7, 1_800_000_000), {"model.tflite": MODEL},
        [Ed25519PrivateKey.generate()], recipients,
    )  # fmt: skip
    header = prepare_bundle(data).header
    with pytest.raises(ValueError, match="bundle header is") as caught:
        prepare_bundle(data, max_message=2048)
    text = str(caught.value)
    assert text.startswith(f"bundle header is {len(header)} bytes, more than 2048")
    assert "40 recipients at ~" in text
    fit = int(text.split("at most ")[1].split(" fit", maxsplit=1)[0])
    assert 0 < fit < 40
    assert prepare_bundle(data, max_message=len(header)).header == header
