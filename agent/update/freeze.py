"""Freeze detection: the fleet republishes a signed timestamp; a device that stops receiving
fresh ones knows it is being kept from updates (a broker or network withholding messages).

The timestamp is a DSSE envelope (payload type :data:`TIMESTAMP_PAYLOAD_TYPE`) signed by the
fleet keys (to their threshold), retained on ``<prefix>/trust/timestamp``::

    {"type": "edge-agent/timestamp", "issued_at": unix_s, "expires": unix_s}

A timestamp is accepted when its signatures verify, it is newer than the last accepted one and
it has not expired (``CLOCK_SKEW_S`` allowed). :meth:`FreezeWatch.silent_s` is how long the
device has gone without one (monotonic clock, so a wrong wall clock cannot hide it); past the
configured bound the device reports ``fleet_silent_s`` in its status ``errors``. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.envelope import MAX_DEPTH, make_envelope, open_envelope
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason
from agent.update.commands import CLOCK_SKEW_S, MIN_TRUSTED_TIME

TIMESTAMP_PAYLOAD_TYPE = "application/vnd.edge-agent.timestamp.v1+json"
TIMESTAMP_TYPE = "edge-agent/timestamp"
MAX_TIMESTAMP_BYTES = 4096


@dataclass(frozen=True)
class Timestamp:
    issued_at: int
    expires: int


def make_timestamp(issued_at: int, expires: int, signers: Sequence[Ed25519PrivateKey]) -> bytes:
    payload = {"type": TIMESTAMP_TYPE, "issued_at": issued_at, "expires": expires}
    return make_envelope(TIMESTAMP_PAYLOAD_TYPE, dumps_canonical(payload), signers)


def open_timestamp(envelope: bytes, fleet: TrustRoot) -> Timestamp:
    """Verify, then parse. Raises :class:`BundleRejected`."""
    payload, signatures = open_envelope(
        envelope, TIMESTAMP_PAYLOAD_TYPE, MAX_TIMESTAMP_BYTES, "timestamp"
    )
    fleet.verify(TIMESTAMP_PAYLOAD_TYPE, payload, signatures)
    try:
        obj = loads_strict(payload, MAX_TIMESTAMP_BYTES, MAX_DEPTH)
        if not isinstance(obj, dict) or set(obj) != {"type", "issued_at", "expires"}:
            raise ValueError("payload needs exactly type, issued_at and expires")
        issued, expires = obj["issued_at"], obj["expires"]
        if obj["type"] != TIMESTAMP_TYPE or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (issued, expires)
        ):
            raise ValueError(f"type must be {TIMESTAMP_TYPE}, times positive integers")
    except (StrictJSONError, ValueError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"timestamp payload: {exc}") from None
    return Timestamp(issued, expires)


@dataclass(frozen=True)
class FreezeWatch:
    """The last accepted timestamp and when (monotonic) it arrived; ``started`` when none yet."""

    started: float
    last: Timestamp | None = None
    seen: float | None = None

    def observe(self, stamp: Timestamp, wall: float, mono: float) -> FreezeWatch:
        """The watch after ``stamp``; the same one for a repeat (the retained copy again).
        Raises :class:`BundleRejected` ``replayed`` (older) or ``expired``."""
        if self.last is not None and stamp.issued_at <= self.last.issued_at:
            if stamp == self.last:
                return self
            raise BundleRejected(
                Reason.REPLAYED,
                f"timestamp issued at {stamp.issued_at} is not newer than {self.last.issued_at}",
            )
        if wall >= MIN_TRUSTED_TIME and stamp.expires + CLOCK_SKEW_S <= wall:
            raise BundleRejected(
                Reason.EXPIRED, f"timestamp expired at {stamp.expires}; the clock says {int(wall)}"
            )
        return FreezeWatch(self.started, stamp, mono)

    def silent_s(self, mono: float) -> float:
        """Seconds without a fresh signed timestamp (since start-up when none arrived yet)."""
        return mono - (self.seen if self.seen is not None else self.started)
