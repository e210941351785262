"""Device-signed reports: signed with the device's report key, verified with the registered
public key before parsing; tampering, another key, another device are refused."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import b64, unb64
from agent.errors import BundleRejected
from agent.update.report import Report, open_report, read_unverified, sign_report

KEY = Ed25519PrivateKey.generate()
REPORT = Report("cam-01", 7, 1_800_000_000, "b" * 64, "digits", 3, "c" * 64, "a" * 64, 2)


def test_a_signed_report_verifies_with_the_device_key_and_round_trips() -> None:
    assert open_report(sign_report(REPORT, KEY), KEY.public_key(), "cam-01") == REPORT


def test_a_tampered_report_is_refused() -> None:
    envelope = json.loads(sign_report(REPORT, KEY))
    payload = json.loads(unb64(envelope["payload"]))
    payload["release"] = 9
    envelope["payload"] = b64(json.dumps(payload, sort_keys=True).encode())
    with pytest.raises(BundleRejected) as info:
        open_report(json.dumps(envelope).encode(), KEY.public_key(), "cam-01")
    assert info.value.code == "signature_invalid"


def test_a_report_signed_with_another_key_is_refused() -> None:
    with pytest.raises(BundleRejected) as info:
        open_report(sign_report(REPORT, Ed25519PrivateKey.generate()), KEY.public_key(), "cam-01")
    assert info.value.code == "signature_invalid"
    assert "trusted report key" in info.value.reason


def test_an_unsigned_report_does_not_verify_but_can_be_read() -> None:
    unsigned = sign_report(REPORT, None)
    with pytest.raises(BundleRejected) as info:
        open_report(unsigned, KEY.public_key(), "cam-01")
    assert info.value.code == "signature_invalid"
    assert read_unverified(unsigned) == REPORT


def test_a_valid_report_of_another_device_is_refused() -> None:
    with pytest.raises(BundleRejected) as info:
        open_report(sign_report(REPORT, KEY), KEY.public_key(), "cam-02")
    assert (info.value.code, info.value.reason) == (
        "wrong_device",
        "report of device 'cam-01', expected 'cam-02'",
    )


def test_a_report_with_unknown_fields_is_malformed() -> None:
    from agent.bundle.envelope import make_envelope
    from agent.update.report import REPORT_PAYLOAD_TYPE

    payload = REPORT.payload()[:-1] + b',"zzz":1}'
    with pytest.raises(BundleRejected) as info:
        open_report(make_envelope(REPORT_PAYLOAD_TYPE, payload, [KEY]), KEY.public_key(), "cam-01")
    assert info.value.code == "malformed"
