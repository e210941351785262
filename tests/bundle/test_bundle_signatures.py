"""Signatures, thresholds and the header: rejected before any JSON parsing or decryption."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bundle import open_bundle
from agent.bundle.container import (
    MAGIC,
    Limits,
    Signature,
    build_signatures,
    build_signed,
    parse_header,
)
from agent.bundle.crypto import PAYLOAD_TYPE, keyid, sign
from agent.errors import BundleRejected
from tests.bundle.world import LABELS, MODEL, Calls, World, flip


def _reject(world: World, data: bytes, calls: Calls, **kwargs: object) -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        open_bundle(data, world.verifier(calls=calls, **kwargs))  # type: ignore[arg-type]
    return info.value


def _resign(data: bytes, world: World, manifest: bytes) -> bytes:
    """A bundle with ``manifest`` swapped in and properly signed by release key 0."""
    raw = parse_header(data, Limits())
    signed = build_signed(manifest, raw.recipients, 1, raw.prefix.payload_length)
    key = world.release[0]
    sig = Signature(keyid(key.public_key()), sign(key, PAYLOAD_TYPE, signed))
    return signed + build_signatures((sig,)) + data[raw.prefix.header_length :]


def test_valid_bundle_opens_and_files_match(world: World, calls: Calls) -> None:
    bundle = open_bundle(world.bundle(), world.verifier(calls=calls))
    assert bytes(bundle.files["model.tflite"]) == MODEL
    assert bytes(bundle.files["labels.txt"]) == LABELS
    assert (calls.parses, calls.decryptions) == (1, 1)


def test_unsigned_bundle_is_rejected(world: World, calls: Calls) -> None:
    data = world.bundle()
    raw = parse_header(data, Limits())
    unsigned = (
        build_signed(raw.manifest, raw.recipients, 0, raw.prefix.payload_length)
        + data[raw.prefix.header_length :]
    )
    error = _reject(world, unsigned, calls)
    assert error.code == "signature_invalid"
    assert "carries no signature" in error.reason
    assert calls.parses == 0


def test_forged_signature_is_rejected(world: World, calls: Calls) -> None:
    data = bytearray(world.bundle())
    raw = parse_header(bytes(data), Limits())
    sig_at = raw.prefix.header_length - 64
    data[sig_at : sig_at + 64] = bytes(64)
    error = _reject(world, bytes(data), calls)
    assert error.code == "signature_invalid"
    assert error.reason.startswith("signature by trusted key")
    assert calls.parses == 0


def test_signature_by_unknown_key_is_rejected(world: World, calls: Calls) -> None:
    data = world.bundle(signers=[world.release[2]])
    error = _reject(world, data, calls)
    assert error.code == "signature_invalid"
    assert error.reason == (
        "signature does not verify with any trusted key (has no signature by a trusted key)"
    )
    assert calls.parses == 0


def test_duplicate_signatures_from_one_key_do_not_meet_threshold_two(
    world: World, calls: Calls
) -> None:
    key = world.release[0]
    data = world.bundle(signers=[key, key])
    error = _reject(world, data, calls, trust=world.trust(count=2, threshold=2))
    assert error.code == "threshold_not_met"
    assert error.reason == "1 distinct trusted key(s) signed, threshold is 2"
    assert calls.parses == 0


def test_two_distinct_signers_meet_threshold_two(world: World, calls: Calls) -> None:
    data = world.bundle(signers=world.release[:2])
    bundle = open_bundle(data, world.verifier(calls=calls, trust=world.trust(2, 2)))
    assert bundle.verified.signers == {keyid(k.public_key()) for k in world.release[:2]}


def test_every_single_byte_flip_in_the_header_is_rejected_before_parsing_or_decryption(
    world: World,
) -> None:
    data = world.bundle()
    header_length = parse_header(data, Limits()).prefix.header_length
    codes: set[str] = set()
    calls = Calls()
    for index in range(header_length):
        with pytest.raises(BundleRejected) as info:
            open_bundle(flip(data, index), world.verifier(calls=calls))
        codes.add(info.value.code)
    assert (calls.parses, calls.decryptions) == (0, 0)
    assert codes <= {"signature_invalid", "malformed", "too_large", "stream_truncated"}
    assert "signature_invalid" in codes


def test_every_single_byte_flip_in_a_two_of_two_header_is_rejected(world: World) -> None:
    data = world.bundle(signers=world.release[:2])
    header_length = parse_header(data, Limits()).prefix.header_length
    calls = Calls()
    trust = world.trust(2, 2)
    for index in range(header_length):
        with pytest.raises(BundleRejected):
            open_bundle(flip(data, index, 0x80), world.verifier(calls=calls, trust=trust))
    assert (calls.parses, calls.decryptions) == (0, 0)


def test_duplicate_json_keys_in_a_signed_manifest_are_rejected(world: World, calls: Calls) -> None:
    data = world.bundle()
    manifest = parse_header(data, Limits()).manifest
    duplicated = manifest.replace(b'"counter":5', b'"counter":5,"counter":9', 1)
    assert duplicated != manifest
    error = _reject(world, _resign(data, world, duplicated), calls)
    assert error.code == "malformed"
    assert "duplicate JSON key 'counter'" in error.reason
    assert calls.decryptions == 0


def test_unknown_manifest_key_is_rejected(world: World, calls: Calls) -> None:
    data = world.bundle()
    manifest = parse_header(data, Limits()).manifest
    extended = manifest.replace(b'"counter":5', b'"counter":5,"extra":1', 1)
    error = _reject(world, _resign(data, world, extended), calls)
    assert error.code == "malformed"
    assert error.reason == "manifest: missing or unknown key 'extra'"


def test_resigned_manifest_keeps_key_wrap_bound_to_the_original_digest(
    world: World, calls: Calls
) -> None:
    data = world.bundle()
    manifest = parse_header(data, Limits()).manifest
    later = manifest.replace(b'"expires":1800003600', b'"expires":1800003601', 1)
    assert hashlib.sha256(later).digest() != hashlib.sha256(manifest).digest()
    error = _reject(world, _resign(data, world, later), calls)
    assert error.code == "not_a_recipient"
    assert calls.decryptions == 0


def _parse_code(data: bytes) -> str:
    try:
        parse_header(data, Limits())
    except BundleRejected as exc:
        return exc.code
    return "parsed"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=14, max_size=14), st.binary(max_size=600))
def test_header_parser_fails_only_with_bundle_rejected(fields: bytes, rest: bytes) -> None:
    code = _parse_code(MAGIC + fields + rest)
    assert code in {"parsed", "malformed", "too_large", "stream_truncated"}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_header_corruption_is_rejected_without_parsing(data: st.DataObject) -> None:
    world = _FUZZ_WORLD
    bundle = _FUZZ_BUNDLE
    raw_length = parse_header(bundle, Limits()).prefix.header_length
    index = data.draw(st.integers(0, raw_length - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != bundle[index]))
    corrupted = bytearray(bundle)
    corrupted[index] = value
    calls = Calls()
    with pytest.raises(BundleRejected):
        open_bundle(bytes(corrupted), world.verifier(calls=calls))
    assert (calls.parses, calls.decryptions) == (0, 0)


_FUZZ_WORLD = World()
_FUZZ_BUNDLE = _FUZZ_WORLD.bundle()
