"""Root metadata arriving over MQTT (``<prefix>/trust/root/<version>``, retained), turned into
the device's newest accepted root (updater thread only).

Every retained version is delivered on every connect, in any order; versions at or below the
current one are ignored, newer ones are held until the chain from the current root reaches them
(:func:`agent.bundle.root.catch_up`). An accepted root is saved atomically before it is used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.bundle.root import MAX_ROOT_BYTES, Root, RootStore, catch_up
from agent.bundle.trust import TrustRoot
from agent.errors import BundleRejected
from agent.mqtt.events import BoundedQueue, DropLog, IncomingMessage, Subscription
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import TopicFilter
from agent.update.freeze import MAX_TIMESTAMP_BYTES, FreezeWatch, open_timestamp
from agent.update.install import Installer
from agent.update.protocol import root_filter, root_version

log = logging.getLogger(__name__)
MAX_PENDING = 64


@dataclass(frozen=True)
class RootChange:
    """What one message did: a newer root accepted, and/or a version refused."""

    accepted: Root | None = None
    refused: BundleRejected | None = None


class RootSync:
    """``wall``: the device's wall clock; an expired root is a chain link, never the new root."""

    def __init__(
        self, current: Root, store: RootStore, wall: Callable[[], float] = time.time
    ) -> None:
        self.current = current
        self.store = store
        self.wall = wall
        self._pending: dict[int, bytes] = {}
        self._expired_reported: int | None = None

    def offer(self, version: int, payload: bytes) -> RootChange:
        if version <= self.current.version or not payload or len(payload) > MAX_ROOT_BYTES:
            return RootChange()
        if len(self._pending) >= MAX_PENDING and version not in self._pending:
            return RootChange()
        self._pending[version] = payload
        done = catch_up(self.current, self._pending, self.wall())
        for old in [v for v in self._pending if v <= done.root.version]:
            del self._pending[old]
        if done.tip_expired is not None:
            # kept: a newer root may chain through it; reported once per expired tip
            if done.tip_expired == self._expired_reported:
                done = replace(done, refused=None)
            self._expired_reported = done.tip_expired
        elif done.refused is not None:
            self._pending.pop(done.root.version + 1, None)  # reported once, not on every connect
        if done.refused is not None:
            log.warning("root version %s refused: %s", done.root.version + 1, done.refused)
        if not done.applied:
            return RootChange(refused=done.refused)
        self.store.save(done.root)
        self.current = done.root
        log.info("trust root now version %s (applied %s)", done.root.version, done.applied)
        return RootChange(done.root, done.refused)


class RootFollower:
    """The updater's trust topics under ``<prefix>/trust/``.

    * ``root/+`` when the device was provisioned with root metadata: each newly accepted root
      swaps the installer's release and fleet keys; refusals counted ``root_rejected.<code>``.
    * an installed root past its ``expires``: ``root_expired`` (its version) in the status
      ``errors``, and the installer refuses new installs (``rejected:root_expired``).
    * ``timestamp`` when ``update.freeze_after_s`` > 0: fresh signed timestamps (fleet keys);
      past the bound without one, ``fleet_silent_s`` appears in the status ``errors``.
    """

    def __init__(self, prefix: str, installer: Installer, drops: DropLog) -> None:
        self.prefix = prefix
        self.installer = installer
        self.drops = drops
        root = installer.credentials.root
        store = RootStore(Path(installer.config.state_dir) / "trust")
        self.sync = None if root is None else RootSync(root, store, installer.wall)
        self.freeze_after_s = installer.config.update.freeze_after_s
        self.watch = FreezeWatch(time.monotonic())
        self._silent_logged = False
        if self.freeze_after_s > 0:
            drops.gauge("fleet_silent_s", self._silent)
        if root is not None:
            drops.gauge("root_expired", installer.expired_root)

    def fleet(self, configured: TrustRoot) -> TrustRoot:
        """The fleet keys commands are checked with: the newest root's, else ``configured``."""
        return self.installer.credentials.fleet or configured

    @property
    def timestamp_topic(self) -> str:
        return f"{self.prefix}/trust/timestamp"

    def subscribe(
        self, client: Subscriber, inbox: BoundedQueue[IncomingMessage]
    ) -> list[Subscription]:
        subs = []
        if self.sync is not None:
            subs.append(
                client.subscribe(
                    root_filter(self.prefix), max_payload=MAX_ROOT_BYTES, messages=inbox
                )
            )
        if self.freeze_after_s > 0:
            topic = TopicFilter(self.timestamp_topic)
            subs.append(client.subscribe(topic, max_payload=MAX_TIMESTAMP_BYTES, messages=inbox))
        return subs

    def on_message(self, topic: str, payload: bytes) -> UpdateStatus | None:
        """Handle a trust message; a status to show when it was refused, else ``None``."""
        if topic == self.timestamp_topic and self.freeze_after_s > 0 and payload:
            return self._on_timestamp(payload)
        version = root_version(self.prefix, topic)
        if self.sync is None or version is None:
            return None
        change = self.sync.offer(version, payload)
        if change.accepted is not None:
            root = change.accepted
            self.installer.credentials = replace(
                self.installer.credentials, trust=root.release, fleet=root.fleet, root=root
            )
        if change.refused is None:
            return None
        return self._refused("root", f"root version {version}", change.refused)

    def _on_timestamp(self, payload: bytes) -> UpdateStatus | None:
        fleet = self.installer.credentials.fleet
        if fleet is None:
            return None
        try:
            stamp = open_timestamp(payload, fleet)
            self.watch = self.watch.observe(stamp, self.installer.wall(), time.monotonic())
        except BundleRejected as exc:
            return self._refused("timestamp", "timestamp", exc)
        if self._silent_logged:
            log.info("signed timestamp issued at %s: the fleet is heard again", stamp.issued_at)
            self._silent_logged = False
        return None

    def _refused(self, kind: str, what: str, exc: BundleRejected) -> UpdateStatus:
        self.drops.count(f"{kind}_rejected.{exc.code}")
        log.warning("%s refused: %s", what, exc)
        return UpdateStatus("rejected", exc.code, f"{what}: {exc.reason}"[:1000])

    def _silent(self) -> int | None:
        """``fleet_silent_s`` for the status: seconds without a fresh timestamp, past the bound."""
        silent = self.watch.silent_s(time.monotonic())
        if silent <= self.freeze_after_s:
            return None
        if not self._silent_logged:
            self._silent_logged = True
            log.warning(
                "no fresh signed timestamp from the fleet for %.0f s (bound %.0f s): updates "
                "may be withheld",
                silent,
                self.freeze_after_s,
            )
        return int(silent)
