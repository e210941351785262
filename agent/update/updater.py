"""The updater: signed commands and the block transfer over MQTT, on a thread of its own.

It wires the pure parts -- :mod:`~agent.update.commands` (verify, replay ledger) and
:mod:`~agent.update.transfer` (window, progress, give-up decisions) -- to the adapters: MQTT
subscriptions (every one delivers into one bounded inbox that only this thread reads), the partial
file, the slots and the canary (:mod:`~agent.update.install`). Nothing here runs on the service
loop: a ready model is handed to :class:`~agent.model.swap.ServedModel`, which the loop puts live
between two inferences, and which reports back what its watch window saw.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agent.backoff import Backoff
from agent.bundle import TrustRoot
from agent.config import AgentConfig
from agent.errors import EdgeError, Rejected
from agent.model.active import ActiveModel
from agent.mqtt.events import BoundedQueue, DropLog, IncomingMessage, Subscription
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import DeviceTopics, TopicFilter
from agent.reasons import Reason
from agent.update.board import CommandGate, StatusBoard
from agent.update.fetch import FetchSettings
from agent.update.install import Installer, prompt_switching
from agent.update.jobs import Jobs
from agent.update.protocol import COMMAND_DESIRED, COMMAND_ROLLBACK, BundleTopics, command_topic
from agent.update.records import UpdateRecords, is_final
from agent.update.rootsync import RootFollower
from agent.update.transfer import TransferLimits

log = logging.getLogger(__name__)

ACTIVE_TICK_S = 0.05
IDLE_TICK_S = 0.5
MAX_COMMAND_PAYLOAD = 16 * 1024
_WAKE = IncomingMessage("", b"", 0, False)


class Updater:
    """Signed commands in, a fetched and installed bundle out (to the loop), on its own thread."""

    def __init__(
        self,
        config: AgentConfig,
        client: Subscriber,
        topics: DeviceTopics,
        fleet: TrustRoot,
        installer: Installer,
        *,
        clock: Callable[[], float] = time.monotonic,
        drops: DropLog | None = None,
    ) -> None:
        """``drops``: where refused commands, roots and timestamps are counted (the client's)."""
        self.config = config
        self.client = client
        self.installer = installer
        self.clock = clock
        self.desired_topic = command_topic(topics, COMMAND_DESIRED)
        self.rollback_topic = command_topic(topics, COMMAND_ROLLBACK)
        self.updates_dir = Path(config.state_dir) / "updates"
        self.records = UpdateRecords(self.updates_dir)
        update = config.update
        self.fetching = FetchSettings(
            BundleTopics(config.mqtt.topic_prefix),
            self.updates_dir,
            TransferLimits(
                update.window, update.deadline_s, update.min_bytes_per_s, update.throughput_window_s
            ),
            installer.limits.max_header,
            update.disk_margin_bytes,
            config.mqtt.max_packet_bytes,
        )
        self.inbox: BoundedQueue[IncomingMessage] = BoundedQueue(4 * update.window + 64)
        self.board = StatusBoard(self.records)
        self.status_changed = self.board.changed
        self.commands = CommandGate(fleet, config.device_id, self.records, self.board)
        self.drops = drops if drops is not None else DropLog()
        self.trust = RootFollower(config.mqtt.topic_prefix, installer, self.drops)
        self.commands.wall, self.commands.drops = installer.wall, self.drops
        self.commands.current_fleet = lambda: self.trust.fleet(fleet)
        self._feedback: queue.Queue[Callable[[], None]] = queue.Queue()
        self.jobs = Jobs(
            client,
            self.inbox,
            self.fetching,
            installer,
            self.board,
            retry=Backoff(update.retry_min_s, max_delay=update.retry_max_s),
            clock=clock,
        )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subs: list[Subscription] = []

    # -- the loop's side ------------------------------------------------------------------------

    def start(self) -> None:
        self.commands.load()
        self.board.load()
        self._subs += self.trust.subscribe(self.client, self.inbox)
        for topic in (self.desired_topic, self.rollback_topic):
            self._subs.append(
                self.client.subscribe(
                    TopicFilter(str(topic)), max_payload=MAX_COMMAND_PAYLOAD, messages=self.inbox
                )
            )
        self._thread = threading.Thread(target=self._run, name="updater", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.inbox.offer(_WAKE)  # the thread may be waiting for messages for up to IDLE_TICK_S
        if self._thread is not None:
            self._thread.join(timeout)
        self.jobs.close()

    def status(self) -> UpdateStatus:
        return self.board.status

    def note_latency(self, p50_ms: float | None) -> None:
        self.jobs.running_p50_ms = p50_ms

    def retire(self, model: ActiveModel) -> None:
        """Close a model the loop no longer uses, here rather than on the loop thread."""
        self._feedback.put(model.close)
        self.inbox.offer(_WAKE)

    def watch_failed(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        """The loop swapped back to the previous model; make that permanent and report it."""
        self._feedback.put(lambda: self._rolled_back(bundle, reason, retired))
        self.inbox.offer(_WAKE)  # recorded within a tick, not after an idle wait

    # -- the updater thread ---------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stopping.is_set():
            busy = self.jobs.busy
            message = self.inbox.get(timeout=ACTIVE_TICK_S if busy else IDLE_TICK_S)
            if self._stopping.is_set():
                return
            try:
                # Everything that arrived is handled before the next round of requests, so
                # the blocks done are unsubscribed and the next ones subscribed in one packet each.
                for item in [message, *self.inbox.drain()] if message is not None else []:
                    if item is not _WAKE:
                        self._dispatch(item)
                self.jobs.request_more()
                now = self.clock()
                if now >= next_tick:  # not after every block: a block asks for the next itself
                    next_tick = now + ACTIVE_TICK_S
                    self._drain_feedback()
                    self.jobs.tick(now)
            except Rejected as exc:
                self.jobs.reject(exc.code, exc.reason, keep_partial=True)
            except (EdgeError, OSError, ValueError) as exc:
                log.exception("update step failed")
                self.jobs.reject(getattr(exc, "code", Reason.IO_ERROR), str(exc), keep_partial=True)

    def _dispatch(self, message: IncomingMessage) -> None:
        topic, payload = message.topic, message.payload
        if topic == str(self.desired_topic):
            self._on_desired(payload)
        elif topic == str(self.rollback_topic):
            self._on_rollback(payload)
        elif (refused := self.trust.on_message(topic, payload)) is not None:
            self.board.show(refused)
        else:
            self.jobs.on_message(topic, payload)

    def _drain_feedback(self) -> None:
        while True:
            try:
                action = self._feedback.get_nowait()
            except queue.Empty:
                return
            action()

    # -- commands -------------------------------------------------------------------------------

    def _on_desired(self, payload: bytes) -> None:
        if not payload:  # the fleet withdrew it (an aborted rollout): stop fetching it
            self.jobs.withdraw()
            return
        verified = self.commands.verify(payload, COMMAND_DESIRED)
        if verified is None:
            return
        offer = verified[0].command.bundle
        assert offer is not None
        if self.jobs.fetching_offer(offer.id):
            return
        outcome = self.board.outcome
        if outcome is not None and outcome.bundle == offer.id and is_final(outcome):
            self.board.show(outcome)
            return
        if self.jobs.retrying(offer.id) and not verified[1]:
            return  # the same command again while a retry is scheduled
        if self.installer.active_bundle() == offer.id:
            self.board.record(self.jobs.status_of(offer, "installed"))
            return
        self.jobs.begin(offer)

    def _on_rollback(self, payload: bytes) -> None:
        verified = self.commands.verify(payload, COMMAND_ROLLBACK) if payload else None
        if verified is None or not verified[1]:
            return
        try:
            with prompt_switching():
                swap = self.installer.previous()
        except Rejected as exc:
            log.warning("rollback command not carried out: %s", exc)
            self.board.show(UpdateStatus("rejected", exc.code, exc.reason))
            return
        self.installer.hand_over(swap)
        log.info("rolled back to the previous slot by command")
        base = self.board.outcome or UpdateStatus()
        self.board.record(replace(base, state="rolled_back", reason=Reason.COMMAND, detail=None))

    def _rolled_back(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        retired.close()
        if bundle is not None and self.installer.active_bundle() == bundle:
            self.installer.revert()
        log.warning("rolled back %s: %s", bundle, reason)
        base = self.board.outcome or UpdateStatus(bundle=bundle)
        detail = f"watch window after the swap saw {reason.replace('_', ' ')}"
        self.board.record(replace(base, state="rolled_back", reason=reason, detail=detail))

    # -- install --------------------------------------------------------------------------------

    # -- cleanup and status ---------------------------------------------------------------------
