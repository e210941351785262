"""The writer side (used by ``edge-convert bundle``): encrypt once, wrap per recipient, sign."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.bundle.container import (
    Limits,
    Recipient,
    Signature,
    build_signatures,
    build_signed,
)
from agent.bundle.crypto import (
    DEFAULT_CIPHER,
    KEY_SIZE,
    PAYLOAD_TYPE,
    encrypt_stream,
    keyid,
    make_aead,
    sign,
    wrap_payload_key,
)
from agent.bundle.manifest import FILE_NAMES, REQUIRED_FILE, FileEntry, Manifest, PayloadInfo
from agent.schema.meta import ModelMetadata

DEFAULT_CHUNK_SIZE = 64 << 10
DEFAULT_BLOCK_SIZE = 64 << 10


@dataclass(frozen=True)
class RecipientKey:
    """A device (or group) to encrypt for: its id as bound into the key wrap, and its key."""

    recipient_id: str
    public_key: X25519PublicKey


@dataclass(frozen=True)
class Release:
    name: str
    counter: int
    created: int
    expires: int | None = None
    hardware: tuple[str, ...] = ()
    metadata: ModelMetadata | None = None
    cipher: str = DEFAULT_CIPHER
    chunk_size: int = DEFAULT_CHUNK_SIZE
    block_size: int = DEFAULT_BLOCK_SIZE


def build_bundle(
    release: Release,
    files: Mapping[str, bytes],
    signers: Sequence[Ed25519PrivateKey],
    recipients: Sequence[RecipientKey],
    *,
    random: Callable[[int], bytes] = os.urandom,
    limits: Limits | None = None,
) -> bytes:
    """A complete bundle. Raises ``ValueError`` naming what is wrong with the inputs."""
    limits = limits or Limits()
    _check_inputs(files, signers, recipients, limits)
    ordered = [name for name in FILE_NAMES if name in files]
    plaintext = b"".join(files[name] for name in ordered)
    payload_key = random(KEY_SIZE)
    ciphertext = encrypt_stream(
        make_aead(release.cipher, payload_key), plaintext, release.chunk_size
    )
    if len(ciphertext) > limits.max_payload:
        raise ValueError(f"payload is {len(ciphertext)} bytes, limit is {limits.max_payload}")
    manifest = Manifest(
        name=release.name,
        counter=release.counter,
        hardware=release.hardware,
        created=release.created,
        expires=release.expires,
        files=tuple(
            FileEntry(n, len(files[n]), hashlib.sha256(files[n]).hexdigest()) for n in ordered
        ),
        payload=_payload_info(release, ciphertext),
        metadata=release.metadata,
    )
    manifest_bytes = manifest.to_json()
    digest = hashlib.sha256(manifest_bytes).digest()
    wrapped = tuple(_wrap(payload_key, r, digest) for r in recipients)
    signed = build_signed(manifest_bytes, wrapped, len(signers), len(ciphertext))
    signatures = tuple(
        Signature(keyid(s.public_key()), sign(s, PAYLOAD_TYPE, signed)) for s in signers
    )
    header = signed + build_signatures(signatures)
    if len(header) > limits.max_header:
        raise ValueError(f"header is {len(header)} bytes, limit is {limits.max_header}")
    return header + ciphertext


def _check_inputs(
    files: Mapping[str, bytes],
    signers: Sequence[Ed25519PrivateKey],
    recipients: Sequence[RecipientKey],
    limits: Limits,
) -> None:
    unknown = sorted(set(files) - set(FILE_NAMES))
    if unknown:
        raise ValueError(f"unknown bundle file {unknown[0]!r}; allowed: {', '.join(FILE_NAMES)}")
    if REQUIRED_FILE not in files:
        raise ValueError(f"a bundle needs {REQUIRED_FILE}")
    if not 1 <= len(signers) <= limits.max_signatures:
        raise ValueError(f"a bundle needs 1..{limits.max_signatures} signing keys")
    if not 1 <= len(recipients) <= limits.max_recipients:
        raise ValueError(f"a bundle needs 1..{limits.max_recipients} recipients")
    ids = [r.recipient_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise ValueError("recipient ids must be distinct")


def _payload_info(release: Release, ciphertext: bytes) -> PayloadInfo:
    view = memoryview(ciphertext)
    size = release.block_size
    blocks = tuple(
        hashlib.sha256(view[i : i + size]).hexdigest() for i in range(0, len(ciphertext), size)
    )
    return PayloadInfo(
        cipher=release.cipher,
        chunk_size=release.chunk_size,
        length=len(ciphertext),
        sha256=hashlib.sha256(ciphertext).hexdigest(),
        block_size=size,
        blocks=blocks,
    )


def _wrap(payload_key: bytes, recipient: RecipientKey, digest: bytes) -> Recipient:
    ephemeral, wrapped = wrap_payload_key(
        payload_key,
        recipient.public_key,
        recipient.recipient_id,
        digest,
        X25519PrivateKey.generate(),
    )
    return Recipient(recipient.recipient_id, ephemeral, wrapped)
