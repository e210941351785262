"""Result and status message schemas: round trip, strict parsing, fuzzing."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.mqtt.messages import (
    MAX_RESULT_BYTES,
    LastError,
    MessageError,
    ModelRef,
    OutboxStats,
    ResultMessage,
    StatusMessage,
    UpdateStatus,
    mark_historical,
    parse_availability,
)

MODEL = ModelRef("digits", "3", "ab" * 32)


def _result(**overrides: object) -> ResultMessage:
    fields: dict[str, object] = {
        "seq": 41,
        "ts": 1700000000.25,
        "model": MODEL,
        "latency_ms": 1.5,
        "outputs": {"top": [{"label": "7", "score": 0.97}]},
        "historical": False,
    }
    fields.update(overrides)
    return ResultMessage(**fields)  # type: ignore[arg-type]


def test_result_round_trips_through_canonical_json() -> None:
    message = _result()
    data = message.to_json()
    assert data.startswith(b'{"historical":false,"latency_ms":1.5,"model":')
    assert ResultMessage.from_json(data) == message


def test_mark_historical_changes_only_the_flag() -> None:
    original = _result()
    replayed = ResultMessage.from_json(mark_historical(original.to_json()))
    assert replayed.historical is True
    assert replayed.seq == 41
    assert replayed.outputs == original.outputs


def _obj(message: ResultMessage) -> dict[str, object]:
    obj: dict[str, object] = json.loads(message.to_json())
    return obj


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"seq": -1}, "result.seq is out of range"),
        ({"seq": True}, "result.seq must be an integer"),
        ({"seq": 1.0}, "result.seq must be an integer"),
        ({"historical": 1}, "result.historical must be true or false"),
        ({"ts": "now"}, "result.ts must be a number"),
        ({"ts": 1e400}, "result.ts is out of range"),
        ({"outputs": []}, "result.outputs must be a JSON object"),
        ({"extra": 1}, "result has unknown key(s): extra"),
        ({"v": 2}, "unsupported schema version 2"),
        ({"model": {"name": "m", "version": "1", "sha256": "XYZ"}}, "model.sha256"),
    ],
)
def test_result_from_json_rejects_bad_fields_naming_them(
    change: dict[str, object], error: str
) -> None:
    obj = _obj(_result())
    obj.update(change)
    data = json.dumps(obj).replace("Infinity", "1e400").encode()
    with pytest.raises(MessageError, match=error.replace("(", r"\(").replace(")", r"\)")):
        ResultMessage.from_json(data)


def test_result_from_json_rejects_missing_fields() -> None:
    obj = _obj(_result())
    del obj["seq"]
    with pytest.raises(MessageError, match="missing key"):
        ResultMessage.from_json(json.dumps(obj).encode())


def test_result_from_json_rejects_duplicate_keys_and_oversize() -> None:
    with pytest.raises(MessageError, match="duplicate JSON key 'seq'"):
        ResultMessage.from_json(b'{"seq":1,"seq":2}')
    with pytest.raises(MessageError, match="limit is 262144"):
        ResultMessage.from_json(b" " * (MAX_RESULT_BYTES + 1))


def test_result_larger_than_the_cap_is_not_serialised() -> None:
    with pytest.raises(MessageError, match="limit 262144"):
        _result(outputs={"raw": "x" * MAX_RESULT_BYTES}).to_json()


def test_status_round_trips_with_every_field() -> None:
    status = StatusMessage(
        ts=1700000000.0,
        state="degraded",
        fps=29.5,
        latency_p50_ms=3.25,
        latency_p95_ms=4.5,
        frames_dropped=12,
        queue_depth=1,
        backend="litert",
        accelerator="cpu",
        degraded=True,
        model=MODEL,
        rss_bytes=80_000_000,
        cpu_temp_c=61.5,
        errors={"bad_frame": 3},
        outbox=OutboxStats(depth=5, bytes=900, dropped=2, write_errors=0),
        last_error=LastError("edgetpu_missing", "libedgetpu.so.1 not found"),
        groups=("lab", "north"),
        update=UpdateStatus(
            state="downloading",
            bundle="0123456789abcdef0123456789abcdef",
            name="digits",
            counter=7,
            blocks_held=3,
            blocks=10,
            bytes_per_s=1.5e6,
            requested=10,
            bad_blocks=1,
        ),
    )
    assert StatusMessage.from_json(status.to_json()) == status


def test_status_from_an_agent_without_updates_parses_with_no_groups_and_no_update() -> None:
    old = json.loads(StatusMessage(ts=1.0, state="running").to_json())
    del old["groups"], old["update"]
    parsed = StatusMessage.from_json(json.dumps(old).encode())
    assert (parsed.groups, parsed.update) == ((), None)


def test_update_status_labels_are_the_states_the_issue_names() -> None:
    assert UpdateStatus("downloading", blocks_held=3, blocks=10).label == "downloading (3 of 10)"
    assert UpdateStatus("rejected", reason="canary_mismatch").label == "rejected:canary_mismatch"
    assert UpdateStatus("rolled_back", reason="nan_output").label == "rolled_back:nan_output"
    assert UpdateStatus("installed").label == "installed"


def test_update_status_rejects_an_unknown_state_and_unknown_keys() -> None:
    with pytest.raises(MessageError, match=r"status\.update\.state must be one of"):
        UpdateStatus("sleeping")
    obj = {**UpdateStatus().to_obj(), "extra": 1}
    with pytest.raises(MessageError, match="unknown key"):
        UpdateStatus.from_obj(obj)


def test_minimal_status_round_trips_with_nulls() -> None:
    status = StatusMessage(ts=1.0, state="starting")
    assert json.loads(status.to_json())["model"] is None
    assert StatusMessage.from_json(status.to_json()) == status


def test_status_rejects_an_unknown_state() -> None:
    with pytest.raises(MessageError, match=r"status\.state must be one of"):
        StatusMessage(ts=1.0, state="sleepy")


def test_availability_payloads_are_exactly_online_and_offline() -> None:
    assert parse_availability(b"online") is True
    assert parse_availability(b"offline") is False
    with pytest.raises(MessageError):
        parse_availability(b"Online")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_from_json_on_random_bytes_raises_only_message_error(data: bytes) -> None:
    for parse in (ResultMessage.from_json, StatusMessage.from_json):
        with contextlib.suppress(MessageError):
            parse(data)


# A busy CI machine makes generation slow; the property itself is cheap.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(_obj(_result()))), _json, max_size=8))
def test_from_json_on_random_objects_raises_only_message_error(obj: dict[str, object]) -> None:
    base = _obj(_result())
    base.update(obj)
    data = json.dumps(base).encode()
    for parse in (ResultMessage.from_json, StatusMessage.from_json):
        with contextlib.suppress(MessageError):
            parse(data)


def test_result_origin_round_trips_and_results_without_one_still_parse() -> None:
    from dataclasses import replace

    from agent.mqtt.messages import Origin

    message = replace(_result(), origin=Origin("imagedir:/in", 7, 12.5, "a.png"))
    assert ResultMessage.from_json(message.to_json()) == message
    assert json.loads(message.to_json())["origin"] == {
        "source": "imagedir:/in", "seq": 7, "captured": 12.5, "file": "a.png",
    }  # fmt: skip
    old = _result()
    assert "origin" not in json.loads(old.to_json())
    assert ResultMessage.from_json(old.to_json()).origin is None
