"""Publishing the device's signed report (:mod:`agent.update.report`) on
``<prefix>/<device>/report`` (retained): at start-up and whenever what it runs changes (model,
release, sha256, trust root version). Runs on the loop thread, from the status reporter.

The report counter is persisted in ``state_dir/report_counter`` (atomic, 0600) *before* the
report is published, so it never goes back across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.keys import decode_release_private
from agent.config import AgentConfig
from agent.errors import EdgeError, Rejected
from agent.fsutil import atomic_write, read_capped
from agent.model.active import ActiveModel
from agent.model.slots import SlotStore
from agent.mqtt.ports import Publisher
from agent.mqtt.topics import Topic
from agent.secrets import FileResolver, read_secret
from agent.update.protocol import bundle_id, split_bundle
from agent.update.report import Report, sign_report
from agent.update.updater import Updater

log = logging.getLogger(__name__)
COUNTER_FILE = "report_counter"
Running = tuple[str | None, int | None, str | None, int | None]


def load_report_key(config: AgentConfig, resolver: FileResolver) -> Ed25519PrivateKey | None:
    """The Ed25519 key of ``keys.report_key`` (``None`` when not configured: unsigned)."""
    name = config.keys.report_key
    if not name:
        return None
    data = read_secret(resolver, "keys.report_key", name)
    return decode_release_private(data, "keys.report_key")


class DeviceReporter:
    def __init__(
        self,
        publisher: Publisher,
        topic: Topic,
        device_id: str,
        *,
        key: Ed25519PrivateKey | None,
        state_dir: Path,
        slots: SlotStore,
        wall: Callable[[], float],
    ) -> None:
        """``slots``: the model's A/B slots, whose bundle ids the report names."""
        self.slots = slots
        self.publisher = publisher
        self.topic = topic
        self.device_id = device_id
        self.key = key
        self.path = Path(state_dir) / COUNTER_FILE
        self.wall = wall
        self._published: Running | None = None

    @property
    def signed(self) -> bool:
        return self.key is not None

    def maybe_publish(self, active: ActiveModel | None, updater: Updater | None) -> None:
        """Publish a new report when what the device runs changed since the last one."""
        running = _running(active, updater)
        if running == self._published or not self.publisher.connected:
            return
        bundle, previous = _slots(self.slots)
        report = Report(
            self.device_id,
            self._next_counter(),
            int(self.wall()),
            bundle,
            running[0],
            running[1],
            running[2],
            previous,
            running[3],
        )
        try:
            self.publisher.publish(self.topic, sign_report(report, self.key), qos=1, retain=True)
        except EdgeError as exc:
            log.debug("report not published: %s", exc)
            return
        self._published = running
        log.info(
            "%s report %s published: %s v%s", "signed" if self.key else "unsigned",
            report.counter, report.name, report.release,
        )  # fmt: skip

    def _next_counter(self) -> int:
        try:
            text = read_capped(self.path, 64).decode("ascii").strip()
            counter = int(text) + 1
        except FileNotFoundError:
            counter = 1
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s): report counter restarts at 1", self.path, exc)
            counter = 1
        atomic_write(self.path, f"{counter}\n".encode(), 0o600)
        return counter


def _running(active: ActiveModel | None, updater: Updater | None) -> Running:
    root = updater.installer.credentials.root if updater is not None else None
    root_version = None if root is None else root.version
    if active is None:
        return None, None, None, root_version
    return active.name, active.version, active.sha256, root_version


def _slots(slots: SlotStore) -> tuple[str | None, str | None]:
    """The bundle ids of the active and the previous slot (``None`` when unknown)."""
    try:
        state = slots.load()
    except (Rejected, OSError) as exc:
        log.warning("slots unreadable for the report: %s", exc)
        return None, None
    return _slot_bundle(slots, state.active), _slot_bundle(slots, state.previous)


def _slot_bundle(slots: SlotStore, slot: str | None) -> str | None:
    if slot is None:
        return None
    try:
        return bundle_id(split_bundle(slots.read(slot), slots.limits)[0])
    except (Rejected, OSError) as exc:
        log.warning("slot %s unreadable for the report: %s", slot, exc)
        return None
