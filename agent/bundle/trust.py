"""Trusted release keys, the signature threshold, and the versioned trust file.

A trust file is a DSSE envelope (JSON: ``payloadType``, base64 ``payload``, ``signatures``)
whose payload is ``{"type": "edge-agent/trust", "version": N, "threshold": K, "keys": [...]}``.
The first file a device gets is provisioned out of band and must be signed by its own keys to
its own threshold. Version N+1 replaces N only when it is signed by keys of N meeting N's
threshold *and* by keys of N+1 meeting N+1's threshold (TUF's root rotation); versions cannot be
skipped. Signatures are checked over the exact payload bytes before the payload is parsed.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle.container import Signature
from agent.bundle.crypto import TRUST_PAYLOAD_TYPE, keyid, raw_public, signature_valid
from agent.bundle.envelope import b64, make_envelope, open_envelope, unb64
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason

MAX_TRUST_BYTES = 64 << 10
TRUST_TYPE = "edge-agent/trust"


@dataclass(frozen=True)
class TrustRoot:
    """The release keys a device trusts (by key id) and how many must sign."""

    version: int
    threshold: int
    keys: Mapping[bytes, Ed25519PublicKey]
    role: str = ""  # named in messages: "" for release keys, "fleet" for command keys

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= len(self.keys):
            raise ValueError(
                f"threshold {self.threshold} needs 1..{len(self.keys)} distinct trusted keys"
            )

    @classmethod
    def from_keys(
        cls,
        keys: Iterable[Ed25519PublicKey],
        threshold: int = 1,
        version: int = 0,
        *,
        role: str = "",
    ) -> TrustRoot:
        return cls(version, threshold, {keyid(k): k for k in keys}, role)

    def verify(
        self, payload_type: str, body: bytes, signatures: Sequence[Signature]
    ) -> frozenset[bytes]:
        """Key ids of the distinct trusted keys whose signatures verify; at least ``threshold``.

        A signature from a trusted key that does not verify means the bytes were altered, so it
        rejects the whole thing even if others verify. Signatures by unknown keys are ignored;
        several signatures by one key count once.
        """
        trusted = f"trusted {self.role} key" if self.role else "trusted key"
        valid: set[bytes] = set()
        for entry in signatures:
            public = self.keys.get(entry.keyid)
            if public is None:
                continue
            if not signature_valid(public, entry.signature, payload_type, body):
                raise BundleRejected(
                    Reason.SIGNATURE_INVALID,
                    f"signature by {trusted} {entry.keyid.hex()[:16]} does not verify",
                )
            valid.add(entry.keyid)
        if not valid:
            what = "carries no signature" if not signatures else f"has no signature by a {trusted}"
            raise BundleRejected(
                Reason.SIGNATURE_INVALID, f"signature does not verify with any {trusted} ({what})"
            )
        if len(valid) < self.threshold:
            raise BundleRejected(
                Reason.THRESHOLD_NOT_MET,
                f"{len(valid)} distinct {trusted}(s) signed, threshold is {self.threshold}",
            )
        return frozenset(valid)


def load_trust(envelope: bytes) -> TrustRoot:
    """A provisioned trust file, accepted when signed by its own keys to its own threshold."""
    payload, signatures = _open_envelope(envelope)
    root = _parse_root(payload)
    root.verify(TRUST_PAYLOAD_TYPE, payload, signatures)
    return root


def rotate_trust(current: TrustRoot, envelope: bytes) -> TrustRoot:
    """Trust file ``current.version + 1``, verified against both the old and the new keys."""
    payload, signatures = _open_envelope(envelope)
    current.verify(TRUST_PAYLOAD_TYPE, payload, signatures)
    new = _parse_root(payload)
    if new.version < current.version:
        raise BundleRejected(
            Reason.ROLLBACK, f"trust file version {new.version} < {current.version}"
        )
    if new.version == current.version:
        raise BundleRejected(
            Reason.ALREADY_INSTALLED, f"trust file version {new.version} is current"
        )
    if new.version != current.version + 1:
        raise BundleRejected(
            Reason.MALFORMED,
            f"trust file version {new.version} skips {current.version + 1}; rotate one at a time",
        )
    new.verify(TRUST_PAYLOAD_TYPE, payload, signatures)
    return new


def make_trust_file(
    version: int,
    threshold: int,
    keys: Sequence[Ed25519PublicKey],
    signers: Sequence[Ed25519PrivateKey],
) -> bytes:
    """Write a trust file signed by ``signers`` (old and new keys for a rotation)."""
    TrustRoot.from_keys(keys, threshold, version)  # validates the threshold
    payload = dumps_canonical(
        {
            "type": TRUST_TYPE,
            "version": version,
            "threshold": threshold,
            "keys": [b64(raw_public(k)) for k in keys],
        }
    )
    return make_envelope(TRUST_PAYLOAD_TYPE, payload, signers)


def _open_envelope(data: bytes) -> tuple[bytes, list[Signature]]:
    return open_envelope(data, TRUST_PAYLOAD_TYPE, MAX_TRUST_BYTES, "trust file")


def _parse_root(payload: bytes) -> TrustRoot:
    try:
        obj = loads_strict(payload, MAX_TRUST_BYTES)
        if not isinstance(obj, dict) or set(obj) != {"type", "version", "threshold", "keys"}:
            raise ValueError("payload needs exactly type, version, threshold and keys")
        if obj["type"] != TRUST_TYPE:
            raise ValueError(f"type must be {TRUST_TYPE}")
        version, threshold = obj["version"], obj["threshold"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (version, threshold)):
            raise ValueError("version and threshold must be integers")
        keys = [Ed25519PublicKey.from_public_bytes(unb64(k)) for k in obj["keys"]]
        if len({raw_public(k) for k in keys}) != len(keys):
            raise ValueError("keys must be distinct")
        return TrustRoot.from_keys(keys, threshold, version)
    except (StrictJSONError, ValueError, binascii.Error, TypeError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"trust file payload: {exc}") from None
