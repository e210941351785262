"""``edge-fleet status`` on device reports: verified, missing, unsigned, forged, replayed older,
disagreeing with the status (fleet/reports.py, pure)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.mqtt.messages import ModelRef
from agent.update.report import Report, sign_report
from fleet.registry import Registry, parse_registry
from fleet.reports import check_report, load_seen, save_seen

KEY = Ed25519PrivateKey.generate()
SHA = "c" * 64
REPORT = Report("cam-01", 7, 1_800_000_000, "b" * 64, "digits", 3, SHA, None, 2)
MODEL = ModelRef("digits", "3", SHA)


def _check(envelope: bytes | None, seen: int | None = None, model: ModelRef = MODEL) -> str:
    return check_report("cam-01", envelope, KEY.public_key(), model, seen).label()


def test_a_verified_report_shows_its_version_and_counter() -> None:
    check = check_report("cam-01", sign_report(REPORT, KEY), KEY.public_key(), MODEL, 7)
    assert (check.state, check.flagged, check.label()) == ("verified", False, "verified v3 #7")


def test_missing_unsigned_and_forged_reports_are_flagged() -> None:
    assert _check(None) == "missing: no retained report"
    assert _check(sign_report(REPORT, None)) == "unsigned: no keys.report_key"
    forged = _check(sign_report(REPORT, Ed25519PrivateKey.generate()))
    assert forged.startswith("invalid: signature_invalid: ")
    assert "trusted report key" in forged


def test_a_replayed_older_report_is_flagged() -> None:
    assert _check(sign_report(REPORT, KEY), seen=8) == (
        "older: counter 7 is below 8 already verified (replayed)"
    )


def test_a_report_that_disagrees_with_the_status_is_flagged() -> None:
    label = _check(sign_report(REPORT, KEY), model=ModelRef("digits", "4", "d" * 64))
    assert (
        label
        == "disagrees: report says digits v3 (cccccccccccc), status says digits v4 (dddddddddddd)"
    )


def test_a_device_without_a_registered_key_is_flagged() -> None:
    check = check_report("cam-01", sign_report(REPORT, KEY), None, MODEL, None)
    assert (check.state, check.flagged) == ("no_key", True)


def test_the_registry_keeps_report_keys_and_the_seen_counters_persist(tmp_path: Path) -> None:
    registry = (
        Registry().with_devices({"cam-02": ["lab"]}).with_report_key("cam-01", KEY.public_key())
    )
    again = parse_registry(registry.to_json(), "devices.json")
    assert again == registry
    key = again.report_key("cam-01")
    assert key is not None
    assert check_report("cam-01", sign_report(REPORT, KEY), key, MODEL, None).state == "verified"
    assert again.report_key("cam-02") is None
    assert again.without(["cam-01"]).report_keys == {}
    save_seen(tmp_path / "reports.json", {"cam-01": 7})
    assert load_seen(tmp_path / "reports.json") == {"cam-01": 7}
    assert load_seen(tmp_path / "none.json") == {}
