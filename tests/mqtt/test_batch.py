"""Result batches: one or many results per message on the results topic, read by one helper."""

from __future__ import annotations

import pytest

from agent.mqtt.batch import MAX_BATCH_BYTES, encode_batch, results_in
from agent.mqtt.messages import MessageError, ModelRef, ResultMessage

MODEL = ModelRef("digits", "1", "0" * 64)


def _result(seq: int, **outputs: object) -> ResultMessage:
    return ResultMessage(seq, 1.5, MODEL, 2.0, {"class": seq, **outputs})


def test_a_single_result_message_reads_as_one_result() -> None:
    assert results_in(_result(7).to_json()) == [_result(7)]


def test_a_batch_reads_as_its_results_in_order() -> None:
    payload = encode_batch([_result(seq).to_json() for seq in (3, 4, 5)])
    assert payload.startswith(b'{"v":1,"batch":[{')
    assert results_in(payload) == [_result(3), _result(4), _result(5)]


def test_an_empty_or_oversized_batch_is_refused_when_built() -> None:
    with pytest.raises(MessageError, match="at least one"):
        encode_batch([])
    big = _result(1, blob="x" * 70_000).to_json()
    with pytest.raises(MessageError, match=f"exceeds .* or {MAX_BATCH_BYTES} bytes"):
        encode_batch([big, big])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"v":1,"batch":[]}', "list of 1 to"),
        (b'{"v":1,"batch":{}}', "list of 1 to"),
        (b'{"v":2,"batch":[]}', "unsupported schema version 2"),
        (b'{"v":1,"batch":[1]}', r"batch\[0\] must be a JSON object"),
        (b'{"v":1,"batch":[{"v":2}]}', r"batch\[0\]: unsupported schema version"),
        (b'{"v":1,"batch":[{"v":1,"seq":1}]}', "missing key"),
        (b'{"v":1,"batch":[],"extra":1}', "only the keys v and batch"),
        (b"[1, 2]", "must be a JSON object"),
        (b"not json", "result"),
    ],
)
def test_a_bad_batch_is_a_message_error_naming_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        results_in(payload)
