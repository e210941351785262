"""The fleet as seen from retained availability and status topics. Pure.

:class:`FleetView` takes ``(topic, payload, received_at)`` messages in any order and keeps the
latest availability and status per device; a payload that is not a valid status is kept as the
device's ``problem`` instead of crashing the view (outside bytes can be hostile). Rows are
rendered as an aligned text table or as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.mqtt.messages import MessageError, StatusMessage, parse_availability
from agent.mqtt.topics import TopicError, validate_device_id


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    online: bool | None = None
    status: StatusMessage | None = None
    problem: str | None = None

    @property
    def state(self) -> str:
        return self.status.state if self.status is not None else "-"

    @property
    def model(self) -> str:
        model = self.status.model if self.status is not None else None
        return model.name if model is not None else "-"

    @property
    def version(self) -> str:
        model = self.status.model if self.status is not None else None
        return model.version if model is not None else "-"

    @property
    def update(self) -> str:
        """The update's state as the issue spells it (``downloading (5 of 16)``), or ``-``."""
        update = self.status.update if self.status is not None else None
        return "-" if update is None or update.state == "idle" else update.label

    @property
    def last_seen(self) -> float | None:
        return self.status.ts if self.status is not None else None

    def to_obj(self) -> dict[str, Any]:
        return {
            "device": self.device_id,
            "online": self.online,
            "state": self.status.state if self.status else None,
            "model": self.status.model.to_obj() if self.status and self.status.model else None,
            "last_seen": self.last_seen,
            "problem": self.problem,
            "status": self.status.to_obj() if self.status else None,
        }


class FleetView:
    """Latest availability and status of every device under ``prefix``.

    ``newest_status``: a status older (by its ``ts``) than the one held is ignored, the merge
    rule when the same topic is read from several nodes that each keep their own retained copy
    (:mod:`fleet.cluster`). Off for one broker, where the last message is the current one even
    if a device's clock went back. Likewise a *retained* ``offline`` does not replace ``online``:
    a device's will overwrites its retained ``online`` on the node it left, so a retained
    ``online`` is only left where the device is connected now (a live ``offline`` still counts)."""

    def __init__(self, prefix: str, *, newest_status: bool = False) -> None:
        self._prefix = prefix.rstrip("/") + "/"
        self._rows: dict[str, DeviceRow] = {}
        self.newest_status = newest_status

    def apply(self, topic: str, payload: bytes, *, retained: bool = False) -> str | None:
        """Take one message; return the device id it concerned, or ``None`` if not ours."""
        message = parse_message(self._prefix, topic, payload)
        return None if message is None else self.take(message, retained=retained)

    def take(self, message: ParsedMessage, *, retained: bool = False) -> str:
        """Take a message parsed once by :func:`parse_message` (several views may share it)."""
        row = self._rows.get(message.device_id, DeviceRow(message.device_id))
        if message.kind == "availability":
            stale = self.newest_status and retained and message.value is False and row.online
            row = row if stale else _with_availability(row, message.value)
        elif not (self.newest_status and _older(message.value, row.status)):
            row = _with_status(row, message.value)
        if row.online is None and row.status is None and row.problem is None:
            self._rows.pop(message.device_id, None)
        else:
            self._rows[message.device_id] = row
        return message.device_id

    def row(self, device_id: str) -> DeviceRow | None:
        return self._rows.get(device_id)

    def rows(self) -> list[DeviceRow]:
        return [self._rows[d] for d in sorted(self._rows)]


def device_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``(device_id, "availability"|"status")`` for ``<prefix>/<id>/<kind>``, else ``None``."""
    if not topic.startswith(prefix):
        return None
    levels = topic[len(prefix) :].split("/")
    if len(levels) != 2 or levels[1] not in ("availability", "status"):
        return None
    try:
        return validate_device_id(levels[0]), levels[1]
    except TopicError:
        return None


@dataclass(frozen=True)
class ParsedMessage:
    """One availability or status message, parsed: ``value`` is ``None`` for a cleared topic,
    the availability (``bool``) or the :class:`StatusMessage`, or the error it did not parse
    with (kept as the row's ``problem``)."""

    device_id: str
    kind: str  # "availability" | "status"
    value: bool | StatusMessage | MessageError | None


def parse_message(prefix: str, topic: str, payload: bytes) -> ParsedMessage | None:
    """``prefix`` ends with ``/``; ``None`` for a topic that is not a device's own."""
    place = device_topic(prefix, topic)
    if place is None:
        return None
    device_id, kind = place
    if not payload:
        return ParsedMessage(device_id, kind, None)
    try:
        if kind == "availability":
            return ParsedMessage(device_id, kind, parse_availability(payload))
        return ParsedMessage(device_id, kind, StatusMessage.from_json(payload))
    except MessageError as exc:
        return ParsedMessage(device_id, kind, exc)


def _with_availability(row: DeviceRow, value: object) -> DeviceRow:
    if value is None:  # retained message cleared
        return DeviceRow(row.device_id, None, row.status, row.problem)
    if isinstance(value, MessageError):
        return DeviceRow(row.device_id, None, row.status, str(value))
    return DeviceRow(row.device_id, value is True, row.status, row.problem)


def _older(value: object, held: StatusMessage | None) -> bool:
    return isinstance(value, StatusMessage) and held is not None and value.ts < held.ts


def _with_status(row: DeviceRow, value: object) -> DeviceRow:
    if value is None:
        return DeviceRow(row.device_id, row.online, None, None)
    if isinstance(value, StatusMessage):
        return DeviceRow(row.device_id, row.online, value, None)
    return DeviceRow(row.device_id, row.online, row.status, f"bad status: {value}")


# -- rendering ------------------------------------------------------------------------------

COLUMNS = ("DEVICE", "ONLINE", "STATE", "MODEL", "VERSION", "UPDATE", "LAST SEEN")


def age_text(seconds: float) -> str:
    """``12s``, ``4m``, ``3h``, ``2d`` ago; a clock ahead of ours reads ``now``."""
    if seconds < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def table_cells(row: DeviceRow, now: float) -> tuple[str, ...]:
    online = {True: "yes", False: "no", None: "?"}[row.online]
    seen = "-" if row.last_seen is None else age_text(now - row.last_seen)
    state = row.state if row.problem is None else f"{row.state} ({row.problem})"
    return (row.device_id, online, state, row.model, row.version, row.update, seen)


def render_table(
    rows: Iterable[DeviceRow],
    now: float,
    columns: tuple[str, ...] = COLUMNS,
    cells: Any = table_cells,
) -> str:
    """An aligned text table: a header line, then one line per row."""
    lines = [columns, *(cells(row, now) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
