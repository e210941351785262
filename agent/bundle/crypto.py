"""Cryptographic primitives of the bundle format, all from ``cryptography``.

* DSSE pre-authentication encoding (PAE) of the signed bytes, Ed25519 signatures.
* The payload key wrapped per recipient: X25519 with a fresh ephemeral key, HKDF-SHA256 whose
  ``info`` binds the recipient id and the manifest digest, ChaCha20-Poly1305 around the key.
* The payload as a chunked AEAD stream in the style of age's STREAM: the 12-byte nonce is an
  11-byte big-endian chunk counter followed by a final-chunk flag (``0x01`` on the last chunk
  only), so truncation, reordering and appended chunks all fail authentication.

Everything here is pure: bytes in, bytes out (randomness comes from ``os.urandom`` callers pass).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import InputError

PAYLOAD_TYPE = "application/vnd.edge-agent.bundle.v1"
TRUST_PAYLOAD_TYPE = "application/vnd.edge-agent.trust.v1+json"
CIPHERS = ("chacha20-poly1305", "aes-256-gcm")
DEFAULT_CIPHER = "chacha20-poly1305"
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12
WRAPPED_KEY_SIZE = KEY_SIZE + TAG_SIZE
KEYID_SIZE = 32
SIGNATURE_SIZE = 64
_WRAP_INFO = b"edge-agent bundle key wrap v1"


class AEAD(Protocol):
    """What the stream needs from an AEAD (``ChaCha20Poly1305`` and ``AESGCM`` both fit)."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt_into(
        self, nonce: bytes, data: bytes | memoryview, associated_data: bytes | None, buf: memoryview
    ) -> int: ...


AEADFactory = Callable[[str, bytes], AEAD]


class StreamError(InputError, ValueError):
    """The encrypted stream does not authenticate. ``truncated`` tells a cut-short stream apart."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def make_aead(cipher: str, key: bytes) -> AEAD:
    """The AEAD named ``cipher`` under ``key`` (the default :data:`AEADFactory`)."""
    if cipher == "chacha20-poly1305":
        return ChaCha20Poly1305(key)
    if cipher == "aes-256-gcm":
        return AESGCM(key)
    raise ValueError(f"unknown cipher {cipher!r}; known: {', '.join(CIPHERS)}")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def keyid(public: Ed25519PublicKey) -> bytes:
    """A release key's id: SHA-256 of its raw 32-byte public key."""
    return hashlib.sha256(raw_public(public)).digest()


def raw_public(public: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(key: Ed25519PrivateKey, payload_type: str, body: bytes) -> bytes:
    return key.sign(pae(payload_type, body))


def signature_valid(
    public: Ed25519PublicKey, signature: bytes, payload_type: str, body: bytes
) -> bool:
    try:
        public.verify(signature, pae(payload_type, body))
    except InvalidSignature:
        return False
    return True


def _wrap_key(
    shared: bytes, eph_pub: bytes, recipient_pub: bytes, rid: str, digest: bytes
) -> bytes:
    rid_bytes = rid.encode("utf-8")
    info = _WRAP_INFO + len(rid_bytes).to_bytes(1, "big") + rid_bytes + digest
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=eph_pub + recipient_pub, info=info
    ).derive(shared)


def wrap_payload_key(
    payload_key: bytes,
    recipient: X25519PublicKey,
    recipient_id: str,
    manifest_digest: bytes,
    ephemeral: X25519PrivateKey,
) -> tuple[bytes, bytes]:
    """Wrap ``payload_key`` for one recipient; returns (ephemeral public key, wrapped key)."""
    eph_pub = raw_public(ephemeral.public_key())
    kek = _wrap_key(
        ephemeral.exchange(recipient), eph_pub, raw_public(recipient), recipient_id, manifest_digest
    )
    # The key-encryption key is used exactly once (fresh ephemeral key), so a zero nonce is safe.
    return eph_pub, ChaCha20Poly1305(kek).encrypt(bytes(NONCE_SIZE), payload_key, None)


def unwrap_payload_key(
    private: X25519PrivateKey,
    recipient_id: str,
    manifest_digest: bytes,
    eph_pub: bytes,
    wrapped: bytes,
) -> bytes | None:
    """The payload key, or ``None`` when this key, id or manifest is not what it was wrapped for."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError:  # a low-order point gives an all-zero shared secret
        return None
    kek = _wrap_key(
        shared, eph_pub, raw_public(private.public_key()), recipient_id, manifest_digest
    )
    try:
        return ChaCha20Poly1305(kek).decrypt(bytes(NONCE_SIZE), wrapped, None)
    except InvalidTag:
        return None


def stream_nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(NONCE_SIZE - 1, "big") + (b"\x01" if final else b"\x00")


def chunk_count(plaintext_length: int, chunk_size: int) -> int:
    """Chunks in a stream: at least one (an empty plaintext is one empty final chunk)."""
    return max(1, -(-plaintext_length // chunk_size))


def ciphertext_length(plaintext_length: int, chunk_size: int) -> int:
    return plaintext_length + TAG_SIZE * chunk_count(plaintext_length, chunk_size)


def encrypt_stream(aead: AEAD, plaintext: bytes, chunk_size: int) -> bytes:
    """Encrypt ``plaintext`` as a chunked stream (the writer side; the whole result in memory)."""
    count = chunk_count(len(plaintext), chunk_size)
    view = memoryview(plaintext)
    parts = [
        aead.encrypt(
            stream_nonce(i, i == count - 1),
            bytes(view[i * chunk_size : (i + 1) * chunk_size]),
            None,
        )
        for i in range(count)
    ]
    return b"".join(parts)


def decrypt_stream_into(
    aead: AEAD, ciphertext: bytes | memoryview, chunk_size: int, out: memoryview
) -> None:
    """Decrypt a whole stream into ``out`` (exactly the plaintext length), chunk by chunk.

    Raises :class:`StreamError`; ``truncated`` is set when the last chunk present authenticates
    as a non-final chunk, i.e. the stream was cut at a chunk boundary.
    """
    cipher_view = memoryview(ciphertext)
    count = chunk_count(len(out), chunk_size)
    if len(cipher_view) != len(out) + TAG_SIZE * count:
        raise StreamError(
            f"stream is {len(cipher_view)} bytes; {len(out)} plaintext bytes need "
            f"{len(out) + TAG_SIZE * count}",
            truncated=len(cipher_view) < len(out) + TAG_SIZE * count,
        )
    step = chunk_size + TAG_SIZE
    for i in range(count):
        final = i == count - 1
        chunk = cipher_view[i * step : (i + 1) * step]
        target = out[i * chunk_size : i * chunk_size + len(chunk) - TAG_SIZE]
        try:
            aead.decrypt_into(stream_nonce(i, final), chunk, None, target)
        except InvalidTag:
            raise _chunk_failure(aead, chunk, i, final, target) from None


def _chunk_failure(
    aead: AEAD, chunk: memoryview, index: int, final: bool, target: memoryview
) -> StreamError:
    if final:
        try:
            aead.decrypt_into(stream_nonce(index, False), chunk, None, target)
        except InvalidTag:
            pass
        else:
            return StreamError(
                f"stream ends after chunk {index} without its final chunk", truncated=True
            )
    return StreamError(f"chunk {index} does not authenticate")
