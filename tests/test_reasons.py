"""Reason codes: one enum, the wire values frozen, every code documented, the blame honest."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from agent.bundle.crypto import StreamError
from agent.errors import BundleRejected, DeviceError, EdgeError, InputError, Rejected
from agent.jsonutil import StrictJSONError
from agent.mqtt.topics import TopicError
from agent.reasons import Reason
from agent.schema.canary import CanaryError
from agent.schema.meta import MetadataError
from convert.tflite_info import TFLiteFormatError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for top in ("agent", "fleet", "convert", "demo") for p in (ROOT / top).rglob("*.py")]


def documented_codes() -> dict[str, str]:
    """code -> blame, from the table under "## Reason codes" in docs/mqtt-protocol.md."""
    text = (ROOT / "docs/mqtt-protocol.md").read_text()
    section = text.split("## Reason codes\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| ([a-z]+) \|", section, re.M))


def test_wire_values_are_unchanged() -> None:
    assert sorted(r.value for r in Reason) == sorted(
        [
            "malformed",
            "too_large",
            "stream_truncated",
            "digest_mismatch",
            "signature_invalid",
            "threshold_not_met",
            "not_a_recipient",
            "wrong_hardware",
            "rollback",
            "already_installed",
            "expired",
            "not_yet_valid",
            "clock_behind_floor",
            "wrong_device",
            "replayed",
            "header_mismatch",
            "offer_mismatch",
            "canary_missing",
            "canary_malformed",
            "canary_load",
            "canary_mismatch",
            "canary_latency",
            "canary_timeout",
            "canary_crash",
            "no_space",
            "io_error",
            "load_failed",
            "no_previous_slot",
            "root_expired",
            "deadline",
            "too_slow",
            "transport",
            "nan_output",
            "errors",
            "latency",
            "command",
            "error",
            "bad_input",
            "bad_config",
            "backend",
            "outbox",
            "withdrawn",
        ]
    )


def test_a_reason_is_its_wire_string() -> None:
    assert Reason.NO_SPACE == "no_space"
    assert f"rejected:{Reason.CANARY_MISMATCH}" == "rejected:canary_mismatch"
    assert Reason("load_failed") is Reason.LOAD_FAILED


def test_docs_list_every_code_with_its_blame() -> None:
    assert documented_codes() == {r.value: r.blame for r in Reason}


def test_device_failures_are_not_blamed_on_the_bundle() -> None:
    assert {r for r in Reason if r.blame == "device"} == {
        Reason.NO_SPACE,
        Reason.IO_ERROR,
        Reason.LOAD_FAILED,
        Reason.NO_PREVIOUS_SLOT,
        Reason.ROOT_EXPIRED,
    }
    device = DeviceError(Reason.NO_SPACE, "12 bytes free")
    assert isinstance(device, Rejected)
    assert not isinstance(device, BundleRejected)
    assert (device.code, device.reason, str(device)) == (
        "no_space",
        "12 bytes free",
        "no_space: 12 bytes free",
    )


def raised_codes() -> list[tuple[str, str, str]]:
    """(exception class, Reason member, where) for every ``BundleRejected(Reason.X, ...)`` and
    ``DeviceError(Reason.X, ...)`` in the source."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("BundleRejected", "DeviceError")
                and node.args
            ):
                arg = node.args[0]
                member = ast.unparse(arg).removeprefix("Reason.")
                found.append((node.func.id, member, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_raise_carries_a_reason_of_its_blame() -> None:
    found = raised_codes()
    assert len(found) > 40
    wrong = [
        (cls, member, where)
        for cls, member, where in found
        if member in Reason.__members__
        and Reason[member].blame != ("device" if cls == "DeviceError" else "bundle")
    ]
    # A code computed at run time (the canary's verdict, a stream error) is checked by its tests.
    computed = [
        (cls, member, where) for cls, member, where in found if member not in Reason.__members__
    ]
    assert wrong == []
    assert [m for _, m, _ in computed] == ["code", "report.reason"]


@pytest.mark.parametrize(
    "error",
    [MetadataError, CanaryError, StrictJSONError, TopicError, StreamError, TFLiteFormatError],
)
def test_parser_errors_are_input_errors_and_still_value_errors(error: type[Exception]) -> None:
    assert issubclass(error, InputError)
    assert issubclass(error, EdgeError)
    assert issubclass(error, ValueError)
    assert str(error("the field 'x' is missing")) == "the field 'x' is missing"


def test_no_bare_value_error_subclass_is_left() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and [ast.unparse(base) for base in node.bases] == ["ValueError"]
    ]
    assert bare == []
