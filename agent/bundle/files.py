"""File adapter for key files and bundles: capped reads, 0600 private keys, no overwrites."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle.container import Limits
from agent.bundle.keys import (
    MAX_KEY_FILE,
    DevicePublicKey,
    decode_device_private,
    decode_device_public,
    decode_release_public,
)
from agent.errors import InputError
from agent.fsutil import atomic_write, read_capped


def read_input(path: Path, max_bytes: int, what: str) -> bytes:
    """A user-supplied file, refused before reading when larger than ``max_bytes``."""
    try:
        return read_capped(Path(path), max_bytes)
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None


def read_bundle(path: Path, limits: Limits) -> bytes:
    return read_input(path, limits.max_header + limits.max_payload, "bundle")


def read_release_public(path: Path) -> Ed25519PublicKey:
    return decode_release_public(read_input(path, MAX_KEY_FILE, "public key"), str(path))


def read_device_public(path: Path) -> DevicePublicKey:
    return decode_device_public(read_input(path, MAX_KEY_FILE, "device public key"), str(path))


def read_device_private(path: Path) -> X25519PrivateKey:
    return decode_device_private(read_input(path, MAX_KEY_FILE, "device key"), str(path))


def write_key_pair(
    directory: Path, stem: str, private_pem: bytes, public: bytes
) -> tuple[Path, Path]:
    """Write ``stem.key`` (mode 0600) and ``stem.pub``; refuse to replace existing keys."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{stem}.key", directory / f"{stem}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path} already exists; refusing to overwrite a key")
    atomic_write(private_path, private_pem, 0o600)
    atomic_write(public_path, public, 0o644)
    if os.stat(private_path).st_mode & 0o077:
        raise InputError(f"{private_path} is readable by others")
    return private_path, public_path
