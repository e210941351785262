"""Key files, encoded and decoded in memory (the commands do the file I/O).

* Private keys (release Ed25519, device X25519): unencrypted PKCS#8 PEM, written mode 0600.
* Public keys: small JSON documents. A device public key carries its device id, which the key
  wrap binds, so the fleet manager encrypts for exactly that device.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.bundle.crypto import keyid, raw_public
from agent.errors import InputError
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict

MAX_KEY_FILE = 16 << 10
RELEASE_PUBLIC_TYPE = "edge-agent/release-public-key"
DEVICE_PUBLIC_TYPE = "edge-agent/device-public-key"
REPORT_PUBLIC_TYPE = "edge-agent/report-public-key"
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


@dataclass(frozen=True)
class DevicePublicKey:
    device_id: str
    public_key: X25519PublicKey


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.fullmatch(device_id):
        raise InputError(
            f"device id {device_id!r} must be 1-64 of letters, digits, '.', '_', ':', '-'"
        )
    return device_id


def encode_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def decode_release_private(data: bytes, where: str) -> Ed25519PrivateKey:
    key = _load_private(data, where)
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{where}: not an Ed25519 release signing key")
    return key


def decode_device_private(data: bytes, where: str) -> X25519PrivateKey:
    key = _load_private(data, where)
    if not isinstance(key, X25519PrivateKey):
        raise InputError(f"{where}: not an X25519 device key")
    return key


def _load_private(data: bytes, where: str) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: not an unencrypted PKCS#8 PEM private key ({exc})") from None


def encode_release_public(key: Ed25519PublicKey) -> bytes:
    doc = {
        "type": RELEASE_PUBLIC_TYPE,
        "alg": "ed25519",
        "keyid": keyid(key).hex(),
        "public_key": base64.b64encode(raw_public(key)).decode("ascii"),
    }
    return dumps_canonical(doc) + b"\n"


def encode_device_public(device_id: str, key: X25519PublicKey) -> bytes:
    doc = {
        "type": DEVICE_PUBLIC_TYPE,
        "alg": "x25519",
        "device_id": check_device_id(device_id),
        "public_key": base64.b64encode(raw_public(key)).decode("ascii"),
    }
    return dumps_canonical(doc) + b"\n"


def encode_report_public(device_id: str, key: Ed25519PublicKey) -> bytes:
    """The public half of a device's report-signing key, for ``edge-fleet devices add``."""
    doc = {
        "type": REPORT_PUBLIC_TYPE,
        "alg": "ed25519",
        "device_id": check_device_id(device_id),
        "public_key": base64.b64encode(raw_public(key)).decode("ascii"),
    }
    return dumps_canonical(doc) + b"\n"


def decode_report_public(data: bytes, where: str) -> tuple[str, Ed25519PublicKey]:
    """(device id, report public key) from an ``edge-agent keygen`` ``*-report.pub`` file."""
    doc = _public_doc(data, where, REPORT_PUBLIC_TYPE, {"type", "alg", "device_id", "public_key"})
    device_id = doc["device_id"]
    if not isinstance(device_id, str):
        raise InputError(f"{where}: device_id must be a string")
    key = Ed25519PublicKey.from_public_bytes(_raw(doc["public_key"], where))
    return check_device_id(device_id), key


def decode_release_public(data: bytes, where: str) -> Ed25519PublicKey:
    doc = _public_doc(data, where, RELEASE_PUBLIC_TYPE, {"type", "alg", "keyid", "public_key"})
    key = Ed25519PublicKey.from_public_bytes(_raw(doc["public_key"], where))
    if keyid(key).hex() != doc["keyid"]:
        raise InputError(f"{where}: keyid does not match the public key")
    return key


def decode_device_public(data: bytes, where: str) -> DevicePublicKey:
    doc = _public_doc(data, where, DEVICE_PUBLIC_TYPE, {"type", "alg", "device_id", "public_key"})
    device_id = doc["device_id"]
    if not isinstance(device_id, str):
        raise InputError(f"{where}: device_id must be a string")
    return DevicePublicKey(
        check_device_id(device_id),
        X25519PublicKey.from_public_bytes(_raw(doc["public_key"], where)),
    )


def _public_doc(data: bytes, where: str, kind: str, keys: set[str]) -> dict[str, object]:
    try:
        doc = loads_strict(data, MAX_KEY_FILE)
    except StrictJSONError as exc:
        raise InputError(f"{where}: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != keys or doc.get("type") != kind:
        raise InputError(f"{where}: not a {kind} file (needs keys {', '.join(sorted(keys))})")
    return doc


def _raw(value: object, where: str) -> bytes:
    try:
        raw = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise InputError(f"{where}: public_key must be 32 bytes of base64")
    return raw
