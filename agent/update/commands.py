"""Signed fleet commands: one schema, two sides (``edge-fleet`` signs, the device verifies).

A command is a DSSE envelope (payload type :data:`COMMAND_PAYLOAD_TYPE`) signed with Ed25519 by
a fleet key -- a role separate from the release keys that sign bundles. Its payload is canonical
JSON::

    {"command": "desired", "device": ID, "seq": N, "issued_at": unix_s, "expires_at": unix_s,
     "bundle": {"id": bid, "header_sha256": hex, "name": .., "counter": .., "size": bytes,
                "blocks": n}}
    {"command": "rollback", "device": ID, "seq": N, "issued_at": unix_s, "expires_at": unix_s}

The device verifies the signatures over the exact payload bytes before parsing it, then asks
the :class:`CommandLedger` -- which the caller persists -- whether the command is new and fresh.

* **One order across kinds.** ``seq`` is monotonic per device over *all* command kinds: a
  command is accepted only when its seq is higher than every command accepted before, of any
  kind, so a rollback signed before the desired command that installed v10 and delivered after
  it is ``replayed``. The fleet uses UNIX time in milliseconds (:func:`fleet_seq`) so several
  managers need no shared counter. The retained ``desired`` command equal to the last accepted
  desired one (same seq, same bytes) is a harmless repeat -- it is delivered again on every
  connect, also after a newer rollback -- never a replay.
* **Freshness.** Every command carries ``issued_at`` and ``expires_at`` (at most
  :data:`MAX_LIFETIME_S` apart). With a trusted wall clock (see :func:`check_fresh`) a command
  issued more than :data:`CLOCK_SKEW_S` in the future is ``not_yet_valid`` and one whose
  ``expires_at`` lies more than :data:`CLOCK_SKEW_S` in the past is ``expired``. A device
  without trusted time yet (first boot without NTP) uses the newest ``issued_at`` it accepted as
  a lower bound on the time: a command that expired before then is ``expired``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import MAX_DEPTH, make_envelope, open_envelope
from agent.bundle.manifest import MAX_COUNTER, Manifest
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
_COMMON_KEYS = {"command", "device", "seq", "issued_at", "expires_at"}
#: How far a device's wall clock may be off the fleet's (seconds), both ways.
CLOCK_SKEW_S = 300
#: The longest a command may be valid (``expires_at - issued_at``): 90 days.
MAX_LIFETIME_S = 90 * 86400
#: How long ``edge-fleet`` makes a desired command valid (the retained one a device that was
#: offline picks up): 30 days. A rollback acts on a connected device: 1 hour.
DESIRED_LIFETIME_S = 30 * 86400
ROLLBACK_LIFETIME_S = 3600
#: A wall clock before 2026-01-01 has not been set (no RTC, no NTP yet): it is not trusted.
MIN_TRUSTED_TIME = 1_767_225_600


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

    def check_header(self, manifest: Manifest, header_length: int) -> None:
        """Refuse (``offer_mismatch``) a verified header that is not the bundle offered."""
        actual = (manifest.name, manifest.counter, len(manifest.payload.blocks))
        size = header_length + manifest.payload.length
        if actual != (self.name, self.counter, self.blocks) or size != self.size:
            raise BundleRejected(
                Reason.OFFER_MISMATCH,
                f"header is {manifest.name} release {manifest.counter}, {actual[2]} blocks, "
                f"{size} bytes; the command said {self.name} release {self.counter}, "
                f"{self.blocks} blocks, {self.size} bytes",
            )

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
    expires_at: int
    bundle: BundleOffer | None = None

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}")
        if not isinstance(self.device, str) or not 0 < len(self.device) <= 128:
            raise ValueError("device must be a device id of 1..128 characters")
        _check_int(self.seq, "seq")
        _check_int(self.issued_at, "issued_at")
        _check_int(self.expires_at, "expires_at")
        if not 0 < self.expires_at - self.issued_at <= MAX_LIFETIME_S:
            raise ValueError(
                f"expires_at must be 1..{MAX_LIFETIME_S} s after issued_at "
                f"(got {self.expires_at - self.issued_at})"
            )
        if (self.bundle is None) != (self.command == COMMAND_ROLLBACK):
            raise ValueError(f"a {self.command} command {_bundle_rule(self.command)}")

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "command": self.command,
            "device": self.device,
            "seq": self.seq,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }
        if self.bundle is not None:
            obj["bundle"] = self.bundle.to_obj()
        return obj

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_obj())

    @classmethod
    def from_json(cls, data: bytes) -> Command:
        """Strictly parse a verified payload. Raises ``ValueError`` naming the problem."""
        raw = loads_strict(data, MAX_COMMAND_BYTES, MAX_DEPTH)
        kind = raw.get("command") if isinstance(raw, dict) else None
        keys = _COMMON_KEYS | ({"bundle"} if kind == COMMAND_DESIRED else set())
        obj = _exact(raw, "command", keys)
        bundle = BundleOffer.from_obj(obj["bundle"]) if "bundle" in obj else None
        return cls(
            obj["command"], obj["device"], obj["seq"], obj["issued_at"], obj["expires_at"], bundle
        )


@dataclass(frozen=True)
class SignedCommand:
    """A command whose signature verified; ``digest`` is the SHA-256 of its exact payload."""

    command: Command
    digest: str
    signers: frozenset[bytes]


def fleet_seq(now: float) -> int:
    """The sequence number the fleet gives a command issued at ``now``: UNIX milliseconds."""
    return int(now * 1000)


def desired_command(
    device: str, offer: BundleOffer, now: float, lifetime_s: int = DESIRED_LIFETIME_S
) -> Command:
    issued = int(now)
    return Command(COMMAND_DESIRED, device, fleet_seq(now), issued, issued + lifetime_s, offer)


def rollback_command(device: str, now: float, lifetime_s: int = ROLLBACK_LIFETIME_S) -> Command:
    issued = int(now)
    return Command(COMMAND_ROLLBACK, device, fleet_seq(now), issued, issued + lifetime_s)


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


def check_fresh(command: Command, wall: float, floor: int, skew: int = CLOCK_SKEW_S) -> None:
    """Refuse a command that is not valid now (pure).

    The wall clock is trusted when it is past :data:`MIN_TRUSTED_TIME` and not behind ``floor``
    (the newest ``issued_at`` accepted) by more than ``skew``; otherwise the device has no
    trusted time and ``floor`` stands in for now (only expiry can then be checked).
    Raises :class:`BundleRejected` ``not_yet_valid`` or ``expired``.
    """
    kind = command.command
    if wall >= MIN_TRUSTED_TIME and wall >= floor - skew:
        if command.issued_at > wall + skew:
            raise BundleRejected(
                Reason.NOT_YET_VALID,
                f"{kind} command issued at {command.issued_at}, {command.issued_at - int(wall)} s "
                f"ahead of this device's clock (allowed skew {skew} s)",
            )
        if command.expires_at + skew <= wall:
            raise BundleRejected(
                Reason.EXPIRED,
                f"{kind} command expired at {command.expires_at}, {int(wall) - command.expires_at}"
                f" s ago by this device's clock (allowed skew {skew} s)",
            )
    elif command.expires_at <= floor:
        raise BundleRejected(
            Reason.EXPIRED,
            f"{kind} command expired at {command.expires_at}, before the newest command this "
            f"device accepted (issued at {floor}); its wall clock {int(wall)} is not trusted",
        )


@dataclass(frozen=True)
class CommandLedger:
    """The device's replay and freshness defence (a pure value the caller persists).

    ``seq``: the highest seq accepted, over every command kind (-1: none yet). ``desired``: the
    last accepted desired command, whose retained copy is a repeat. ``time_floor``: the newest
    ``issued_at`` accepted, the device's lower bound on the time.
    """

    seq: int = -1
    desired: LastCommand | None = None
    time_floor: int = 0

    def is_new(self, signed: SignedCommand) -> bool:
        """``True`` for a command newer than every accepted one, ``False`` for the last desired
        command delivered again (retained); raises :class:`BundleRejected` ``replayed`` for any
        other command not newer than the newest accepted one, of whatever kind."""
        command = signed.command
        last = self.desired
        if (
            command.command == COMMAND_DESIRED
            and last is not None
            and (command.seq, signed.digest) == (last.seq, last.digest)
        ):
            return False
        if command.seq > self.seq:
            return True
        raise BundleRejected(
            Reason.REPLAYED,
            f"{command.command} command seq {command.seq} is not newer than the last accepted "
            f"command (seq {self.seq}, any kind)",
        )

    def check_fresh(self, signed: SignedCommand, wall: float) -> None:
        check_fresh(signed.command, wall, self.time_floor)

    def accept(self, signed: SignedCommand) -> CommandLedger:
        """The ledger after accepting ``signed``; call :meth:`is_new` and :meth:`check_fresh`
        first."""
        command = signed.command
        last = LastCommand(command.seq, signed.digest)
        return CommandLedger(
            max(self.seq, command.seq),
            last if command.command == COMMAND_DESIRED else self.desired,
            max(self.time_floor, command.issued_at),
        )

    def to_json(self) -> bytes:
        desired = self.desired
        return dumps_canonical(
            {
                "version": 2,
                "seq": self.seq,
                "desired": None
                if desired is None
                else {"seq": desired.seq, "digest": desired.digest},
                "time_floor": self.time_floor,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> CommandLedger:
        """Parse a saved ledger (version 1, per kind, is migrated). Raises ``ValueError``."""
        raw = loads_strict(data, MAX_COMMAND_BYTES)
        if isinstance(raw, dict) and raw.get("version") == 1:
            return cls._from_v1(raw)
        obj = _exact(raw, "ledger", {"version", "seq", "desired", "time_floor"})
        if obj["version"] != 2:
            raise ValueError("ledger needs version 1 or 2")
        seq = obj["seq"]
        if seq != -1:
            _check_int(seq, "seq")
        desired = None if obj["desired"] is None else _last(obj["desired"], "ledger.desired")
        return cls(seq, desired, _check_int(obj["time_floor"], "time_floor"))

    @classmethod
    def _from_v1(cls, raw: dict[str, Any]) -> CommandLedger:
        obj = _exact(raw, "ledger", {"version", "last"})
        if not isinstance(obj["last"], dict):
            raise ValueError("ledger needs version 1 and a last object")
        last: dict[str, LastCommand] = {}
        for kind, entry in obj["last"].items():
            if kind not in COMMANDS:
                raise ValueError(f"ledger entry {kind!r} is not a command kind with a digest")
            last[kind] = _last(entry, f"ledger.last.{kind}")
        seq = max((entry.seq for entry in last.values()), default=-1)
        return cls(seq, last.get(COMMAND_DESIRED))


def _last(value: object, where: str) -> LastCommand:
    fields = _exact(value, where, {"seq", "digest"})
    if not isinstance(fields["digest"], str):
        raise ValueError(f"{where} is not a command kind with a digest")
    return LastCommand(_check_int(fields["seq"], "seq"), fields["digest"])


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
