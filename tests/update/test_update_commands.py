"""Signed fleet commands: signed by edge-fleet, verified and replay-checked by the device."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import make_envelope
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.update.commands import (
    CLOCK_SKEW_S,
    COMMAND_PAYLOAD_TYPE,
    ROLLBACK_LIFETIME_S,
    BundleOffer,
    Command,
    CommandLedger,
    LastCommand,
    SignedCommand,
    check_fresh,
    desired_command,
    fleet_seq,
    open_command,
    rollback_command,
    sign_command,
)

FLEET = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
TRUST = TrustRoot.from_keys([FLEET.public_key()], role="fleet")
HEADER = b"EDGEPKG\x01 some header"
OFFER = BundleOffer.for_header(HEADER, "digits", 7, 300_000, 3)
NOW = 1_800_000_000.25


def _open(envelope: bytes, device: str = "cam-1") -> SignedCommand:
    return open_command(envelope, TRUST, device)


def _rejected(envelope: bytes, device: str = "cam-1") -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        _open(envelope, device)
    return info.value


def test_a_signed_desired_command_round_trips() -> None:
    command = desired_command("cam-1", OFFER, NOW)
    signed = _open(sign_command(command, [FLEET]))
    assert signed.command == command
    assert signed.command.bundle == OFFER
    assert signed.command.seq == 1_800_000_000_250


def test_fleet_seq_is_unix_milliseconds() -> None:
    assert fleet_seq(1.5) == 1500


def test_the_offer_binds_the_header_bytes() -> None:
    assert OFFER.header_matches(HEADER)
    assert not OFFER.header_matches(HEADER + b"x")


def test_an_unsigned_command_is_rejected_naming_the_fleet_key_role() -> None:
    envelope = make_envelope(COMMAND_PAYLOAD_TYPE, rollback_command("cam-1", NOW).to_json(), [])
    error = _rejected(envelope)
    assert error.code == "signature_invalid"
    assert error.reason == (
        "signature does not verify with any trusted fleet key (carries no signature)"
    )


def test_a_command_signed_by_an_untrusted_key_is_rejected() -> None:
    error = _rejected(sign_command(rollback_command("cam-1", NOW), [OTHER]))
    assert error.code == "signature_invalid"
    assert "has no signature by a trusted fleet key" in error.reason


def test_a_release_key_is_not_a_fleet_key() -> None:
    release = TrustRoot.from_keys([OTHER.public_key()])
    envelope = sign_command(rollback_command("cam-1", NOW), [FLEET])
    with pytest.raises(BundleRejected, match="signature_invalid"):
        open_command(envelope, release, "cam-1")


def test_a_command_whose_payload_was_altered_after_signing_is_rejected() -> None:
    envelope = json.loads(sign_command(rollback_command("cam-1", NOW), [FLEET]))
    other = rollback_command("cam-2", NOW).to_json()
    envelope["payload"] = base64.b64encode(other).decode()
    error = _rejected(json.dumps(envelope).encode(), "cam-2")
    assert (error.code, error.reason[:26]) == ("signature_invalid", "signature by trusted fleet")


def test_a_command_for_another_device_is_rejected() -> None:
    error = _rejected(sign_command(rollback_command("cam-2", NOW), [FLEET]))
    assert (error.code, error.reason) == ("wrong_device", "rollback command is for device 'cam-2'")


def test_a_bundle_envelope_type_is_not_a_command() -> None:
    payload = rollback_command("cam-1", NOW).to_json()
    envelope = make_envelope("application/vnd.edge-agent.trust.v1+json", payload, [FLEET])
    error = _rejected(envelope)
    assert error.code == "malformed"
    assert "payloadType must be application/vnd.edge-agent.command+json" in error.reason


def test_an_oversized_envelope_is_refused_before_parsing() -> None:
    error = _rejected(b" " * (16 * 1024 + 1))
    assert error.code == "malformed"
    assert "limit is 16384" in error.reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"command": "rollback", "device": "cam-1", "seq": 1, "expires_at": 9},
            "missing or unknown key 'issued_at'",
        ),
        (
            {
                "command": "rollback",
                "device": "cam-1",
                "seq": 1,
                "issued_at": 1,
                "expires_at": 9,
                "x": 1,
            },
            "missing or unknown key 'x'",
        ),
        (
            {"command": "reboot", "device": "cam-1", "seq": 1, "issued_at": 1, "expires_at": 9},
            "command must be one of",
        ),
        (
            {
                "command": "rollback",
                "device": "cam-1",
                "seq": True,
                "issued_at": 1,
                "expires_at": 9,
            },
            "seq must be",
        ),
        (
            {"command": "rollback", "device": "cam-1", "seq": -1, "issued_at": 1, "expires_at": 9},
            "seq must be",
        ),
        (
            {"command": "desired", "device": "cam-1", "seq": 1, "issued_at": 1, "expires_at": 9},
            "key 'bundle'",
        ),
        (
            {"command": "rollback", "device": "cam-1", "seq": 1, "issued_at": 1},
            "missing or unknown key 'expires_at'",
        ),
        (
            {"command": "rollback", "device": "cam-1", "seq": 1, "issued_at": 9, "expires_at": 9},
            "expires_at must be 1..7776000 s after issued_at (got 0)",
        ),
        (
            {
                "command": "rollback",
                "device": "cam-1",
                "seq": 1,
                "issued_at": 0,
                "expires_at": 10**9,
            },
            "expires_at must be 1..7776000 s after issued_at (got 1000000000)",
        ),
    ],
)
def test_a_signed_but_malformed_payload_is_rejected(body: dict[str, object], message: str) -> None:
    envelope = make_envelope(COMMAND_PAYLOAD_TYPE, json.dumps(body).encode(), [FLEET])
    error = _rejected(envelope)
    assert error.code == "malformed"
    assert message in error.reason


def test_a_payload_with_a_duplicate_key_is_rejected() -> None:
    payload = b'{"command":"rollback","device":"cam-1","device":"cam-1","seq":1,"issued_at":1}'
    error = _rejected(make_envelope(COMMAND_PAYLOAD_TYPE, payload, [FLEET]))
    assert "duplicate JSON key 'device'" in error.reason


def test_an_offer_whose_id_is_not_its_header_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="first 32 hex digits"):
        BundleOffer("f" * 32, OFFER.header_sha256, "digits", 7, 1, 1)


def test_a_rollback_command_carries_no_bundle() -> None:
    with pytest.raises(ValueError, match="a rollback command carries no bundle"):
        Command("rollback", "cam-1", 1, 1, 9, OFFER)


# -- the replay ledger ------------------------------------------------------------------------


def _signed(command: Command) -> SignedCommand:
    return _open(sign_command(command, [FLEET]))


def test_the_first_command_of_a_kind_is_new() -> None:
    assert CommandLedger().is_new(_signed(rollback_command("cam-1", NOW))) is True


def test_a_replayed_rollback_is_rejected_once_a_newer_one_was_accepted() -> None:
    old = _signed(rollback_command("cam-1", NOW))
    new = _signed(rollback_command("cam-1", NOW + 60))
    ledger = CommandLedger().accept(old).accept(new)
    with pytest.raises(BundleRejected) as info:
        ledger.is_new(old)
    assert info.value.code == "replayed"
    assert info.value.reason == (
        "rollback command seq 1800000000250 is not newer than the last accepted command "
        "(seq 1800000060250, any kind)"
    )


def test_the_same_retained_desired_command_delivered_again_is_a_repeat_not_a_replay() -> None:
    signed = _signed(desired_command("cam-1", OFFER, NOW))
    ledger = CommandLedger().accept(signed)
    assert ledger.is_new(signed) is False


def test_the_same_rollback_delivered_again_is_a_replay() -> None:
    signed = _signed(rollback_command("cam-1", NOW))
    with pytest.raises(BundleRejected, match="replayed"):
        CommandLedger().accept(signed).is_new(signed)


def test_the_same_seq_with_other_bytes_is_a_replay() -> None:
    first = _signed(desired_command("cam-1", OFFER, NOW))
    other_offer = BundleOffer.for_header(HEADER + b"2", "digits", 8, 1, 1)
    second = _signed(desired_command("cam-1", other_offer, NOW))
    with pytest.raises(BundleRejected, match="replayed"):
        CommandLedger().accept(first).is_new(second)


def test_the_retained_desired_command_after_a_newer_rollback_is_a_repeat() -> None:
    desired = _signed(desired_command("cam-1", OFFER, NOW))
    rollback = _signed(rollback_command("cam-1", NOW + 60))
    ledger = CommandLedger().accept(desired).accept(rollback)
    assert ledger.is_new(desired) is False


def test_one_order_across_kinds_a_delayed_rollback_older_than_the_desired_is_replayed() -> None:
    rollback = _signed(rollback_command("cam-1", NOW - 100))  # signed first, held back
    desired = _signed(desired_command("cam-1", OFFER, NOW))  # installed v10
    ledger = CommandLedger().accept(desired)
    with pytest.raises(BundleRejected) as info:
        ledger.is_new(rollback)
    assert info.value.code == "replayed"
    assert info.value.reason == (
        "rollback command seq 1799999900250 is not newer than the last accepted command "
        "(seq 1800000000250, any kind)"
    )


def test_a_desired_command_older_than_an_accepted_rollback_is_replayed() -> None:
    ledger = CommandLedger().accept(_signed(rollback_command("cam-1", NOW)))
    with pytest.raises(BundleRejected, match="replayed"):
        ledger.is_new(_signed(desired_command("cam-1", OFFER, NOW - 1)))


# -- freshness --------------------------------------------------------------------------------


def _fresh(command: Command, wall: float, floor: int = 0) -> BundleRejected | None:
    try:
        check_fresh(command, wall, floor)
    except BundleRejected as exc:
        return exc
    return None


def test_a_command_from_1970_is_expired() -> None:
    command = Command("desired", "cam-1", 1, 0, 3600, OFFER)
    error = _fresh(command, NOW)
    assert error is not None
    assert (error.code, error.reason) == (
        "expired",
        "desired command expired at 3600, 1799996400 s ago by this device's clock "
        "(allowed skew 300 s)",
    )


def test_expiry_allows_the_documented_clock_skew() -> None:
    command = rollback_command("cam-1", NOW - ROLLBACK_LIFETIME_S)  # expires at NOW
    assert _fresh(command, NOW + CLOCK_SKEW_S - 1) is None
    error = _fresh(command, NOW + CLOCK_SKEW_S)
    assert error is not None
    assert error.code == "expired"


def test_a_command_issued_in_the_future_beyond_the_skew_is_not_yet_valid() -> None:
    assert _fresh(rollback_command("cam-1", NOW + CLOCK_SKEW_S), NOW) is None
    error = _fresh(rollback_command("cam-1", NOW + CLOCK_SKEW_S + 2), NOW)
    assert error is not None
    assert (error.code, error.reason) == (
        "not_yet_valid",
        "rollback command issued at 1800000302, 302 s ahead of this device's clock "
        "(allowed skew 300 s)",
    )


def test_without_trusted_time_the_newest_issued_at_seen_bounds_the_time() -> None:
    wall = 1000.0  # first boot, no RTC, no NTP
    assert _fresh(rollback_command("cam-1", NOW), wall, floor=0) is None
    assert _fresh(rollback_command("cam-1", NOW + 10 * 86400), wall, floor=int(NOW)) is None
    error = _fresh(rollback_command("cam-1", NOW), wall, floor=int(NOW) + 7200)
    assert error is not None
    assert (error.code, error.reason) == (
        "expired",
        "rollback command expired at 1800003600, before the newest command this device "
        "accepted (issued at 1800007200); its wall clock 1000 is not trusted",
    )


def test_a_clock_far_behind_the_floor_is_not_trusted() -> None:
    floor = int(NOW) + 86400
    command = desired_command("cam-1", OFFER, NOW - 86400)  # valid for 30 days from yesterday
    assert _fresh(command, NOW - 20 * 86400, floor) is None  # the clock says: not yet issued


def test_accepting_raises_the_time_floor_and_the_seq_across_kinds() -> None:
    ledger = CommandLedger().accept(_signed(rollback_command("cam-1", NOW)))
    assert (ledger.seq, ledger.time_floor, ledger.desired) == (
        1_800_000_000_250,
        1_800_000_000,
        None,
    )


def test_a_version_1_ledger_is_migrated_to_one_order() -> None:
    old = (
        b'{"last":{"desired":{"digest":"d","seq":5},"rollback":{"digest":"r","seq":9}},"version":1}'
    )
    ledger = CommandLedger.from_json(old)
    assert ledger == CommandLedger(9, LastCommand(5, "d"), 0)


def test_the_ledger_survives_serialisation() -> None:
    ledger = CommandLedger().accept(_signed(desired_command("cam-1", OFFER, NOW)))
    assert CommandLedger.from_json(ledger.to_json()) == ledger


def test_a_corrupt_ledger_is_refused() -> None:
    with pytest.raises(ValueError, match="not a command kind"):
        CommandLedger.from_json(b'{"version":1,"last":{"reboot":{"seq":1,"digest":"x"}}}')
