"""Freeze detection: signed timestamps from the fleet, and how long a device has gone without."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.update.freeze import FreezeWatch, Timestamp, make_timestamp, open_timestamp

FLEET = Ed25519PrivateKey.generate()
TRUST = TrustRoot.from_keys([FLEET.public_key()], role="fleet")
NOW = 1_800_000_000


def test_a_signed_timestamp_round_trips_and_another_key_is_refused() -> None:
    assert open_timestamp(make_timestamp(NOW, NOW + 60, [FLEET]), TRUST) == Timestamp(NOW, NOW + 60)
    with pytest.raises(BundleRejected, match="signature_invalid"):
        open_timestamp(make_timestamp(NOW, NOW + 60, [Ed25519PrivateKey.generate()]), TRUST)


def test_silence_is_measured_from_the_last_fresh_timestamp_on_the_monotonic_clock() -> None:
    watch = FreezeWatch(started=10.0)
    assert watch.silent_s(40.0) == 30.0  # nothing yet: since start-up
    watch = watch.observe(Timestamp(NOW, NOW + 3600), NOW, 50.0)
    assert watch.silent_s(80.0) == 30.0
    assert watch.observe(Timestamp(NOW, NOW + 3600), NOW + 5, 90.0) is watch  # retained repeat


def test_an_older_or_expired_timestamp_is_refused() -> None:
    watch = FreezeWatch(0.0).observe(Timestamp(NOW, NOW + 3600), NOW, 1.0)
    with pytest.raises(BundleRejected) as info:
        watch.observe(Timestamp(NOW - 10, NOW + 3600), NOW, 2.0)
    assert (info.value.code, info.value.reason) == (
        "replayed",
        "timestamp issued at 1799999990 is not newer than 1800000000",
    )
    with pytest.raises(BundleRejected, match="expired: timestamp expired at 1800000060"):
        watch.observe(Timestamp(NOW + 1, NOW + 60), NOW + 400, 3.0)
