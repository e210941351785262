"""Sensor lines to values (pure); windows of readings are :mod:`agent.pipeline.windowing`.

Accepted lines (UTF-8, one reading per line):

* JSON with a ``values`` list: ``{"t": 12.5, "values": [0.1, 0.2]}``
* JSON with named fields, taken in the configured ``fields`` order:
  ``{"t": 1, "ax": 0.1, "ay": 2}``
* CSV numbers: ``0.1,0.2`` (or ``12.5,0.1,0.2`` with ``csv_time_column=True``)

Bad lines raise :class:`LineError` with a ``kind`` for the error counter.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from agent.errors import InputError

DEFAULT_MAX_LINE = 4096


class LineError(InputError):
    """A sensor line is malformed; ``kind`` names the failure for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LineFormat:
    """How to read values out of a line. ``fields`` selects named JSON fields, in order."""

    fields: tuple[str, ...] = ()
    csv_time_column: bool = False
    max_line: int = DEFAULT_MAX_LINE
    expected_values: int | None = None


def parse_line(line: bytes, fmt: LineFormat) -> tuple[tuple[float, ...], float | None]:
    """``(values, device_t)`` of one line, without its newline."""
    if len(line) > fmt.max_line:
        raise LineError("line_too_long", f"line of {len(line)} bytes exceeds {fmt.max_line}")
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise LineError("not_utf8", "line is not UTF-8") from None
    if not text:
        raise LineError("empty_line", "empty line")
    if text.startswith("{"):
        values, t = _parse_json(text, fmt)
    else:
        values, t = _parse_csv(text, fmt)
    if fmt.expected_values is not None and len(values) != fmt.expected_values:
        raise LineError(
            "wrong_width", f"line has {len(values)} values, expected {fmt.expected_values}"
        )
    return values, t


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LineError("bad_value", f"{where} is not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise LineError("bad_value", f"{where} is not finite")
    return number


def _parse_json(text: str, fmt: LineFormat) -> tuple[tuple[float, ...], float | None]:
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise LineError("bad_json", f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise LineError("bad_json", "JSON line must be an object")
    t = None if obj.get("t") is None else _finite(obj["t"], "t")
    if "values" in obj:
        raw = obj["values"]
        if not isinstance(raw, list) or not raw:
            raise LineError("bad_value", "values must be a non-empty list")
        return tuple(_finite(v, f"values[{i}]") for i, v in enumerate(raw)), t
    if not fmt.fields:
        raise LineError("missing_field", "JSON line has no 'values' and no fields are configured")
    missing = [f for f in fmt.fields if f not in obj]
    if missing:
        raise LineError("missing_field", f"JSON line lacks field {missing[0]!r}")
    return tuple(_finite(obj[f], f) for f in fmt.fields), t


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _parse_csv(text: str, fmt: LineFormat) -> tuple[tuple[float, ...], float | None]:
    cells = [c.strip() for c in text.split(",")]
    try:
        numbers = [float(c) for c in cells]
    except ValueError:
        raise LineError("bad_csv", f"CSV line has a non-number: {text[:40]!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise LineError("bad_value", "CSV line has a non-finite number")
    if fmt.csv_time_column:
        if len(numbers) < 2:
            raise LineError("bad_csv", "CSV line needs a time column and at least one value")
        return tuple(numbers[1:]), numbers[0]
    return tuple(numbers), None


class LineSplitter:
    """Splits a byte stream into lines, capping each line's length.

    ``feed`` returns complete lines (without ``\\n``; a trailing ``\\r`` is dropped). A line longer
    than ``max_line`` is discarded up to its newline and counted in ``overlong``.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                self._append(data[start:])
                return lines
            self._append(data[start:newline])
            if not self._discarding:
                lines.append(bytes(self._buffer).rstrip(b"\r"))
            self._buffer.clear()
            self._discarding = False
            start = newline + 1

    def _append(self, chunk: bytes) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(chunk) > self.max_line:
            self._buffer.clear()
            self._discarding = True
            self.overlong += 1
            return
        self._buffer += chunk
