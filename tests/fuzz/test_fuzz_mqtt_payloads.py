"""Fuzzing every MQTT payload parser: what the agent subscribes to (sensor readings, signed
commands) and what edge-fleet reads from devices (results, status, availability). Only the
documented error types come out, quickly, in bounded memory."""

from __future__ import annotations

import json
import math
import queue

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.bundle import TrustRoot
from agent.bundle.envelope import make_envelope
from agent.errors import BundleRejected
from agent.mqtt.messages import (
    MessageError,
    ModelRef,
    ResultMessage,
    StatusMessage,
    UpdateStatus,
    parse_availability,
)
from agent.sources.lines import LineFormat
from agent.sources.sensor import QueueReadingSource
from agent.update.commands import (
    COMMAND_PAYLOAD_TYPE,
    BundleOffer,
    desired_command,
    open_command,
    rollback_command,
    sign_command,
)
from tests.support.fuzz import check_parser, fuzz_settings, json_bytes, mutated, outside_bytes

FLEET = Ed25519PrivateKey.generate()
FLEET_ROOT = TrustRoot.from_keys([FLEET.public_key()])
OFFER = BundleOffer("ab" * 16, "ab" * 32, "digits", 7, 5_000_000, 40)
DESIRED = desired_command("pi-1", OFFER, 1_800_000_000.0)
SIGNED = [sign_command(DESIRED, [FLEET]), sign_command(rollback_command("pi-1", 1.8e9), [FLEET])]

RESULT = ResultMessage(
    5, 1_800_000_000.0, ModelRef("digits", "3", "ab" * 32), 1.5, {"top": [{"label": "7"}]}
).to_json()
STATUS = StatusMessage(
    ts=1_800_000_000.0,
    state="running",
    fps=29.5,
    errors={"bad_frame": 1},
    groups=("lab",),
    update=UpdateStatus(state="downloading", bundle=OFFER.id, blocks_held=3, blocks=40),
).to_json()

SENSOR_LINES = [
    b'{"t": 1.5, "x": 0.25, "y": -3}\n{"x": 1, "y": 2}',
    b"1.5,2.5,3.5\n4,5,6\r\n",
    b"12.0,0.1,0.2\n",
]


def _open(data: bytes) -> object:
    return open_command(data, FLEET_ROOT, "pi-1")


@fuzz_settings
@given(outside_bytes(SIGNED) | json_bytes(json.loads(SIGNED[0])))
def test_command_envelopes_only_reject(data: bytes) -> None:
    check_parser(_open, data, (BundleRejected,))


@fuzz_settings
@given(json_bytes(DESIRED.to_obj()) | mutated([DESIRED.to_json()]))
def test_signed_but_malformed_command_payloads_only_reject(payload: bytes) -> None:
    """The fleet key signed it, so the payload parser itself is what is exercised."""
    envelope = make_envelope(COMMAND_PAYLOAD_TYPE, payload, [FLEET])
    check_parser(_open, envelope, (BundleRejected,))


@fuzz_settings
@given(
    st.sampled_from(
        [LineFormat(), LineFormat(fields=("x", "y")), LineFormat(csv_time_column=True)]
    ),
    st.lists(outside_bytes(SENSOR_LINES, max_size=512), min_size=1, max_size=4),
)
def test_sensor_payloads_never_raise_and_yield_only_finite_readings(
    fmt: LineFormat, payloads: list[bytes]
) -> None:
    inbox: queue.Queue[bytes] = queue.Queue()
    source = QueueReadingSource(inbox, fmt=fmt, max_payload=1024)
    for payload in payloads:
        inbox.put(payload)
    readings = []

    def drain(_: bytes) -> None:
        while (reading := source.get(timeout=0)) is not None:
            readings.append(reading)

    check_parser(drain, b"", ())
    assert all(math.isfinite(v) for r in readings for v in r.values)
    if fmt.fields:
        assert all(len(r.values) == len(fmt.fields) for r in readings)


@fuzz_settings
@given(outside_bytes([RESULT]) | json_bytes(json.loads(RESULT)))
def test_result_payloads_only_raise_message_error(data: bytes) -> None:
    check_parser(ResultMessage.from_json, data, (MessageError,))


@fuzz_settings
@given(outside_bytes([STATUS]) | json_bytes(json.loads(STATUS)))
def test_status_payloads_only_raise_message_error(data: bytes) -> None:
    check_parser(StatusMessage.from_json, data, (MessageError,))


@fuzz_settings
@given(outside_bytes([b"online", b"offline"], max_size=64))
def test_availability_payloads_only_raise_message_error(data: bytes) -> None:
    check_parser(parse_availability, data, (MessageError,))
