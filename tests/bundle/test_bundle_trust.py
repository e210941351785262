"""Trust-file rotation: N to N+1 needs both thresholds; versions cannot be skipped."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle import TrustRoot, load_trust, make_trust_file, rotate_trust
from agent.bundle.crypto import keyid
from agent.errors import BundleRejected


@pytest.fixture(scope="module")
def keys() -> list[Ed25519PrivateKey]:
    return [Ed25519PrivateKey.generate() for _ in range(5)]


def _pub(keys: list[Ed25519PrivateKey]) -> list[Ed25519PublicKey]:
    return [k.public_key() for k in keys]


def _v1(keys: list[Ed25519PrivateKey]) -> TrustRoot:
    return load_trust(make_trust_file(1, 2, _pub(keys[:3]), keys[:2]))


def test_provisioned_trust_file_must_meet_its_own_threshold(keys: list[Ed25519PrivateKey]) -> None:
    root = _v1(keys)
    assert (root.version, root.threshold) == (1, 2)
    assert set(root.keys) == {keyid(k.public_key()) for k in keys[:3]}
    with pytest.raises(BundleRejected) as info:
        load_trust(make_trust_file(1, 2, _pub(keys[:3]), keys[:1]))
    assert info.value.code == "threshold_not_met"


def test_rotation_signed_by_both_thresholds_is_accepted(keys: list[Ed25519PrivateKey]) -> None:
    new_file = make_trust_file(2, 2, _pub(keys[2:5]), [keys[0], keys[1], keys[3], keys[4]])
    root = rotate_trust(_v1(keys), new_file)
    assert root.version == 2
    assert set(root.keys) == {keyid(k.public_key()) for k in keys[2:5]}


def test_rotation_signed_only_by_old_keys_is_rejected(keys: list[Ed25519PrivateKey]) -> None:
    new_file = make_trust_file(2, 2, _pub(keys[3:5]), keys[:2])
    with pytest.raises(BundleRejected) as info:
        rotate_trust(_v1(keys), new_file)
    assert info.value.code == "signature_invalid"


def test_rotation_meeting_only_the_new_threshold_is_rejected(keys: list[Ed25519PrivateKey]) -> None:
    new_file = make_trust_file(2, 2, _pub(keys[3:5]), [keys[0], keys[3], keys[4]])
    with pytest.raises(BundleRejected) as info:
        rotate_trust(_v1(keys), new_file)
    assert (info.value.code, info.value.reason) == (
        "threshold_not_met",
        "1 distinct trusted key(s) signed, threshold is 2",
    )


def test_rotation_missing_the_new_threshold_is_rejected(keys: list[Ed25519PrivateKey]) -> None:
    new_file = make_trust_file(2, 2, _pub(keys[3:5]), [keys[0], keys[1], keys[3]])
    with pytest.raises(BundleRejected) as info:
        rotate_trust(_v1(keys), new_file)
    assert info.value.code == "threshold_not_met"


def test_skipping_a_version_is_rejected(keys: list[Ed25519PrivateKey]) -> None:
    new_file = make_trust_file(3, 2, _pub(keys[:3]), keys[:3])
    with pytest.raises(BundleRejected) as info:
        rotate_trust(_v1(keys), new_file)
    assert (info.value.code, info.value.reason) == (
        "malformed",
        "trust file version 3 skips 2; rotate one at a time",
    )


def test_replaying_an_older_trust_file_is_rollback(keys: list[Ed25519PrivateKey]) -> None:
    v2 = rotate_trust(_v1(keys), make_trust_file(2, 2, _pub(keys[:3]), keys[:3]))
    with pytest.raises(BundleRejected) as info:
        rotate_trust(v2, make_trust_file(1, 2, _pub(keys[:3]), keys[:3]))
    assert info.value.code == "rollback"


def test_trust_file_with_duplicate_json_keys_is_malformed() -> None:
    with pytest.raises(BundleRejected) as info:
        load_trust(b'{"payloadType":"x","payloadType":"y","payload":"","signatures":[]}')
    assert info.value.code == "malformed"
    assert "duplicate JSON key 'payloadType'" in info.value.reason
