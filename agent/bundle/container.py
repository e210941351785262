"""The binary container: a fixed prefix, the signed body, the signatures, then the payload.

Parsing here is structural only: lengths and counts are checked against :class:`Limits` before
anything is sliced, and no JSON is parsed. The manifest stays opaque bytes until its signatures
have been verified (see :mod:`agent.bundle.verify`). The layout is documented byte by byte in
``docs/bundle-format.md``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agent.bundle.crypto import KEYID_SIZE, SIGNATURE_SIZE, WRAPPED_KEY_SIZE
from agent.errors import BundleRejected
from agent.reasons import Reason

MAGIC = b"EDGEPKG\x01"
PREFIX = struct.Struct(">8sIHQ")  # magic, body length, signature count, payload length
PREFIX_SIZE = PREFIX.size  # 22
SIGNATURE_ENTRY_SIZE = KEYID_SIZE + SIGNATURE_SIZE
EPHEMERAL_SIZE = 32
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


@dataclass(frozen=True)
class Limits:
    """Caps checked before anything is parsed. Sizes in bytes."""

    max_header: int = 1 << 20
    max_signatures: int = 16
    max_recipients: int = 1024
    max_files: int = 8
    max_payload: int = 512 << 20
    max_blocks: int = 16384


@dataclass(frozen=True)
class Recipient:
    recipient_id: str
    ephemeral: bytes
    wrapped_key: bytes


@dataclass(frozen=True)
class Signature:
    keyid: bytes
    signature: bytes


@dataclass(frozen=True)
class Prefix:
    body_length: int
    signature_count: int
    payload_length: int

    @property
    def header_length(self) -> int:
        return PREFIX_SIZE + self.body_length + SIGNATURE_ENTRY_SIZE * self.signature_count


@dataclass(frozen=True)
class RawHeader:
    """A structurally valid, still unverified header. ``signed`` is what the signatures cover."""

    prefix: Prefix
    signed: bytes
    manifest: bytes
    recipients: tuple[Recipient, ...]
    signatures: tuple[Signature, ...]


def parse_prefix(data: bytes | memoryview, limits: Limits) -> Prefix:
    """Read and cap the fixed prefix; enough to know how many header bytes to fetch."""
    if len(data) < PREFIX_SIZE:
        raise BundleRejected(
            Reason.STREAM_TRUNCATED, f"bundle is {len(data)} bytes, shorter than its prefix"
        )
    magic, body_length, signature_count, payload_length = PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BundleRejected(
            Reason.MALFORMED, "not an edge-agent bundle (bad magic or format version)"
        )
    prefix = Prefix(body_length, signature_count, payload_length)
    if signature_count > limits.max_signatures:
        raise BundleRejected(
            Reason.TOO_LARGE, f"{signature_count} signatures, limit is {limits.max_signatures}"
        )
    if prefix.header_length > limits.max_header:
        raise BundleRejected(
            Reason.TOO_LARGE,
            f"header is {prefix.header_length} bytes, limit is {limits.max_header}",
        )
    if payload_length > limits.max_payload:
        raise BundleRejected(
            Reason.TOO_LARGE, f"payload is {payload_length} bytes, limit is {limits.max_payload}"
        )
    return prefix


def parse_header(data: bytes | memoryview, limits: Limits) -> RawHeader:
    """Split a header (``data`` may continue with the payload) into its parts, without JSON."""
    prefix = parse_prefix(data, limits)
    if len(data) < prefix.header_length:
        raise BundleRejected(
            Reason.STREAM_TRUNCATED,
            f"header needs {prefix.header_length} bytes, only {len(data)} present",
        )
    body_end = PREFIX_SIZE + prefix.body_length
    manifest, recipients = _parse_body(bytes(data[PREFIX_SIZE:body_end]), limits)
    signatures = tuple(
        Signature(
            bytes(data[offset : offset + KEYID_SIZE]),
            bytes(data[offset + KEYID_SIZE : offset + SIGNATURE_ENTRY_SIZE]),
        )
        for offset in range(body_end, prefix.header_length, SIGNATURE_ENTRY_SIZE)
    )
    return RawHeader(prefix, bytes(data[:body_end]), manifest, recipients, signatures)


def _parse_body(body: bytes, limits: Limits) -> tuple[bytes, tuple[Recipient, ...]]:
    reader = _Reader(body)
    manifest = reader.take(reader.u32(), "manifest")
    count = reader.u16()
    if count > limits.max_recipients:
        raise BundleRejected(
            Reason.TOO_LARGE, f"{count} recipients, limit is {limits.max_recipients}"
        )
    recipients = []
    for _ in range(count):
        raw_id = reader.take(reader.u8(), "recipient id")
        try:
            recipient_id = raw_id.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleRejected(Reason.MALFORMED, "recipient id is not UTF-8") from None
        recipients.append(
            Recipient(
                recipient_id,
                reader.take(EPHEMERAL_SIZE, "ephemeral key"),
                reader.take(WRAPPED_KEY_SIZE, "wrapped key"),
            )
        )
    if reader.remaining:
        raise BundleRejected(
            Reason.MALFORMED, f"{reader.remaining} stray bytes after the recipients"
        )
    return manifest, tuple(recipients)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise BundleRejected(
                Reason.MALFORMED,
                f"{what} needs {size} bytes, header body has {self.remaining} left",
            )
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4, "length field"))[0]
        return value

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2, "count field"))[0]
        return value

    def u8(self) -> int:
        return self.take(1, "length byte")[0]


def build_signed(
    manifest: bytes, recipients: tuple[Recipient, ...], signature_count: int, payload_length: int
) -> bytes:
    """The prefix and body: exactly the bytes the signatures cover."""
    parts = [_U32.pack(len(manifest)), manifest, _U16.pack(len(recipients))]
    for recipient in recipients:
        raw_id = recipient.recipient_id.encode("utf-8")
        if not 0 < len(raw_id) < 256:
            raise ValueError(f"recipient id {recipient.recipient_id!r} must be 1..255 bytes")
        parts += [bytes([len(raw_id)]), raw_id, recipient.ephemeral, recipient.wrapped_key]
    body = b"".join(parts)
    return PREFIX.pack(MAGIC, len(body), signature_count, payload_length) + body


def build_signatures(signatures: tuple[Signature, ...]) -> bytes:
    return b"".join(s.keyid + s.signature for s in signatures)
