"""Result batches: many results in one MQTT message on the results topic (pure).

A results message is either one result object (``{"v": 1, "seq": ...}``, see
:class:`~agent.mqtt.messages.ResultMessage`) or a batch object ``{"v": 1, "batch": [result,
...]}`` whose list holds complete result objects in sequence order. The agent sends a batch only
when several results are waiting (a backlog); a lone result goes out alone, so latency comes
first. A batch is at most :data:`MAX_BATCH_BYTES` (AWS IoT's 128 KiB message limit) and
:data:`MAX_BATCH_RESULTS` results. Consumers read both forms with :func:`results_in`.

:func:`encode_batch` joins the stored result payloads byte for byte (each is already canonical
JSON), so batching costs no re-serialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.jsonutil import StrictJSONError, loads_strict
from agent.mqtt.fields import MessageError, _obj
from agent.mqtt.messages import MAX_RESULT_BYTES, SCHEMA_VERSION, ResultMessage

MAX_BATCH_BYTES = 128 * 1024
MAX_BATCH_RESULTS = 1024
_HEAD = b'{"v":%d,"batch":[' % SCHEMA_VERSION
_TAIL = b"]}"
#: Bytes a batch adds besides its results and the commas between them.
BATCH_OVERHEAD = len(_HEAD) + len(_TAIL)


def encode_batch(payloads: Sequence[bytes]) -> bytes:
    """One batch message holding ``payloads`` (result JSON objects) in the order given."""
    if not payloads:
        raise MessageError("a result batch needs at least one result")
    data = _HEAD + b",".join(payloads) + _TAIL
    if len(data) > MAX_BATCH_BYTES or len(payloads) > MAX_BATCH_RESULTS:
        raise MessageError(
            f"result batch of {len(payloads)} result(s), {len(data)} bytes, exceeds "
            f"{MAX_BATCH_RESULTS} results or {MAX_BATCH_BYTES} bytes"
        )
    return data


def batch_size(sizes: Sequence[int]) -> int:
    """Bytes of the batch message holding results of these payload sizes."""
    return BATCH_OVERHEAD + sum(sizes) + max(0, len(sizes) - 1)


def results_in(payload: bytes) -> list[ResultMessage]:
    """Every result a results-topic message carries: one for a single result, all of a batch.

    Strict like :meth:`ResultMessage.from_json`: a bad element rejects the whole message
    (:class:`MessageError`), since a batch is written by one agent in one piece."""
    if not isinstance(payload, bytes | bytearray):
        raise MessageError("result payload must be bytes")
    try:
        obj = _obj(loads_strict(bytes(payload), max(MAX_RESULT_BYTES, MAX_BATCH_BYTES)), "result")
    except StrictJSONError as exc:
        raise MessageError(f"result: {exc}") from None
    _check_version(obj, "result")
    if "batch" not in obj:
        return [ResultMessage.from_obj(obj)]
    if set(obj) != {"v", "batch"}:
        raise MessageError("result batch must hold only the keys v and batch")
    items = obj["batch"]
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH_RESULTS:
        raise MessageError(f"result batch must be a list of 1 to {MAX_BATCH_RESULTS} results")
    results = []
    for index, item in enumerate(items):
        where = f"result batch[{index}]"
        element = _obj(item, where)
        _check_version(element, where)
        results.append(ResultMessage.from_obj(element))
    return results


def _check_version(obj: dict[str, object], where: str) -> None:
    version = obj.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise MessageError(f"{where}: unsupported schema version {version!r}")
