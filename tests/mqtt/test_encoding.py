"""A result's hand-built JSON is byte for byte what the general canonical encoder writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.mqtt.messages import ModelRef, Origin, ResultMessage


def canonical(message: ResultMessage) -> bytes:
    """The reference: the standard library's own canonical dump of the message object."""
    return json.dumps(
        message.to_obj(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")  # fmt: skip


_text = st.text(max_size=12)  # any code point but lone surrogates: quotes, controls, non-ASCII
_number = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
_body = st.recursive(
    st.none() | st.booleans() | _number | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10,
)
_origin = st.builds(
    Origin,
    source=_text,
    seq=st.none() | st.integers(0, 2**63),
    captured=st.none() | _number,
    file=st.none() | _text,
)
_model = st.builds(
    ModelRef, name=_text, version=_text, sha256=st.text("0123456789abcdef", min_size=64,
                                                        max_size=64),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq=st.integers(0, 2**64),
    ts=_number,
    model=_model,
    latency_ms=_number,
    outputs=st.dictionaries(_text, _body, max_size=4),
    historical=st.booleans(),
    origin=st.none() | _origin,
)
def test_result_json_equals_the_canonical_dump_of_its_object(  # noqa: PLR0917
    seq: int,
    ts: float,
    model: ModelRef,
    latency_ms: float,
    outputs: dict[str, Any],
    historical: bool,
    origin: Origin | None,
) -> None:
    message = ResultMessage(seq, ts, model, latency_ms, outputs, historical, origin)
    assert message.to_json() == canonical(message)


def test_captured_time_shared_with_ts_is_written_in_both_places() -> None:
    ts = 1764620000.123456
    message = ResultMessage(3, ts, ModelRef("m", "1", "0" * 64), 0.5, {"classes": []},
                            origin=Origin("lines:stdin", 9, ts))  # fmt: skip
    assert message.to_json() == canonical(message)
    assert json.loads(message.to_json())["origin"]["captured"] == ts


@pytest.mark.parametrize(
    "fields",
    [
        {"ts": float("nan")},
        {"latency_ms": float("inf")},
        {"origin": Origin("s", captured=float("-inf"))},
        {"outputs": {"x": float("nan")}},
    ],
)
def test_a_non_finite_number_is_refused_as_the_canonical_encoder_refuses_it(
    fields: dict[str, Any],
) -> None:
    values: dict[str, Any] = {"seq": 1, "ts": 2.0, "model": ModelRef("m", "1", "0" * 64),
                              "latency_ms": 0.1, "outputs": {}} | fields  # fmt: skip
    message = ResultMessage(**values)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        message.to_json()


def test_fields_of_unusual_types_fall_back_to_the_general_encoder() -> None:
    origin = Origin("s", seq=False, captured=0.0)  # a bool seq is written as JSON false
    message = ResultMessage(True, -0.0, ModelRef("m", "1", "0" * 64), 0, {}, origin=origin)
    assert message.to_json() == canonical(message)
