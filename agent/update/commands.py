"""Signed fleet commands: one schema, two sides (``edge-fleet`` signs, the device verifies).

A command is a DSSE envelope (payload type :data:`COMMAND_PAYLOAD_TYPE`) signed with Ed25519 by
a fleet key -- a role separate from the release keys that sign bundles. Its payload is canonical
JSON::

    {"command": "desired", "device": ID, "seq": N, "issued_at": unix_s,
     "bundle": {"id": bid, "header_sha256": hex, "name": .., "counter": .., "size": bytes,
                "blocks": n}}
    {"command": "rollback", "device": ID, "seq": N, "issued_at": unix_s}

The device verifies the signatures over the exact payload bytes before parsing it
(:func:`open_command`), then asks a :class:`CommandLedger` -- a pure value the caller persists --
whether the sequence number is new. ``seq`` is monotonic per device and per command kind; the
fleet uses UNIX time in milliseconds (:func:`fleet_seq`) so several managers need no shared
counter. A ``desired`` command equal to the last accepted one (same seq, same bytes) is a harmless
repeat -- it is retained and delivered again on every connect -- while a lower seq, the same seq
with other bytes, or any ``rollback`` (never retained) not newer than the last is ``replayed``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import make_envelope, open_envelope
from agent.bundle.manifest import MAX_COUNTER
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason
from agent.update.protocol import COMMAND_DESIRED, COMMAND_ROLLBACK, COMMANDS, bundle_id

COMMAND_PAYLOAD_TYPE = "application/vnd.edge-agent.command+json"
MAX_COMMAND_BYTES = 16 << 10
MAX_SEQ = MAX_COUNTER  # 2**53 - 1: exact in every JSON implementation
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_COMMON_KEYS = {"command", "device", "seq", "issued_at"}


@dataclass(frozen=True)
class BundleOffer:
    """The bundle a ``desired`` command names; ``id`` and ``header_sha256`` bind the header."""

    id: str
    header_sha256: str
    name: str
    counter: int
    size: int
    blocks: int

    def __post_init__(self) -> None:
        if not _HEX64.fullmatch(self.header_sha256):
            raise ValueError("bundle.header_sha256 must be 64 lower-case hex digits")
        if self.id != self.header_sha256[: len(self.id)] or len(self.id) != 32:
            raise ValueError("bundle.id must be the first 32 hex digits of bundle.header_sha256")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"bundle.name {self.name!r} is not a valid model name")
        for key in ("counter", "size", "blocks"):
            _check_int(getattr(self, key), f"bundle.{key}")

    @classmethod
    def for_header(
        cls, header: bytes, name: str, counter: int, size: int, blocks: int
    ) -> BundleOffer:
        """The offer for a bundle whose header bytes are ``header`` (what the fleet publishes)."""
        digest = hashlib.sha256(header).hexdigest()
        return cls(bundle_id(header), digest, name, counter, size, blocks)

    def header_matches(self, header: bytes) -> bool:
        return hashlib.sha256(header).hexdigest() == self.header_sha256

    def to_obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "header_sha256": self.header_sha256,
            "name": self.name,
            "counter": self.counter,
            "size": self.size,
            "blocks": self.blocks,
        }

    @classmethod
    def from_obj(cls, value: object) -> BundleOffer:
        obj = _exact(value, "bundle", {"id", "header_sha256", "name", "counter", "size", "blocks"})
        for key in ("id", "header_sha256", "name"):
            if not isinstance(obj[key], str):
                raise ValueError(f"bundle.{key} must be a string")
        return cls(**obj)


@dataclass(frozen=True)
class Command:
    """A state-changing command for one device. ``bundle`` is set exactly for ``desired``."""

    command: str
    device: str
    seq: int
    issued_at: int
    bundle: BundleOffer | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}")
        if not isinstance(self.device, str) or not 0 < len(self.device) <= 128:
            raise ValueError("device must be a device id of 1..128 characters")
        _check_int(self.seq, "seq")
        _check_int(self.issued_at, "issued_at")
        if (self.bundle is None) != (self.command == COMMAND_ROLLBACK):
            raise ValueError(f"a {self.command} command {_bundle_rule(self.command)}")

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "command": self.command,
            "device": self.device,
            "seq": self.seq,
            "issued_at": self.issued_at,
        }
        if self.bundle is not None:
            obj["bundle"] = self.bundle.to_obj()
        return obj

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_obj())

    @classmethod
    def from_json(cls, data: bytes) -> Command:
        """Strictly parse a verified payload. Raises ``ValueError`` naming the problem."""
        raw = loads_strict(data, MAX_COMMAND_BYTES)
        kind = raw.get("command") if isinstance(raw, dict) else None
        keys = _COMMON_KEYS | ({"bundle"} if kind == COMMAND_DESIRED else set())
        obj = _exact(raw, "command", keys)
        bundle = BundleOffer.from_obj(obj["bundle"]) if "bundle" in obj else None
        return cls(obj["command"], obj["device"], obj["seq"], obj["issued_at"], bundle)


@dataclass(frozen=True)
class SignedCommand:
    """A command whose signature verified; ``digest`` is the SHA-256 of its exact payload."""

    command: Command
    digest: str
    signers: frozenset[bytes]


def fleet_seq(now: float) -> int:
    """The sequence number the fleet gives a command issued at ``now``: UNIX milliseconds."""
    return int(now * 1000)


def desired_command(device: str, offer: BundleOffer, now: float) -> Command:
    return Command(COMMAND_DESIRED, device, fleet_seq(now), int(now), offer)


def rollback_command(device: str, now: float) -> Command:
    return Command(COMMAND_ROLLBACK, device, fleet_seq(now), int(now))


def sign_command(command: Command, signers: Sequence[Ed25519PrivateKey]) -> bytes:
    """The envelope to publish: the canonical payload signed by every key in ``signers``."""
    if not signers:
        raise ValueError("a command needs at least one fleet signing key")
    return make_envelope(COMMAND_PAYLOAD_TYPE, command.to_json(), signers)


def open_command(envelope: bytes, fleet: TrustRoot, device_id: str) -> SignedCommand:
    """Verify a command envelope for ``device_id``: signatures first, then the payload.

    Raises :class:`BundleRejected` with ``malformed``, ``signature_invalid``,
    ``threshold_not_met`` or ``wrong_device``. Replay is the ledger's decision.
    """
    payload, signatures = open_envelope(
        envelope, COMMAND_PAYLOAD_TYPE, MAX_COMMAND_BYTES, "command"
    )
    signers = fleet.verify(COMMAND_PAYLOAD_TYPE, payload, signatures)
    try:
        command = Command.from_json(payload)
    except (StrictJSONError, ValueError, TypeError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"command payload: {exc}") from None
    if command.device != device_id:
        raise BundleRejected(
            Reason.WRONG_DEVICE, f"{command.command} command is for device {command.device!r}"
        )
    return SignedCommand(command, hashlib.sha256(payload).hexdigest(), signers)


@dataclass(frozen=True)
class LastCommand:
    seq: int
    digest: str


@dataclass(frozen=True)
class CommandLedger:
    """The last accepted command of each kind: the device's replay defence (a pure value)."""

    last: Mapping[str, LastCommand] = field(default_factory=lambda: MappingProxyType({}))

    def is_new(self, signed: SignedCommand) -> bool:
        """``True`` for a command newer than the last of its kind, ``False`` for the same retained
        ``desired`` command delivered again; raises :class:`BundleRejected` ``replayed`` for
        anything older, and for a ``rollback`` sent again (it is never retained)."""
        command = signed.command
        previous = self.last.get(command.command)
        if previous is None or command.seq > previous.seq:
            return True
        retained = command.command == COMMAND_DESIRED
        if retained and command.seq == previous.seq and signed.digest == previous.digest:
            return False
        raise BundleRejected(
            Reason.REPLAYED,
            f"{command.command} command seq {command.seq} is not newer than the last accepted "
            f"seq {previous.seq}",
        )

    def accept(self, signed: SignedCommand) -> CommandLedger:
        """The ledger after accepting ``signed``; call :meth:`is_new` first."""
        last = dict(self.last)
        last[signed.command.command] = LastCommand(signed.command.seq, signed.digest)
        return CommandLedger(MappingProxyType(last))

    def to_json(self) -> bytes:
        return dumps_canonical(
            {
                "version": 1,
                "last": {k: {"seq": v.seq, "digest": v.digest} for k, v in self.last.items()},
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> CommandLedger:
        """Parse a saved ledger. Raises ``ValueError`` when it is not one."""
        obj = _exact(loads_strict(data, MAX_COMMAND_BYTES), "ledger", {"version", "last"})
        if obj["version"] != 1 or not isinstance(obj["last"], dict):
            raise ValueError("ledger needs version 1 and a last object")
        last: dict[str, LastCommand] = {}
        for kind, entry in obj["last"].items():
            fields = _exact(entry, f"ledger.last.{kind}", {"seq", "digest"})
            if kind not in COMMANDS or not isinstance(fields["digest"], str):
                raise ValueError(f"ledger entry {kind!r} is not a command kind with a digest")
            last[kind] = LastCommand(_check_int(fields["seq"], "seq"), fields["digest"])
        return cls(MappingProxyType(last))


def _exact(value: object, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")
    if set(value) != keys:
        odd = sorted(set(value) ^ keys)
        raise ValueError(f"{where}: missing or unknown key {odd[0]!r}")
    return value


def _check_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise ValueError(f"{where} must be an integer in 0..{MAX_SEQ}")
    return value


def _bundle_rule(kind: str) -> str:
    return "carries no bundle" if kind == COMMAND_ROLLBACK else "must name a bundle"
