"""Keys, bundles and verifiers for the bundle tests (all real crypto, no fakes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import (
    BundleVerifier,
    DeviceIdentity,
    Limits,
    RecipientKey,
    Release,
    ReleaseState,
    TrustRoot,
    build_bundle,
)
from agent.bundle.crypto import make_aead
from agent.bundle.manifest import parse_manifest

NOW = 1_800_000_000
MODEL = bytes(range(256)) * 800  # 204800 bytes: several chunks and blocks
LABELS = b"zero\none\ntwo\n"


@dataclass
class Calls:
    """Counts what the verifier did: manifest JSON parses and AEAD stream constructions."""

    parses: int = 0
    decryptions: int = 0

    def parser(self, data: bytes, limits: Limits) -> Any:
        self.parses += 1
        return parse_manifest(data, limits)

    def aead(self, cipher: str, key: bytes) -> Any:
        self.decryptions += 1
        return make_aead(cipher, key)


@dataclass
class World:
    """Release keys, two devices (A and B) and helpers to build and verify bundles."""

    release: list[Ed25519PrivateKey] = field(
        default_factory=lambda: [Ed25519PrivateKey.generate() for _ in range(3)]
    )
    device_a: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    device_b: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)

    def bundle(
        self,
        *,
        counter: int = 5,
        signers: Sequence[Ed25519PrivateKey] | None = None,
        recipients: Sequence[RecipientKey] | None = None,
        files: dict[str, bytes] | None = None,
        **release: Any,
    ) -> bytes:
        fields: dict[str, Any] = {"created": NOW - 60, "expires": NOW + 3600, **release}
        return build_bundle(
            Release(name=fields.pop("name", "digits"), counter=counter, **fields),
            files or {"model.tflite": MODEL, "labels.txt": LABELS},
            self.release[:1] if signers is None else signers,
            recipients or [RecipientKey("device-a", self.device_a.public_key())],
        )

    def trust(self, count: int = 1, threshold: int = 1) -> TrustRoot:
        return TrustRoot.from_keys([k.public_key() for k in self.release[:count]], threshold)

    def verifier(
        self,
        *,
        trust: TrustRoot | None = None,
        device: DeviceIdentity | None = None,
        state: ReleaseState | None = None,
        now: float = NOW,
        calls: Calls | None = None,
        limits: Limits | None = None,
        reopen_installed: bool = False,
    ) -> BundleVerifier:
        calls = calls or Calls()
        return BundleVerifier(
            trust or self.trust(),
            device or DeviceIdentity("device-a", self.device_a, "rpi4"),
            state or ReleaseState(),
            now=now,
            limits=limits,
            aead_factory=calls.aead,
            manifest_parser=calls.parser,
            reopen_installed=reopen_installed,
        )


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)
