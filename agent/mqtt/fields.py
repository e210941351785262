"""Field readers for the MQTT message schemas (pure): each returns the typed value or raises
:class:`MessageError` naming the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agent.errors import InputError

MAX_TEXT_CHARS = 1024


class MessageError(InputError):
    """An MQTT payload is not a valid message of the expected type."""


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MessageError(f"{where} must be a JSON object")
    return value


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise MessageError(f"{where} has unknown key(s): {', '.join(unknown)}")
    missing = sorted(allowed - set(obj))
    if missing:
        raise MessageError(f"{where} is missing key(s): {', '.join(missing)}")


def _only_with_optional(
    obj: Mapping[str, Any], required: set[str], optional: set[str], where: str
) -> None:
    _only({k: v for k, v in obj.items() if k not in optional}, required, where)


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MessageError(f"{where} must be an integer")
    if value < minimum or value > 2**63 - 1:
        raise MessageError(f"{where} is out of range")
    return value


def _num(value: Any, where: str, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError(f"{where} must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise MessageError(f"{where} is out of range") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise MessageError(f"{where} is out of range")
    return number


def _opt_num(value: Any, where: str, minimum: float | None = 0.0) -> float | None:
    return None if value is None else _num(value, where, minimum)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise MessageError(f"{where} must be true or false")
    return value


def _str(value: Any, where: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{where} must be a string")
    if len(value) > max_chars:
        raise MessageError(f"{where} is longer than {max_chars} characters")
    return value
