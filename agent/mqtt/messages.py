"""The MQTT message schemas, shared by the agent (writer) and ``edge-fleet`` (reader).

Pure. ``to_json`` gives canonical compact JSON; ``from_json`` caps the size first, then parses
strictly (:func:`agent.jsonutil.loads_strict`: duplicate keys and NaN rejected) and checks every
field's type, rejecting unknown keys. Every failure is a :class:`MessageError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.mqtt.encoding import result_json
from agent.mqtt.fields import (
    MAX_TEXT_CHARS,
    _bool,
    _int,
    _num,
    _obj,
    _only,
    _only_with_optional,
    _opt_num,
    _str,
)
from agent.mqtt.fields import (  # re-exported: readers of messages catch it from here
    MessageError as MessageError,  # noqa: PLC0414
)

SCHEMA_VERSION = 1
MAX_RESULT_BYTES = 256 * 1024
MAX_STATUS_BYTES = 64 * 1024

AVAILABILITY_ONLINE = b"online"
AVAILABILITY_OFFLINE = b"offline"

STATES = ("starting", "running", "degraded", "stopping", "error")
UPDATE_STATES = (
    "idle", "downloading", "verifying", "canary", "installed", "rejected", "rolled_back",
)  # fmt: skip
MAX_GROUPS = 32
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _load(data: bytes, max_bytes: int, what: str) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray):
        raise MessageError(f"{what} payload must be bytes")
    try:
        parsed = loads_strict(bytes(data), max_bytes)
    except StrictJSONError as exc:
        raise MessageError(f"{what}: {exc}") from None
    obj = _obj(parsed, what)
    version = obj.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise MessageError(f"{what}: unsupported schema version {version!r}")
    return obj


# -- value types -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which model produced a result: name, version and the SHA-256 of the model bytes."""

    name: str
    version: str
    sha256: str

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise MessageError("model.sha256 must be 64 lower-case hex digits")

    def to_obj(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    @classmethod
    def from_obj(cls, value: Any, where: str = "model") -> ModelRef:
        obj = _obj(value, where)
        _only(obj, {"name", "version", "sha256"}, where)
        return cls(
            name=_str(obj["name"], f"{where}.name", 256),
            version=_str(obj["version"], f"{where}.version", 64),
            sha256=_str(obj["sha256"], f"{where}.sha256", 64),
        )


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a result's input came from: the source, its own sequence number (gaps are frames
    the source dropped), the wall-clock capture time and, for an image folder or an audio
    recording, the file name."""

    source: str
    seq: int | None = None
    captured: float | None = None
    file: str | None = None

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        for key in ("seq", "captured", "file"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_obj(cls, value: Any, where: str = "origin") -> Origin:
        obj = _obj(value, where)
        _only_with_optional(obj, {"source"}, {"seq", "captured", "file"}, where)
        return cls(
            source=_str(obj["source"], f"{where}.source", 1024),
            seq=None if obj.get("seq") is None else _int(obj["seq"], f"{where}.seq"),
            captured=_opt_num(obj.get("captured"), f"{where}.captured"),
            file=None if obj.get("file") is None else _str(obj["file"], f"{where}.file", 1024),
        )


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """One inference result. ``seq`` is monotonic across restarts; ``historical`` marks a replay.

    ``ts`` is the wall-clock capture time of the input; ``origin`` (optional, absent from
    results of older agents) says which source, frame and file it was.
    """

    seq: int
    ts: float
    model: ModelRef
    latency_ms: float
    outputs: dict[str, Any]
    historical: bool = False
    origin: Origin | None = None

    def to_obj(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "seq": self.seq,
            "ts": self.ts,
            "model": self.model.to_obj(),
            "latency_ms": self.latency_ms,
            "outputs": self.outputs,
            "historical": self.historical,
        } | ({} if self.origin is None else {"origin": self.origin.to_obj()})

    def to_json(self) -> bytes:
        m, o = self.model, self.origin
        fields = None if o is None else (o.source, o.seq, o.captured, o.file)
        data = result_json(SCHEMA_VERSION, self.seq, self.ts, (m.name, m.version, m.sha256),
                           self.latency_ms, self.outputs, self.historical, fields)  # fmt: skip
        if data is None:  # a field of an unusual type: the general encoder decides
            data = dumps_canonical(self.to_obj())
        if len(data) > MAX_RESULT_BYTES:
            raise MessageError(f"result is {len(data)} bytes, limit {MAX_RESULT_BYTES}")
        return data

    @classmethod
    def from_json(cls, data: bytes) -> ResultMessage:
        return cls.from_obj(_load(data, MAX_RESULT_BYTES, "result"))

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> ResultMessage:
        """A parsed result object (with its ``v``) checked field by field."""
        keys = {"v", "seq", "ts", "model", "latency_ms", "outputs", "historical"}
        _only_with_optional(obj, keys, {"origin"}, "result")
        return cls(
            seq=_int(obj["seq"], "result.seq"),
            ts=_num(obj["ts"], "result.ts"),
            model=ModelRef.from_obj(obj["model"], "result.model"),
            latency_ms=_num(obj["latency_ms"], "result.latency_ms"),
            outputs=_obj(obj["outputs"], "result.outputs"),
            historical=_bool(obj["historical"], "result.historical"),
            origin=None if obj.get("origin") is None else Origin.from_obj(obj["origin"]),
        )


def mark_historical(payload: bytes) -> bytes:
    """The same result payload with ``historical`` set: what a replay from the outbox sends."""
    message = ResultMessage.from_json(payload)
    return replace(message, historical=True).to_json()


@dataclass(frozen=True, slots=True)
class LastError:
    code: str
    message: str

    def to_obj(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_obj(cls, value: Any, where: str) -> LastError:
        obj = _obj(value, where)
        _only(obj, {"code", "message"}, where)
        return cls(_str(obj["code"], f"{where}.code", 64), _str(obj["message"], f"{where}.message"))


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int = 0
    bytes: int = 0
    dropped: int = 0
    write_errors: int = 0

    def to_obj(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "write_errors": self.write_errors,
        }

    @classmethod
    def from_obj(cls, value: Any, where: str) -> OutboxStats:
        obj = _obj(value, where)
        _only(obj, {"depth", "bytes", "dropped", "write_errors"}, where)
        return cls(
            *(_int(obj[k], f"{where}.{k}") for k in ("depth", "bytes", "dropped", "write_errors"))
        )


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    """Progress and outcome of the latest model update (the ``update`` object of the status).

    ``reason`` is a stable code for ``rejected`` and ``rolled_back`` (``canary_mismatch``,
    ``too_slow``, ``replayed``...), ``detail`` says it in words. ``requested`` counts the block
    subscriptions this agent process made for the transfer, ``bad_blocks`` the blocks that failed
    their signed SHA-256 and were fetched again.
    """

    state: str = "idle"
    reason: str | None = None
    detail: str | None = None
    bundle: str | None = None
    name: str | None = None
    counter: int | None = None
    blocks_held: int = 0
    blocks: int = 0
    bytes_per_s: float = 0.0
    requested: int = 0
    bad_blocks: int = 0

    def __post_init__(self) -> None:
        if self.state not in UPDATE_STATES:
            raise MessageError(f"status.update.state must be one of {', '.join(UPDATE_STATES)}")

    @property
    def label(self) -> str:
        """The state as the issue names it: ``downloading (k of n)``, ``rejected:<reason>``."""
        if self.state == "downloading":
            return f"downloading ({self.blocks_held} of {self.blocks})"
        if self.state in ("rejected", "rolled_back"):
            return f"{self.state}:{self.reason}"
        return self.state

    def to_obj(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "detail": self.detail,
            "bundle": self.bundle,
            "name": self.name,
            "counter": self.counter,
            "blocks_held": self.blocks_held,
            "blocks": self.blocks,
            "bytes_per_s": self.bytes_per_s,
            "requested": self.requested,
            "bad_blocks": self.bad_blocks,
        }

    @classmethod
    def from_obj(cls, value: Any, where: str = "update") -> UpdateStatus:
        obj = _obj(value, where)
        _only(obj, set(cls().to_obj()), where)

        def text(key: str, limit: int) -> str | None:
            return None if obj[key] is None else _str(obj[key], f"{where}.{key}", limit)

        return cls(
            state=_str(obj["state"], f"{where}.state", 16),
            reason=text("reason", 64),
            detail=text("detail", MAX_TEXT_CHARS),
            bundle=text("bundle", 64),
            name=text("name", 64),
            counter=None if obj["counter"] is None else _int(obj["counter"], f"{where}.counter"),
            blocks_held=_int(obj["blocks_held"], f"{where}.blocks_held"),
            blocks=_int(obj["blocks"], f"{where}.blocks"),
            bytes_per_s=_num(obj["bytes_per_s"], f"{where}.bytes_per_s"),
            requested=_int(obj["requested"], f"{where}.requested"),
            bad_blocks=_int(obj["bad_blocks"], f"{where}.bad_blocks"),
        )


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """Health and metrics of the device, published periodically and on change (retained)."""

    ts: float
    state: str
    fps: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    frames_dropped: int = 0
    queue_depth: int = 0
    backend: str = ""
    accelerator: str = "cpu"
    degraded: bool = False
    model: ModelRef | None = None
    backend_reason: str = ""  # why this backend: "named in the config" or what auto tried
    rss_bytes: int | None = None
    cpu_temp_c: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    outbox: OutboxStats = field(default_factory=OutboxStats)
    last_error: LastError | None = None
    groups: tuple[str, ...] = ()
    update: UpdateStatus | None = None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # a chain's, by name

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise MessageError(f"status.state must be one of {', '.join(STATES)}")

    def to_obj(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "ts": self.ts,
            "state": self.state,
            "fps": self.fps,
            "latency_ms": {"p50": self.latency_p50_ms, "p95": self.latency_p95_ms},
            "frames_dropped": self.frames_dropped,
            "queue_depth": self.queue_depth,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "accelerator": self.accelerator,
            "degraded": self.degraded,
            "model": self.model.to_obj() if self.model else None,
            "rss_bytes": self.rss_bytes,
            "cpu_temp_c": self.cpu_temp_c,
            "errors": dict(self.errors),
            "outbox": self.outbox.to_obj(),
            "last_error": self.last_error.to_obj() if self.last_error else None,
            "groups": list(self.groups),
            "update": self.update.to_obj() if self.update else None,
        } | ({"stages": self.stages} if self.stages else {})

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_obj())

    @classmethod
    def from_json(cls, data: bytes) -> StatusMessage:
        loaded = _load(data, MAX_STATUS_BYTES, "status")
        obj = {"groups": [], "update": None, "backend_reason": "", "stages": {}, **loaded}
        _only(obj, set(cls(ts=0.0, state="running").to_obj()) | {"stages"}, "status")
        groups = obj["groups"]
        if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
            raise MessageError(f"status.groups must be a list of at most {MAX_GROUPS} names")
        latency = _obj(obj["latency_ms"], "status.latency_ms")
        _only(latency, {"p50", "p95"}, "status.latency_ms")
        errors = _obj(obj["errors"], "status.errors")
        last, update = obj["last_error"], obj["update"]
        return cls(
            ts=_num(obj["ts"], "status.ts"),
            state=_str(obj["state"], "status.state", 16),
            fps=_num(obj["fps"], "status.fps"),
            latency_p50_ms=_opt_num(latency["p50"], "status.latency_ms.p50"),
            latency_p95_ms=_opt_num(latency["p95"], "status.latency_ms.p95"),
            frames_dropped=_int(obj["frames_dropped"], "status.frames_dropped"),
            queue_depth=_int(obj["queue_depth"], "status.queue_depth"),
            backend=_str(obj["backend"], "status.backend", 64),
            backend_reason=_str(obj["backend_reason"], "status.backend_reason", 512),
            accelerator=_str(obj["accelerator"], "status.accelerator", 64),
            degraded=_bool(obj["degraded"], "status.degraded"),
            model=None if obj["model"] is None else ModelRef.from_obj(obj["model"], "status.model"),
            rss_bytes=None if obj["rss_bytes"] is None else _int(obj["rss_bytes"], "status.rss"),
            cpu_temp_c=_opt_num(obj["cpu_temp_c"], "status.cpu_temp_c", None),
            errors={
                _str(k, "status.errors key", 64): _int(v, f"status.errors.{k}")
                for k, v in errors.items()
            },
            outbox=OutboxStats.from_obj(obj["outbox"], "status.outbox"),
            last_error=None if last is None else LastError.from_obj(last, "status.last_error"),
            groups=tuple(_str(g, "status.groups[]", 64) for g in groups),
            update=None if update is None else UpdateStatus.from_obj(update, "status.update"),
            stages={k: _obj(v, k) for k, v in _obj(obj["stages"], "status.stages").items()},
        )


def parse_availability(payload: bytes) -> bool:
    """``True`` for ``online``, ``False`` for ``offline``; anything else is a MessageError."""
    if payload == AVAILABILITY_ONLINE:
        return True
    if payload == AVAILABILITY_OFFLINE:
        return False
    raise MessageError(f"availability payload must be 'online' or 'offline', got {payload[:32]!r}")
