"""The verifying core: bytes and time in, a verified model or a precise :class:`BundleRejected`.

The order is enforced by :class:`BundleVerifier`:

1. :meth:`BundleVerifier.verify_header` -- cap sizes, verify signatures over the exact signed
   bytes, and only then parse the manifest; check recipient, hardware, release counter and
   expiry. Returns a :class:`VerifiedManifest`. Nothing is decrypted here.
2. :func:`check_block` -- one ciphertext block against the manifest's per-block SHA-256, so a
   transfer can verify each block as it arrives.
3. :meth:`BundleVerifier.decrypt` -- all block hashes first, then unwrap the payload key and
   decrypt the chunked stream into one preallocated buffer, then check every file's SHA-256.
4. The caller commits the counter with :meth:`agent.bundle.state.StateStore.record_installed`
   once the model is installed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle.container import Limits, Prefix, RawHeader, Recipient, parse_header
from agent.bundle.crypto import (
    PAYLOAD_TYPE,
    AEADFactory,
    StreamError,
    decrypt_stream_into,
    make_aead,
    unwrap_payload_key,
)
from agent.bundle.manifest import Manifest, parse_manifest
from agent.bundle.state import ReleaseState
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.reasons import Reason

ManifestParser = Callable[[bytes, Limits], Manifest]


@dataclass(frozen=True)
class DeviceIdentity:
    """Who is verifying: the device id, its X25519 key, its hardware id, optional group keys."""

    device_id: str
    private_key: X25519PrivateKey
    hardware: str | None = None
    group_keys: Mapping[str, X25519PrivateKey] = field(default_factory=lambda: MappingProxyType({}))

    def keys(self) -> dict[str, X25519PrivateKey]:
        return {**self.group_keys, self.device_id: self.private_key}


@dataclass(frozen=True)
class VerifiedManifest:
    """A header whose signatures, recipient, hardware, counter and expiry all checked out."""

    manifest: Manifest
    manifest_sha256: bytes
    header_length: int
    signers: frozenset[bytes]
    recipient: Recipient


@dataclass(frozen=True)
class DecryptedBundle:
    """The plaintext files, as views into one in-memory buffer (never written to disk)."""

    verified: VerifiedManifest
    files: Mapping[str, memoryview]

    def file(self, name: str) -> memoryview | None:
        return self.files.get(name)


def check_exact_length(prefix: Prefix, length: int, *, whole: bool = False) -> None:
    """``length`` must be the signed header length, or header plus payload (pure).

    ``whole``: ``data`` is meant as a whole bundle, so a short one is ``stream_truncated``.
    """
    header, total = prefix.header_length, prefix.header_length + prefix.payload_length
    if length == total or (length == header and not whole):
        return
    if whole and length < total:
        raise BundleRejected(
            Reason.STREAM_TRUNCATED, f"bundle is {length} bytes, its signed prefix says {total}"
        )
    if length < total:
        raise BundleRejected(
            Reason.MALFORMED,
            f"{length - header} bytes follow the {header}-byte header; the signed prefix says "
            f"the header is exactly {header} bytes and the bundle exactly {total}",
        )
    raise BundleRejected(
        Reason.MALFORMED,
        f"bundle is {length} bytes, {length - total} more than the {total} its signed prefix says",
    )


def check_block(verified: VerifiedManifest, index: int, block: bytes | memoryview) -> None:
    """Check ciphertext block ``index`` against the signed per-block SHA-256 (pure)."""
    payload = verified.manifest.payload
    if not 0 <= index < len(payload.blocks):
        raise BundleRejected(
            Reason.MALFORMED, f"block {index} does not exist ({len(payload.blocks)})"
        )
    start, end = payload.block_range(index)
    if len(block) != end - start:
        raise BundleRejected(
            Reason.DIGEST_MISMATCH, f"block {index} is {len(block)} bytes, expected {end - start}"
        )
    if not hmac.compare_digest(hashlib.sha256(block).hexdigest(), payload.blocks[index]):
        raise BundleRejected(
            Reason.DIGEST_MISMATCH, f"block {index} SHA-256 differs from the manifest"
        )


class BundleVerifier:
    """Verifies one bundle for one device at one time; each step needs the previous one.

    ``reopen_installed`` is for re-opening the bundle this device already installed (at start-up):
    a counter equal to the installed one is then accepted; a lower one is still a rollback.
    ``own_slot`` is for a bundle read back from this device's own A/B slots (the active one at
    start-up, or the previous one on a rollback): a lower counter is then accepted too, because
    going back to the previous slot is exactly what a rollback means.
    """

    def __init__(
        self,
        trust: TrustRoot,
        device: DeviceIdentity,
        state: ReleaseState,
        *,
        now: float,
        limits: Limits | None = None,
        aead_factory: AEADFactory = make_aead,
        manifest_parser: ManifestParser = parse_manifest,
        reopen_installed: bool = False,
        own_slot: bool = False,
    ) -> None:
        self._trust = trust
        self._reopen_installed = reopen_installed or own_slot
        self._own_slot = own_slot
        self._device = device
        self._state = state
        self._now = int(now)
        self._limits = limits or Limits()
        self._aead_factory = aead_factory
        self._parse_manifest = manifest_parser
        self._verified: VerifiedManifest | None = None

    @property
    def verified(self) -> VerifiedManifest:
        if self._verified is None:
            raise RuntimeError("verify_header() must succeed before blocks or payload are used")
        return self._verified

    def verify_header(self, data: bytes | memoryview, *, whole: bool = False) -> VerifiedManifest:
        """Verify ``data``: exactly a header, or exactly a header followed by its whole payload
        (``whole=True``: only the latter).

        The signed prefix fixes both lengths, so any other length is refused before the
        signatures are checked: a header with trailing bytes must never reach a slot.
        """
        raw = parse_header(data, self._limits)
        check_exact_length(raw.prefix, len(data), whole=whole)
        signers = self._trust.verify(PAYLOAD_TYPE, raw.signed, raw.signatures)
        recipient = self._recipient(raw)
        manifest = self._parse_manifest(raw.manifest, self._limits)
        if manifest.payload.length != raw.prefix.payload_length:
            raise BundleRejected(
                Reason.MALFORMED,
                f"prefix payload length {raw.prefix.payload_length} differs from the manifest's "
                f"{manifest.payload.length}",
            )
        self._check_hardware(manifest)
        self._check_counter(manifest)
        self._check_expiry(manifest)
        self._verified = VerifiedManifest(
            manifest,
            hashlib.sha256(raw.manifest).digest(),
            raw.prefix.header_length,
            signers,
            recipient,
        )
        return self._verified

    def check_block(self, index: int, block: bytes | memoryview) -> None:
        check_block(self.verified, index, block)

    def decrypt(self, payload: bytes | memoryview) -> DecryptedBundle:
        """Check every block, unwrap the key, decrypt into memory, check every file."""
        verified = self.verified
        info = verified.manifest.payload
        if len(payload) < info.length:
            raise BundleRejected(
                Reason.STREAM_TRUNCATED,
                f"payload is {len(payload)} bytes, manifest says {info.length}",
            )
        if len(payload) > info.length:
            raise BundleRejected(
                Reason.DIGEST_MISMATCH,
                f"payload is {len(payload)} bytes, manifest says {info.length}",
            )
        view = memoryview(payload)
        for index in range(len(info.blocks)):
            start, end = info.block_range(index)
            check_block(verified, index, view[start:end])
        key = self._unwrap(verified)
        plaintext = bytearray(verified.manifest.plaintext_length)
        out = memoryview(plaintext)
        try:
            decrypt_stream_into(self._aead_factory(info.cipher, key), view, info.chunk_size, out)
        except StreamError as exc:
            code = Reason.STREAM_TRUNCATED if exc.truncated else Reason.DIGEST_MISMATCH
            raise BundleRejected(code, f"payload stream: {exc}") from None
        return DecryptedBundle(verified, _split_files(verified.manifest, out))

    def _recipient(self, raw: RawHeader) -> Recipient:
        ours = self._device.keys()
        for recipient in raw.recipients:
            if recipient.recipient_id in ours:
                return recipient
        raise BundleRejected(
            Reason.NOT_A_RECIPIENT, f"bundle is not encrypted for device {self._device.device_id!r}"
        )

    def _unwrap(self, verified: VerifiedManifest) -> bytes:
        recipient = verified.recipient
        key = unwrap_payload_key(
            self._device.keys()[recipient.recipient_id],
            recipient.recipient_id,
            verified.manifest_sha256,
            recipient.ephemeral,
            recipient.wrapped_key,
        )
        if key is None:
            raise BundleRejected(
                Reason.NOT_A_RECIPIENT,
                f"payload key for {recipient.recipient_id!r} does not unwrap with this device key",
            )
        return key

    def _check_hardware(self, manifest: Manifest) -> None:
        if manifest.hardware and self._device.hardware not in manifest.hardware:
            raise BundleRejected(
                Reason.WRONG_HARDWARE,
                f"bundle is for hardware {', '.join(manifest.hardware)}; "
                f"this device is {self._device.hardware or 'unspecified'}",
            )

    def _check_counter(self, manifest: Manifest) -> None:
        highest = self._state.highest(manifest.name)
        if highest is None:
            return
        if manifest.counter < highest and not self._own_slot:
            raise BundleRejected(
                Reason.ROLLBACK,
                f"{manifest.name} release {manifest.counter} is older than installed {highest}",
            )
        if manifest.counter == highest and not self._reopen_installed:
            raise BundleRejected(
                Reason.ALREADY_INSTALLED, f"{manifest.name} release {manifest.counter} is installed"
            )

    def _check_expiry(self, manifest: Manifest) -> None:
        if manifest.expires is None:
            return
        if manifest.expires <= self._now:
            raise BundleRejected(Reason.EXPIRED, f"bundle expired at {manifest.expires}")
        if manifest.expires <= self._state.time_floor:
            raise BundleRejected(
                Reason.CLOCK_BEHIND_FLOOR,
                f"wall clock {self._now} is behind the time floor {self._state.time_floor}; "
                f"by the floor the bundle expired at {manifest.expires}",
            )


def _split_files(manifest: Manifest, plaintext: memoryview) -> Mapping[str, memoryview]:
    files: dict[str, memoryview] = {}
    offset = 0
    for entry in manifest.files:
        part = plaintext[offset : offset + entry.length]
        offset += entry.length
        if not hmac.compare_digest(hashlib.sha256(part).hexdigest(), entry.sha256):
            raise BundleRejected(
                Reason.DIGEST_MISMATCH, f"{entry.name} SHA-256 differs from the manifest"
            )
        files[entry.name] = part.toreadonly()
    return MappingProxyType(files)


def open_bundle(data: bytes | memoryview, verifier: BundleVerifier) -> DecryptedBundle:
    """Verify and decrypt a whole bundle held in memory."""
    verified = verifier.verify_header(data, whole=True)
    return verifier.decrypt(memoryview(data)[verified.header_length :])
