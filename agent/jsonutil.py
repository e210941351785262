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


def check_depth(data: bytes, max_depth: int) -> None:
    """Refuse JSON that nests arrays/objects deeper than ``max_depth``, before parsing it.

    A scan over the bytes (brackets inside strings do not count), so a small hostile message
    cannot make the parser recurse; linear in the size, which the caller has capped already.
    """
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise StrictJSONError(f"JSON nests deeper than {max_depth} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1


def loads_strict(data: bytes | str, max_bytes: int, max_depth: int | None = None) -> Any:
    """Parse JSON after checking its size (and, given ``max_depth``, its nesting); reject
    duplicate keys and NaN/Infinity."""
    if len(data) > max_bytes:
        raise StrictJSONError(f"JSON document is {len(data)} bytes, limit is {max_bytes}")
    if max_depth is not None:
        check_depth(data.encode("utf-8") if isinstance(data, str) else data, max_depth)
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


#: Built once: ``json.dumps`` with these options builds a new encoder per call, which costs
#: more than encoding a small result body. ``encode`` keeps no state between calls.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def dumps_canonical(value: Any) -> bytes:
    """Deterministic compact UTF-8 JSON (sorted keys). Used for what we sign and hash.

    The same bytes as ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False).encode()``, from one shared encoder."""
    return _CANONICAL.encode(value).encode("utf-8")


def require_finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise StrictJSONError(f"{what} must be a finite number")
    return value
