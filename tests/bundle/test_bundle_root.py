"""Root metadata: provisioned v1, rotation as a chain, revocation, catching up, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.crypto import keyid
from agent.bundle.root import RootStore, catch_up, load_root, make_root, next_root
from agent.errors import BundleRejected

EXPIRES = 1_900_000_000
K = [Ed25519PrivateKey.generate() for _ in range(6)]


def _root(
    version: int,
    root: list[Ed25519PrivateKey],
    release: list[Ed25519PrivateKey],
    signers: list[Ed25519PrivateKey],
    *,
    root_threshold: int = 1,
    release_threshold: int = 1,
    expires: int = EXPIRES,
) -> bytes:
    return make_root(
        version,
        expires,
        {
            "root": ([k.public_key() for k in root], root_threshold),
            "release": ([k.public_key() for k in release], release_threshold),
            "fleet": ([K[5].public_key()], 1),
        },
        signers,
    )


V1 = _root(1, [K[0], K[1]], [K[2]], [K[0], K[1]], root_threshold=2)


def test_a_provisioned_root_is_signed_by_its_own_root_keys_to_their_threshold() -> None:
    root = load_root(V1)
    assert (root.version, root.expires, root.root.threshold) == (1, EXPIRES, 2)
    assert set(root.release.keys) == {keyid(K[2].public_key())}
    with pytest.raises(BundleRejected) as info:
        load_root(_root(1, [K[0], K[1]], [K[2]], [K[0]], root_threshold=2))
    assert (info.value.code, info.value.reason) == (
        "threshold_not_met",
        "1 distinct trusted root key(s) signed, threshold is 2",
    )


def test_rotating_the_release_key_needs_the_old_root_threshold_and_the_new_one() -> None:
    current = load_root(V1)
    v2 = _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2)  # release K2 -> K3
    rotated = next_root(current, v2)
    assert set(rotated.release.keys) == {keyid(K[3].public_key())}
    with pytest.raises(BundleRejected, match="threshold_not_met"):
        next_root(current, _root(2, [K[0], K[1]], [K[3]], [K[0]], root_threshold=2))


def test_new_root_keys_must_sign_their_own_root_too() -> None:
    current = load_root(V1)
    v2 = _root(2, [K[4]], [K[2]], [K[0], K[1]])  # old keys only, new root key K4 absent
    with pytest.raises(BundleRejected) as info:
        next_root(current, v2)
    assert info.value.code == "signature_invalid"
    assert "no signature by a trusted root key" in info.value.reason


def test_versions_cannot_be_skipped_or_replayed() -> None:
    current = load_root(V1)
    v3 = _root(3, [K[0], K[1]], [K[2]], [K[0], K[1]], root_threshold=2)
    with pytest.raises(BundleRejected, match="root version 3 skips 2"):
        next_root(current, v3)
    with pytest.raises(BundleRejected, match="already_installed"):
        next_root(current, V1)


def test_a_device_offline_across_two_rotations_catches_up_in_order() -> None:
    v2 = _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2)
    v3 = _root(3, [K[4]], [K[4]], [K[0], K[1], K[4]])  # new root key, release K4 only
    v4_forged = _root(4, [K[0]], [K[0]], [K[0]])  # signed by a key v3 no longer trusts
    done = catch_up(load_root(V1), {3: v3, 2: v2, 1: V1, 4: v4_forged})
    assert done.applied == (2, 3)
    assert done.root.version == 3
    assert set(done.root.release.keys) == {keyid(K[4].public_key())}
    assert done.refused is not None
    assert done.refused.code == "signature_invalid"


def test_a_gap_stops_the_catch_up_without_error() -> None:
    v3 = _root(3, [K[0], K[1]], [K[2]], [K[0], K[1]], root_threshold=2)
    done = catch_up(load_root(V1), {3: v3})
    assert (done.root.version, done.applied, done.refused) == (1, (), None)


def test_an_expired_root_is_not_accepted_as_the_new_root() -> None:
    v2 = _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2, expires=1_000)
    done = catch_up(load_root(V1), {2: v2}, now=1_000)
    assert (done.root.version, done.applied, done.tip_expired) == (1, (), 2)
    assert done.refused is not None
    assert (done.refused.code, done.refused.reason) == (
        "expired",
        "root version 2 expired at 1000; staying on version 1",
    )


def test_an_expired_root_is_a_link_of_the_chain_to_a_fresh_one() -> None:
    v2 = _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2, expires=1_000)
    v3 = _root(3, [K[4]], [K[4]], [K[0], K[1], K[4]])
    done = catch_up(load_root(V1), {2: v2, 3: v3}, now=2_000)
    assert (done.root.version, done.applied, done.refused, done.tip_expired) == (
        3,
        (2, 3),
        None,
        None,
    )


def test_the_chain_stops_at_the_newest_unexpired_root() -> None:
    v2 = _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2)
    v3 = _root(3, [K[4]], [K[4]], [K[0], K[1], K[4]], expires=1_000)
    done = catch_up(load_root(V1), {2: v2, 3: v3}, now=2_000)
    assert (done.root.version, done.applied, done.tip_expired) == (2, (2,), 3)
    assert done.refused is not None
    assert done.refused.code == "expired"


def test_the_store_keeps_the_newest_accepted_root(tmp_path: Path) -> None:
    store = RootStore(tmp_path / "trust")
    provisioned = load_root(V1)
    assert store.newest(provisioned) == provisioned
    v2 = next_root(provisioned, _root(2, [K[0], K[1]], [K[3]], [K[0], K[1]], root_threshold=2))
    store.save(v2)
    assert (store.path.stat().st_mode & 0o777, store.directory.stat().st_mode & 0o777) == (
        0o600,
        0o700,
    )
    assert store.newest(provisioned).version == 2
    assert store.newest(v2).version == 2


def test_roles_must_be_exactly_root_release_fleet() -> None:
    with pytest.raises(ValueError, match="roles must be exactly root, release, fleet"):
        make_root(1, EXPIRES, {"root": ([K[0].public_key()], 1)}, [K[0]])
