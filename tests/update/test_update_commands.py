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
    COMMAND_PAYLOAD_TYPE,
    BundleOffer,
    Command,
    CommandLedger,
    SignedCommand,
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
            {"command": "rollback", "device": "cam-1", "seq": 1},
            "missing or unknown key 'issued_at'",
        ),
        (
            {"command": "rollback", "device": "cam-1", "seq": 1, "issued_at": 1, "x": 1},
            "missing or unknown key 'x'",
        ),
        (
            {"command": "reboot", "device": "cam-1", "seq": 1, "issued_at": 1},
            "command must be one of",
        ),
        ({"command": "rollback", "device": "cam-1", "seq": True, "issued_at": 1}, "seq must be"),
        ({"command": "rollback", "device": "cam-1", "seq": -1, "issued_at": 1}, "seq must be"),
        ({"command": "desired", "device": "cam-1", "seq": 1, "issued_at": 1}, "key 'bundle'"),
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
        Command("rollback", "cam-1", 1, 1, OFFER)


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
        "rollback command seq 1800000000250 is not newer than the last accepted seq 1800000060250"
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


def test_seq_is_tracked_per_command_kind() -> None:
    desired = _signed(desired_command("cam-1", OFFER, NOW))
    rollback = _signed(rollback_command("cam-1", NOW + 60))
    ledger = CommandLedger().accept(desired).accept(rollback)
    assert ledger.is_new(desired) is False  # the retained desired command after a rollback


def test_the_ledger_survives_serialisation() -> None:
    ledger = CommandLedger().accept(_signed(desired_command("cam-1", OFFER, NOW)))
    assert CommandLedger.from_json(ledger.to_json()) == ledger


def test_a_corrupt_ledger_is_refused() -> None:
    with pytest.raises(ValueError, match="not a command kind"):
        CommandLedger.from_json(b'{"version":1,"last":{"reboot":{"seq":1,"digest":"x"}}}')
