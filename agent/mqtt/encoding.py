"""A result message's JSON built around the canonical JSON of its body (pure).

:func:`result_json` writes the same bytes as ``dumps_canonical(message.to_obj())`` (sorted
keys, compact, UTF-8, no NaN) for the fields a result carries, but encodes only the body
through :mod:`json`: the envelope is joined from pre-encoded parts (the model reference is
encoded once per model), numbers are written with ``int.__repr__``/``float.__repr__`` as
:mod:`json` writes them, and strings with :mod:`json`'s own escaping. A field of an unusual
type (a non-finite float, an int subclass) returns ``None`` so that the caller falls back to
the general encoder, which raises what it always raised.
"""

from __future__ import annotations

import math
from json.encoder import encode_basestring
from typing import Any

from agent.jsonutil import dumps_canonical

#: Encoded model references kept (a device serves one or two models; a swap adds one).
_MAX_MODELS = 16
_models: dict[tuple[str, str, str], bytes] = {}


def model_json(name: str, version: str, sha256: str) -> bytes:
    """``{"name":..,"sha256":..,"version":..}``, encoded once per model."""
    key = (name, version, sha256)
    cached = _models.get(key)
    if cached is None:
        if len(_models) >= _MAX_MODELS:
            _models.clear()
        cached = dumps_canonical({"name": name, "version": version, "sha256": sha256})
        _models[key] = cached
    return cached


def number_json(value: object) -> bytes | None:
    """A plain ``int`` or finite ``float`` as :mod:`json` writes it (``repr``), else ``None``."""
    if type(value) is float:
        return repr(value).encode("ascii") if math.isfinite(value) else None
    if type(value) is int:
        return repr(value).encode("ascii")
    return None


def _string_json(value: object) -> bytes | None:
    return encode_basestring(value).encode("utf-8") if type(value) is str else None


def origin_json(
    source: object, seq: object, captured: object, file: object, ts: tuple[object, bytes]
) -> bytes | None:
    """The ``origin`` object (absent fields left out, keys sorted), or ``None`` to fall back.

    ``ts`` is the message's ``(ts, encoded)``: ``captured`` is usually that very object, whose
    digits need not be generated twice."""
    parts: list[bytes] = []
    if captured is not None and captured is ts[0]:
        parts.append(b'"captured":' + ts[1])
        captured = None
    for key, value, encode in (
        (b'"captured":', captured, number_json),
        (b'"file":', file, _string_json),
        (b'"seq":', seq, number_json),
    ):
        if value is not None:
            encoded = encode(value)
            if encoded is None:
                return None
            parts.append(key + encoded)
    encoded_source = _string_json(source)
    if encoded_source is None:
        return None
    parts.append(b'"source":' + encoded_source)
    return b"{" + b",".join(parts) + b"}"


def result_json(  # noqa: PLR0917 - one argument per field of the message
    version: int,
    seq: object,
    ts: object,
    model: tuple[str, str, str],
    latency_ms: object,
    outputs: dict[str, Any],
    historical: object,
    origin: tuple[object, object, object, object] | None,
) -> bytes | None:
    """The result's canonical JSON from its fields, or ``None`` when a field needs the general
    encoder. ``model`` is ``(name, version, sha256)``, ``origin`` ``(source, seq, captured,
    file)``."""
    seq_json, ts_json, latency_json = number_json(seq), number_json(ts), number_json(latency_ms)
    if seq_json is None or ts_json is None or latency_json is None or type(historical) is not bool:
        return None
    parts = [
        b'{"historical":true,"latency_ms":' if historical else b'{"historical":false,"latency_ms":',
        latency_json,
        b',"model":',
        model_json(*model),
    ]
    if origin is not None:
        origin_bytes = origin_json(*origin, (ts, ts_json))
        if origin_bytes is None:
            return None
        parts += (b',"origin":', origin_bytes)
    parts += (b',"outputs":', dumps_canonical(outputs), b',"seq":', seq_json, b',"ts":', ts_json)
    parts += (b',"v":', str(version).encode("ascii"), b"}")
    return b"".join(parts)
