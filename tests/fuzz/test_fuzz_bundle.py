"""Fuzzing the parsers of bundle bytes: container header, signed manifest, trust file, the
structural split of a bundle pushed over MQTT. Only BundleRejected may come out, quickly, in
bounded memory, whatever the bytes."""

from __future__ import annotations

import base64
import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given

from agent.bundle import (
    BundleVerifier,
    DeviceIdentity,
    Limits,
    RecipientKey,
    Release,
    ReleaseState,
    TrustRoot,
    build_bundle,
)
from agent.bundle.container import parse_header
from agent.bundle.envelope import make_envelope
from agent.bundle.manifest import parse_manifest
from agent.bundle.trust import TRUST_PAYLOAD_TYPE, load_trust, make_trust_file
from agent.errors import BundleRejected
from agent.update.protocol import split_bundle
from tests.support.fuzz import check_parser, fuzz_settings, json_bytes, outside_bytes

LIMITS = Limits()
NOW = int(time.time())
SIGNER = Ed25519PrivateKey.generate()
DEVICE = X25519PrivateKey.generate()
BUNDLE = build_bundle(
    Release("fuzz", 3, NOW - 60),
    {"model.tflite": bytes(range(256)) * 40, "labels.txt": b"a\nb\n"},
    [SIGNER],
    [RecipientKey("pi-1", DEVICE.public_key()), RecipientKey("pi-2", DEVICE.public_key())],
)
HEADER = parse_header(BUNDLE, LIMITS)
HEADER_BYTES = BUNDLE[: HEADER.prefix.header_length]
MANIFEST = json.loads(HEADER.manifest)
TRUST = make_trust_file(1, 1, [SIGNER.public_key()], [SIGNER])


def _verify_header(data: bytes) -> object:
    verifier = BundleVerifier(
        TrustRoot.from_keys([SIGNER.public_key()]),
        DeviceIdentity("pi-1", DEVICE),
        ReleaseState(),
        now=NOW,
    )
    return verifier.verify_header(data)


@fuzz_settings
@given(outside_bytes([HEADER_BYTES, BUNDLE[:4096]], max_size=4096))
def test_container_header_parser_only_rejects(data: bytes) -> None:
    check_parser(lambda d: parse_header(d, LIMITS), data, (BundleRejected,))


@fuzz_settings
@given(outside_bytes([HEADER_BYTES], max_size=4096))
def test_header_verification_only_rejects(data: bytes) -> None:
    check_parser(_verify_header, data, (BundleRejected,))


@fuzz_settings
@given(outside_bytes([HEADER.manifest]) | json_bytes(MANIFEST))
def test_manifest_parser_only_rejects(data: bytes) -> None:
    check_parser(lambda d: parse_manifest(d, LIMITS), data, (BundleRejected,))


@fuzz_settings
@given(outside_bytes([HEADER_BYTES + bytes(64), BUNDLE[:2048]], max_size=4096))
def test_bundle_split_only_rejects(data: bytes) -> None:
    check_parser(lambda d: split_bundle(d, LIMITS), data, (BundleRejected,))


def _trust_payload() -> dict[str, object]:
    return dict(json.loads(base64.b64decode(json.loads(TRUST)["payload"])))


@fuzz_settings
@given(
    outside_bytes([TRUST])
    | json_bytes(json.loads(TRUST))
    | json_bytes(_trust_payload()).map(
        lambda payload: make_envelope(TRUST_PAYLOAD_TYPE, payload, [SIGNER])
    )
)
def test_trust_file_loader_only_rejects(data: bytes) -> None:
    check_parser(load_trust, data, (BundleRejected,))
