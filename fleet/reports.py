"""Device-signed reports in ``edge-fleet status``: each device's retained
``<prefix>/<id>/report`` verified with the report key the registry holds for it
(:mod:`agent.update.report`), the highest counter verified so far remembered in
``reports.json`` beside the registry.

A device's report is one of: ``verified`` (the signature is the registered key's, the counter is
not below the highest seen and it agrees with the status ``model``), ``missing`` (nothing
retained), ``unsigned`` (no signature: the device has no ``keys.report_key``), ``no_key`` (the
registry has no report key for it), ``invalid`` (does not verify: another key, tampered,
malformed), ``older`` (its counter went back: a replayed report) or ``disagrees`` (verified,
but the status says another model). Everything but ``verified`` is flagged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.bundle.envelope import open_envelope
from agent.errors import BundleRejected, ConfigError
from agent.fsutil import atomic_write, read_capped
from agent.mqtt.events import BoundedQueue, IncomingMessage
from agent.mqtt.messages import ModelRef
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import TopicFilter
from agent.update.report import (
    MAX_REPORT_BYTES,
    REPORT_PAYLOAD_TYPE,
    Report,
    open_report,
    read_unverified,
)
from fleet.connection import collect

MAX_SEEN_BYTES = 16 << 20


@dataclass(frozen=True)
class ReportCheck:
    state: str
    report: Report | None = None
    detail: str = ""

    @property
    def flagged(self) -> bool:
        return self.state != "verified"

    def label(self) -> str:
        if self.state == "verified" and self.report is not None:
            return f"verified v{self.report.release} #{self.report.counter}"
        return f"{self.state}: {self.detail}" if self.detail else self.state

    def to_obj(self) -> dict[str, object]:
        report = None if self.report is None else {"counter": self.report.counter,
                                                   "bundle": self.report.bundle,
                                                   "name": self.report.name,
                                                   "release": self.report.release,
                                                   "sha256": self.report.sha256,
                                                   "previous": self.report.previous,
                                                   "root_version": self.report.root_version,
                                                   "time": self.report.time}  # fmt: skip
        return {"state": self.state, "detail": self.detail, "report": report}


def check_report(
    device: str,
    envelope: bytes | None,
    key: Ed25519PublicKey | None,
    model: ModelRef | None,
    highest_seen: int | None,
) -> ReportCheck:
    """Pure: what the fleet makes of one device's retained report."""
    if not envelope:
        return ReportCheck("missing", detail="no retained report")
    try:
        _, signatures = open_envelope(envelope, REPORT_PAYLOAD_TYPE, MAX_REPORT_BYTES, "report")
        if key is None:
            return ReportCheck("no_key", read_unverified(envelope), "no report key registered")
        if not signatures:
            return ReportCheck("unsigned", read_unverified(envelope), "no keys.report_key")
        report = open_report(envelope, key, device)
    except BundleRejected as exc:
        return ReportCheck("invalid", detail=str(exc))
    if highest_seen is not None and report.counter < highest_seen:
        detail = f"counter {report.counter} is below {highest_seen} already verified (replayed)"
        return ReportCheck("older", report, detail)
    return _against_status(report, model)


def _against_status(report: Report, model: ModelRef | None) -> ReportCheck:
    if model is None or (model.name, _int(model.version), model.sha256) == report.running():
        return ReportCheck("verified", report)
    name, release, sha = report.running()
    detail = (
        f"report says {name} v{release} ({(sha or '-')[:12]}), "
        f"status says {model.name} v{model.version} ({model.sha256[:12]})"
    )
    return ReportCheck("disagrees", report, detail)


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def read_reports(client: Subscriber, prefix: str) -> dict[str, bytes]:
    """Every retained ``<prefix>/+/report``, by device id."""
    inbox: BoundedQueue[IncomingMessage] = BoundedQueue(100_000)
    subscription = client.subscribe(
        TopicFilter(f"{prefix}/+/report"), max_payload=MAX_REPORT_BYTES, messages=inbox
    )
    found: dict[str, bytes] = {}
    for message in collect(subscription, first_s=0.5, quiet_s=0.3):
        parts = message.topic.split("/")
        if len(parts) >= 3 and parts[-1] == "report" and message.payload:
            found[parts[-2]] = message.payload
    client.unsubscribe(subscription)
    return found


def seen_path(registry: Path) -> Path:
    return registry.with_name("reports.json")


def load_seen(path: Path) -> dict[str, int]:
    """Device -> the highest report counter verified so far (empty when none)."""
    try:
        obj = json.loads(read_capped(path, MAX_SEEN_BYTES))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError("reports", f"{path}: {exc}") from None
    if not isinstance(obj, dict):
        return {}
    return {str(d): c for d, c in obj.items() if isinstance(c, int) and not isinstance(c, bool)}


def save_seen(path: Path, seen: Mapping[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(dict(sorted(seen.items())), indent=1) + "\n").encode(), 0o644)
