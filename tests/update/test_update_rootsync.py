"""Root metadata over MQTT (RootSync): an expired root is held as a chain link, refused as the
new root (reported once), and crossed when a fresh newer root arrives."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.root import RootStore, load_root, make_root
from agent.update.rootsync import RootSync

NOW = 1_800_000_000
ROOT, RELEASE, FLEET = (Ed25519PrivateKey.generate() for _ in range(3))


def _root(version: int, expires: int) -> bytes:
    roles = {
        "root": ([ROOT.public_key()], 1),
        "release": ([RELEASE.public_key()], 1),
        "fleet": ([FLEET.public_key()], 1),
    }
    return make_root(version, expires, roles, [ROOT])


def test_an_expired_root_is_refused_once_then_crossed_to_a_fresh_one(tmp_path: Path) -> None:
    store = RootStore(tmp_path / "trust")
    sync = RootSync(load_root(_root(1, NOW + 100)), store, wall=lambda: NOW)
    first = sync.offer(2, _root(2, NOW - 1))
    assert first.accepted is None
    assert first.refused is not None
    assert (first.refused.code, first.refused.reason) == (
        "expired",
        f"root version 2 expired at {NOW - 1}; staying on version 1",
    )
    assert sync.offer(2, _root(2, NOW - 1)).refused is None  # the retained copy on a reconnect
    assert (sync.current.version, store.load()) == (1, None)
    fresh = sync.offer(3, _root(3, NOW + 100))
    assert fresh.accepted is not None
    assert (fresh.accepted.version, fresh.refused, sync.current.version) == (3, None, 3)
    assert store.newest(load_root(_root(1, NOW + 100))).version == 3
