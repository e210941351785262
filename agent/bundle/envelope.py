"""DSSE envelopes: JSON ``{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"}]}``.

Used by the trust file and by signed fleet commands. Opening an envelope is structural only: the
size is capped before parsing, the payload stays opaque bytes, and the caller verifies the
signatures (:meth:`agent.bundle.trust.TrustRoot.verify`) before it parses the payload.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.container import Signature
from agent.bundle.crypto import keyid, sign
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason

MAX_SIGNATURES = 32
#: An envelope nests 3 deep (object, signatures list, signature object); its payloads 2-3.
MAX_DEPTH = 8
_KEYS = {"payloadType", "payload", "signatures"}


def open_envelope(
    data: bytes, payload_type: str, max_bytes: int, what: str
) -> tuple[bytes, list[Signature]]:
    """The payload bytes and signatures of an envelope of ``payload_type``; nothing verified.

    Raises :class:`BundleRejected` ``malformed`` (prefixed with ``what``) for anything that is
    not such an envelope, including one larger than ``max_bytes``.
    """
    try:
        obj = loads_strict(data, max_bytes, MAX_DEPTH)
        if not isinstance(obj, dict) or set(obj) != _KEYS:
            raise ValueError("not a DSSE envelope (needs payloadType, payload, signatures)")
        if obj["payloadType"] != payload_type:
            raise ValueError(f"payloadType must be {payload_type}")
        payload = unb64(obj["payload"])
        entries = obj["signatures"]
        if not isinstance(entries, list) or len(entries) > MAX_SIGNATURES:
            raise ValueError(f"signatures must be a list of at most {MAX_SIGNATURES} entries")
        return payload, [_signature(e) for e in entries]
    except (StrictJSONError, ValueError, binascii.Error, TypeError, KeyError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"{what}: {exc}") from None


def make_envelope(payload_type: str, payload: bytes, signers: Sequence[Ed25519PrivateKey]) -> bytes:
    """An envelope around ``payload`` signed by every key in ``signers`` (newline-terminated)."""
    signatures = [
        {"keyid": keyid(s.public_key()).hex(), "sig": b64(sign(s, payload_type, payload))}
        for s in signers
    ]
    envelope = {"payloadType": payload_type, "payload": b64(payload), "signatures": signatures}
    return dumps_canonical(envelope) + b"\n"


def _signature(entry: object) -> Signature:
    if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
        raise ValueError("each signature needs exactly keyid and sig")
    fields = cast(dict[str, Any], entry)
    if not isinstance(fields["keyid"], str):
        raise TypeError("keyid must be a hex string")
    return Signature(bytes.fromhex(fields["keyid"]), unb64(fields["sig"]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError("expected a base64 string")
    return base64.b64decode(value, validate=True)
