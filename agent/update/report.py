"""Device-signed reports (Uptane's version manifest): what the device has installed and is
running, signed with its own Ed25519 report key, published retained on
``<prefix>/<device>/report``.

A report is a DSSE envelope (payload type :data:`REPORT_PAYLOAD_TYPE`) whose payload is
canonical JSON::

    {"type": "edge-agent/report", "device": "cam-01", "counter": 7, "time": unix_s,
     "bundle": id | null, "name": str | null, "release": int | null, "sha256": hex | null,
     "previous": id | null, "root_version": int | null}

``counter`` grows by one with every report the device publishes (persisted), so the fleet can
tell a replayed older report from the current one. A device without ``keys.report_key``
publishes the same payload with no signature (and ``report_unsigned`` in its status errors).

Pure: bytes in, values or :class:`BundleRejected` out.
"""

from __future__ import annotations

import binascii
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle.envelope import make_envelope, open_envelope
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.reasons import Reason

REPORT_PAYLOAD_TYPE = "application/vnd.edge-agent.report.v1+json"
REPORT_TYPE = "edge-agent/report"
MAX_REPORT_BYTES = 8 << 10
_INTS = ("counter", "time")
_OPTIONAL_STRS = ("bundle", "name", "sha256", "previous")
_OPTIONAL_INTS = ("release", "root_version")


@dataclass(frozen=True)
class Report:
    """What a device says it runs; ``bundle`` .. ``root_version`` are ``None`` when unknown."""

    device: str
    counter: int
    time: int
    bundle: str | None = None
    name: str | None = None
    release: int | None = None
    sha256: str | None = None
    previous: str | None = None
    root_version: int | None = None

    def payload(self) -> bytes:
        return dumps_canonical({"type": REPORT_TYPE, **asdict(self)})

    def running(self) -> tuple[str | None, int | None, str | None]:
        """What the status ``model`` must agree with: name, release counter, sha256."""
        return self.name, self.release, self.sha256


def sign_report(report: Report, key: Ed25519PrivateKey | None) -> bytes:
    """The report envelope, signed by ``key`` (no signature without one)."""
    return make_envelope(REPORT_PAYLOAD_TYPE, report.payload(), [] if key is None else [key])


def open_report(envelope: bytes, key: Ed25519PublicKey, device: str) -> Report:
    """The report of ``device``, verified with its registered report key before parsing.

    Raises :class:`BundleRejected`: ``malformed``, ``signature_invalid`` (unsigned, another
    key, tampered), ``wrong_device`` (a valid report of another device)."""
    payload, signatures = open_envelope(envelope, REPORT_PAYLOAD_TYPE, MAX_REPORT_BYTES, "report")
    TrustRoot.from_keys([key], 1, role="report").verify(REPORT_PAYLOAD_TYPE, payload, signatures)
    report = parse_report(payload)
    if report.device != device:
        raise BundleRejected(
            Reason.WRONG_DEVICE, f"report of device {report.device!r}, expected {device!r}"
        )
    return report


def read_unverified(envelope: bytes) -> Report:
    """The payload of a report without checking any signature (what an unsigned device says)."""
    payload, _ = open_envelope(envelope, REPORT_PAYLOAD_TYPE, MAX_REPORT_BYTES, "report")
    return parse_report(payload)


def parse_report(payload: bytes) -> Report:
    try:
        obj = loads_strict(payload, MAX_REPORT_BYTES, 4)
        fields = {"type", "device", *_INTS, *_OPTIONAL_STRS, *_OPTIONAL_INTS}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise ValueError(f"payload needs exactly {', '.join(sorted(fields))}")
        if obj.pop("type") != REPORT_TYPE:
            raise ValueError(f"type must be {REPORT_TYPE}")
        if not isinstance(obj["device"], str):
            raise ValueError("device must be a string")
        for name in _INTS:
            if not _is_int(obj[name]) or obj[name] < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        for name in _OPTIONAL_STRS:
            if obj[name] is not None and not isinstance(obj[name], str):
                raise ValueError(f"{name} must be a string or null")
        for name in _OPTIONAL_INTS:
            if obj[name] is not None and not _is_int(obj[name]):
                raise ValueError(f"{name} must be an integer or null")
        return Report(**obj)
    except (StrictJSONError, ValueError, binascii.Error, TypeError) as exc:
        raise BundleRejected(Reason.MALFORMED, f"report: {exc}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
