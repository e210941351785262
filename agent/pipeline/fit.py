"""Keep a result body under the result size limit (pure): cut, flag, never fail.

:func:`fit_outputs` measures the canonical JSON of a body and, while it is too large, halves
the longest list in it (raw tensor values, detections, landmark points, segments) and finally
drops the compact mask. Cut raw tensors get ``truncated: true``; the body gets
``"truncated": true`` so a consumer knows it is not the whole answer.
"""

from __future__ import annotations

import copy
from typing import Any

from agent.jsonutil import dumps_canonical

#: Bytes kept free for the rest of the result message (model, origin, timestamps).
ENVELOPE_BYTES = 4096
#: A dequantized float takes at most this many characters in the canonical JSON.
MAX_FLOAT_CHARS = 25


def size_of(body: dict[str, Any]) -> int:
    return len(dumps_canonical(body))


def fit_outputs(body: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], bool]:
    """``(body, truncated)``: ``body`` itself when it fits, else a reduced deep copy."""
    if size_of(body) <= max_bytes:
        return body, False
    body = copy.deepcopy(body)
    body["truncated"] = True
    for _ in range(64):
        if size_of(body) <= max_bytes:
            return body, True
        found = _longest_list(body)
        if found is None or len(found[0]) <= 1:
            if not _drop_mask(body):
                break
            continue
        items, owner = found
        del items[max(1, len(items) // 2) :]
        if owner is not None and "truncated" in owner:
            owner["truncated"] = True
    return {"truncated": True, "dropped": "result over the size limit"}, True


def _longest_list(
    value: Any, owner: dict[str, Any] | None = None
) -> tuple[list[Any], dict[str, Any] | None] | None:
    best: tuple[list[Any], dict[str, Any] | None] | None = None
    if isinstance(value, list):
        best = (value, owner)
        children = value
        for child in children:
            found = _longest_list(child, owner)
            if found is not None and len(found[0]) > len(best[0]):
                best = found
    elif isinstance(value, dict):
        for child in value.values():
            found = _longest_list(child, value)
            if found is not None and (best is None or len(found[0]) > len(best[0])):
                best = found
    return best


def _drop_mask(body: dict[str, Any]) -> bool:
    if "mask" in body:
        del body["mask"]
        return True
    return False
