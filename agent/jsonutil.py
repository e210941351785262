"""Strict JSON for bytes that came from outside: size cap first, duplicate keys rejected."""

from __future__ import annotations

import json
import math
from typing import Any

from agent.errors import InputError


class StrictJSONError(InputError, ValueError):
    """The bytes are not acceptable JSON (too large, malformed, duplicate keys, NaN)."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise StrictJSONError(f"non-finite number {name} is not allowed")


def loads_strict(data: bytes | str, max_bytes: int) -> Any:
    """Parse JSON after checking its size; reject duplicate keys and NaN/Infinity."""
    if len(data) > max_bytes:
        raise StrictJSONError(f"JSON document is {len(data)} bytes, limit is {max_bytes}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except UnicodeDecodeError as exc:
        raise StrictJSONError(f"JSON is not valid UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"malformed JSON: {exc.msg} at offset {exc.pos}") from None
    except RecursionError:
        raise StrictJSONError("JSON nests too deeply") from None


def dumps_canonical(value: Any) -> bytes:
    """Deterministic compact UTF-8 JSON (sorted keys). Used for what we sign and hash."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def require_finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise StrictJSONError(f"{what} must be a finite number")
    return value
