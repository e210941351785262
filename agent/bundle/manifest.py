"""The manifest: one schema the converter writes and the agent reads.

It is canonical JSON (sorted keys, compact) signed as exact bytes; the reader never
re-serializes it. :func:`parse_manifest` is only ever called on bytes whose signatures verified,
and it is strict: duplicate keys, unknown keys, wrong types and inconsistent sizes are
``malformed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from agent.bundle.container import Limits
from agent.bundle.crypto import CIPHERS, ciphertext_length
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason
from agent.schema.meta import MetadataError, ModelMetadata

FORMAT = 1
MANIFEST_TYPE = "edge-agent/model-bundle"
FILE_NAMES = (
    "model.tflite", "model_cpu.tflite", "metadata.json", "labels.txt", "canary.npz",
    # the earlier stages of a model chain (metadata.stages), signed with the rest
    "stage_1.tflite", "stage_2.tflite", "stage_3.tflite", "stage_4.tflite",
)  # fmt: skip
REQUIRED_FILE = "model.tflite"
MAX_COUNTER = (1 << 53) - 1
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HARDWARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MANIFEST_KEYS = {
    "format", "type", "name", "counter", "hardware", "created", "expires", "files", "payload",
    "metadata",
}  # fmt: skip


@dataclass(frozen=True)
class FileEntry:
    name: str
    length: int
    sha256: str


@dataclass(frozen=True)
class PayloadInfo:
    """The encrypted payload: cipher, stream chunking, and hashes of the ciphertext."""

    cipher: str
    chunk_size: int
    length: int
    sha256: str
    block_size: int
    blocks: tuple[str, ...]

    def block_range(self, index: int) -> tuple[int, int]:
        start = index * self.block_size
        return start, min(start + self.block_size, self.length)


@dataclass(frozen=True)
class Manifest:
    name: str
    counter: int
    hardware: tuple[str, ...]
    created: int
    expires: int | None
    files: tuple[FileEntry, ...]
    payload: PayloadInfo
    metadata: ModelMetadata | None = None

    @property
    def plaintext_length(self) -> int:
        return sum(f.length for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "type": MANIFEST_TYPE,
            "name": self.name,
            "counter": self.counter,
            "hardware": list(self.hardware),
            "created": self.created,
            "expires": self.expires,
            "files": [{"name": f.name, "length": f.length, "sha256": f.sha256} for f in self.files],
            "payload": {
                "cipher": self.payload.cipher,
                "chunk_size": self.payload.chunk_size,
                "length": self.payload.length,
                "sha256": self.payload.sha256,
                "block_size": self.payload.block_size,
                "blocks": list(self.payload.blocks),
            },
            "metadata": None if self.metadata is None else self.metadata.to_dict(),
        }

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_dict())


def parse_manifest(data: bytes, limits: Limits) -> Manifest:
    """Strictly parse verified manifest bytes; every problem is ``malformed``."""
    try:
        raw = loads_strict(data, limits.max_header)
        return _manifest(raw, limits)
    except (StrictJSONError, MetadataError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"manifest: {exc}") from None


def _manifest(raw: object, limits: Limits) -> Manifest:
    obj = _object(raw, "manifest")
    _exact_keys(obj, "manifest", _MANIFEST_KEYS)
    if obj["format"] != FORMAT or obj["type"] != MANIFEST_TYPE:
        raise BundleRejected(Reason.MALFORMED, "manifest: unsupported format or type")
    name = _matching(obj["name"], _NAME, "manifest.name")
    counter = _int(obj["counter"], "manifest.counter", 0, MAX_COUNTER)
    hardware = tuple(
        _matching(h, _HARDWARE, "manifest.hardware[]") for h in _list(obj["hardware"], "hardware")
    )
    created = _int(obj["created"], "manifest.created", 0, MAX_COUNTER)
    expires = (
        None if obj["expires"] is None else _int(obj["expires"], "manifest.expires", 0, MAX_COUNTER)
    )
    files = _files(obj["files"], limits)
    payload = _payload(obj["payload"], limits)
    metadata = None if obj["metadata"] is None else ModelMetadata.from_dict(obj["metadata"])
    manifest = Manifest(name, counter, hardware, created, expires, files, payload, metadata)
    expected = ciphertext_length(manifest.plaintext_length, payload.chunk_size)
    if payload.length != expected:
        raise BundleRejected(
            Reason.MALFORMED,
            f"manifest: payload length {payload.length} does not fit files of "
            f"{manifest.plaintext_length} bytes (expected {expected})",
        )
    return manifest


def _files(value: object, limits: Limits) -> tuple[FileEntry, ...]:
    items = _list(value, "files")
    if len(items) > limits.max_files:
        raise BundleRejected(Reason.TOO_LARGE, f"{len(items)} files, limit is {limits.max_files}")
    files = []
    for item in items:
        obj = _object(item, "manifest.files[]")
        _exact_keys(obj, "manifest.files[]", {"name", "length", "sha256"})
        name = obj["name"]
        if name not in FILE_NAMES:
            raise BundleRejected(Reason.MALFORMED, f"manifest: unknown file name {name!r}")
        length = _int(obj["length"], f"manifest.files[{name}].length", 0, limits.max_payload)
        files.append(FileEntry(name, length, _matching(obj["sha256"], _HEX64, "files[].sha256")))
    names = [f.name for f in files]
    if len(set(names)) != len(names) or REQUIRED_FILE not in names:
        raise BundleRejected(
            Reason.MALFORMED, "manifest: files must be distinct and include model.tflite"
        )
    return tuple(files)


def _payload(value: object, limits: Limits) -> PayloadInfo:
    obj = _object(value, "manifest.payload")
    keys = {"cipher", "chunk_size", "length", "sha256", "block_size", "blocks"}
    _exact_keys(obj, "manifest.payload", keys)
    cipher = obj["cipher"]
    if cipher not in CIPHERS:
        raise BundleRejected(Reason.MALFORMED, f"manifest: unknown cipher {cipher!r}")
    chunk_size = _int(obj["chunk_size"], "manifest.payload.chunk_size", 1 << 10, 1 << 24)
    length = _int(obj["length"], "manifest.payload.length", 0, limits.max_payload)
    block_size = _int(obj["block_size"], "manifest.payload.block_size", 1 << 10, 1 << 26)
    blocks = _list(obj["blocks"], "payload.blocks")
    if len(blocks) > limits.max_blocks or len(blocks) != -(-length // block_size):
        raise BundleRejected(
            Reason.MALFORMED,
            f"manifest: {len(blocks)} block hashes for {length} bytes in {block_size}",
        )
    return PayloadInfo(
        cipher,
        chunk_size,
        length,
        _matching(obj["sha256"], _HEX64, "manifest.payload.sha256"),
        block_size,
        tuple(_matching(b, _HEX64, "manifest.payload.blocks[]") for b in blocks),
    )


def _object(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BundleRejected(Reason.MALFORMED, f"{where} must be an object")
    return cast(dict[str, Any], raw)


def _exact_keys(obj: dict[str, Any], where: str, keys: set[str]) -> None:
    if set(obj) != keys:
        odd = sorted(set(obj) ^ keys)
        raise BundleRejected(Reason.MALFORMED, f"{where}: missing or unknown key {odd[0]!r}")


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise BundleRejected(Reason.MALFORMED, f"manifest.{where} must be a list")
    return value


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BundleRejected(Reason.MALFORMED, f"{where} must be an integer in {low}..{high}")
    return value


def _matching(value: object, pattern: re.Pattern[str], where: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BundleRejected(Reason.MALFORMED, f"{where} has an invalid value {value!r}")
    return value
