"""The updater: signed commands and the block transfer over MQTT, on a thread of its own.

It wires the pure parts -- :mod:`~agent.update.commands` (verify, replay ledger) and
:mod:`~agent.update.transfer` (window, progress, give-up decisions) -- to the adapters: MQTT
subscriptions (every one delivers into one bounded inbox that only this thread reads), the partial
file, the slots and the canary (:mod:`~agent.update.install`). Nothing here runs on the service
loop: the loop calls :meth:`Updater.take_swap` once per turn and puts a ready model live between
two inferences, and reports back what its watch window saw.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.backoff import Backoff
from agent.bundle import BundleVerifier, TrustRoot, VerifiedManifest, check_block
from agent.config import AgentConfig
from agent.errors import BundleRejected, DeviceError, EdgeError, Rejected
from agent.model.active import ActiveModel
from agent.mqtt.events import BoundedQueue, IncomingMessage, Subscription
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.ports import Subscriber
from agent.mqtt.topics import DeviceTopics, TopicFilter
from agent.reasons import Reason
from agent.update.commands import BundleOffer, CommandLedger, SignedCommand, open_command
from agent.update.install import Installer, Swap, prompt_switching
from agent.update.partial import PartialPayload, discard_others, free_bytes
from agent.update.protocol import COMMAND_DESIRED, COMMAND_ROLLBACK, BundleTopics, command_topic
from agent.update.records import UpdateRecords, is_final
from agent.update.transfer import Transfer, TransferLimits, block_sizes

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
ACTIVE_TICK_S = 0.05
IDLE_TICK_S = 0.5
MAX_COMMAND_PAYLOAD = 16 * 1024


@dataclass
class _Job:
    """One desired bundle being fetched."""

    offer: BundleOffer
    header_sub: Subscription | None
    started: float = 0.0
    header: bytes | None = None
    verifier: BundleVerifier | None = None
    verified: VerifiedManifest | None = None
    partial: PartialPayload | None = None
    transfer: Transfer | None = None
    block_subs: dict[int, Subscription] = field(default_factory=dict)


class Updater:
    def __init__(
        self,
        config: AgentConfig,
        client: Subscriber,
        topics: DeviceTopics,
        fleet: TrustRoot,
        installer: Installer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client
        self.fleet = fleet
        self.installer = installer
        self.clock = clock
        self.device_id = config.device_id
        self.bundles = BundleTopics(config.mqtt.topic_prefix)
        self.desired_topic = command_topic(topics, COMMAND_DESIRED)
        self.rollback_topic = command_topic(topics, COMMAND_ROLLBACK)
        self.updates_dir = Path(config.state_dir) / "updates"
        self.records = UpdateRecords(self.updates_dir)
        update = config.update
        self.limits = TransferLimits(
            update.window, update.deadline_s, update.min_bytes_per_s, update.throughput_window_s
        )
        self.inbox: BoundedQueue[IncomingMessage] = BoundedQueue(4 * update.window + 64)
        self.status_changed = threading.Event()
        self._swaps: queue.Queue[Swap] = queue.Queue()
        self._feedback: queue.Queue[Callable[[], None]] = queue.Queue()
        self._lock = threading.Lock()
        self._status = UpdateStatus()
        self._outcome: UpdateStatus | None = None
        self._ledger = CommandLedger()
        self._job: _Job | None = None
        self._retry: tuple[float, BundleOffer] | None = None
        self._retry_backoff = Backoff(update.retry_min_s, max_delay=update.retry_max_s)
        self._running_p50_ms: float | None = None
        self._last_progress = 0.0
        self._was_connected = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subs: list[Subscription] = []
        self._done_subs: list[Subscription] = []

    # -- the loop's side ------------------------------------------------------------------------

    def start(self) -> None:
        self._ledger = self.records.load_ledger()
        self._outcome = self.records.load_outcome()
        if self._outcome is not None:
            self._status = self._outcome
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
        if self._thread is not None:
            self._thread.join(timeout)
        if self._job is not None and self._job.partial is not None:
            self._job.partial.close()

    def status(self) -> UpdateStatus:
        with self._lock:
            return self._status

    def take_swap(self) -> Swap | None:
        try:
            return self._swaps.get_nowait()
        except queue.Empty:
            return None

    def note_latency(self, p50_ms: float | None) -> None:
        self._running_p50_ms = p50_ms

    def retire(self, model: ActiveModel) -> None:
        """Close a model the loop no longer uses, here rather than on the loop thread."""
        self._feedback.put(model.model.close)

    def watch_failed(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        """The loop swapped back to the previous model; make that permanent and report it."""
        self._feedback.put(lambda: self._rolled_back(bundle, reason, retired))

    # -- the updater thread ---------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stopping.is_set():
            busy = self._job is not None or self._retry is not None
            message = self.inbox.get(timeout=ACTIVE_TICK_S if busy else IDLE_TICK_S)
            try:
                # Everything that arrived is handled before the next round of requests, so
                # the blocks done are unsubscribed and the next ones subscribed in one packet each.
                for item in [message, *self.inbox.drain()] if message is not None else []:
                    self._dispatch(item)
                self._request_more()
                now = self.clock()
                if now >= next_tick:  # not after every block: a block asks for the next itself
                    next_tick = now + ACTIVE_TICK_S
                    self._drain_feedback()
                    self._tick(now)
            except Rejected as exc:
                self._reject_job(exc.code, exc.reason, keep_partial=True)
            except (EdgeError, OSError, ValueError) as exc:
                log.exception("update step failed")
                self._reject_job(getattr(exc, "code", Reason.IO_ERROR), str(exc), keep_partial=True)

    def _dispatch(self, message: IncomingMessage) -> None:
        topic, payload = message.topic, message.payload
        if topic == str(self.desired_topic):
            self._on_desired(payload)
        elif topic == str(self.rollback_topic):
            self._on_rollback(payload)
        elif self._job is not None:
            job = self._job
            if topic == str(self.bundles.header(job.offer.id)):
                self._on_header(job, payload)
            elif job.transfer is not None:
                index = self.bundles.block_index(job.offer.id, topic)
                if index is not None:
                    self._on_block(job, index, payload)

    def _drain_feedback(self) -> None:
        while True:
            try:
                action = self._feedback.get_nowait()
            except queue.Empty:
                return
            action()

    # -- commands -------------------------------------------------------------------------------

    def _verify(self, payload: bytes, kind: str) -> tuple[SignedCommand, bool] | None:
        try:
            signed = open_command(payload, self.fleet, self.device_id)
            if signed.command.command != kind:
                raise BundleRejected(
                    Reason.MALFORMED, f"a {signed.command.command} command on the {kind} topic"
                )
            new = self._ledger.is_new(signed)
        except Rejected as exc:
            log.warning("%s command rejected: %s", kind, exc)
            self._show(UpdateStatus("rejected", exc.code, f"{kind} command: {exc.reason}"))
            return None
        if new:
            self._ledger = self._ledger.accept(signed)
            self.records.save_ledger(self._ledger)
            log.info("accepted %s command seq %s", kind, signed.command.seq)
        return signed, new

    def _on_desired(self, payload: bytes) -> None:
        if not payload:
            return  # the fleet cleared the retained command
        verified = self._verify(payload, COMMAND_DESIRED)
        if verified is None:
            return
        offer = verified[0].command.bundle
        assert offer is not None
        if self._job is not None and self._job.offer.id == offer.id:
            return
        outcome = self._outcome
        if outcome is not None and outcome.bundle == offer.id and is_final(outcome):
            self._show(outcome)
            return
        if self._retry is not None and self._retry[1].id == offer.id and not verified[1]:
            return  # the same command again while a retry is scheduled
        if self.installer.active_bundle() == offer.id:
            self._record(self._offer_status(offer, "installed"))
            return
        self._begin(offer)

    def _on_rollback(self, payload: bytes) -> None:
        verified = self._verify(payload, COMMAND_ROLLBACK) if payload else None
        if verified is None or not verified[1]:
            return
        try:
            with prompt_switching():
                swap = self.installer.previous()
        except Rejected as exc:
            log.warning("rollback command not carried out: %s", exc)
            self._show(UpdateStatus("rejected", exc.code, exc.reason))
            return
        self._swaps.put(swap)
        log.info("rolled back to the previous slot by command")
        base = self._outcome or UpdateStatus()
        self._record(replace(base, state="rolled_back", reason=Reason.COMMAND, detail=None))

    def _rolled_back(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        retired.model.close()
        if bundle is not None and self.installer.active_bundle() == bundle:
            self.installer.revert()
        log.warning("rolled back %s: %s", bundle, reason)
        base = self._outcome or UpdateStatus(bundle=bundle)
        detail = f"watch window after the swap saw {reason.replace('_', ' ')}"
        self._record(replace(base, state="rolled_back", reason=reason, detail=detail))

    # -- transfer -------------------------------------------------------------------------------

    def _begin(self, offer: BundleOffer) -> None:
        self._cancel_job(keep_partial=True)
        discard_others(self.updates_dir, offer.id)
        self._retry = None
        header = self.client.subscribe(
            TopicFilter(str(self.bundles.header(offer.id))),
            max_payload=self.installer.slots.limits.max_header,
            messages=self.inbox,
        )
        self._job = _Job(offer, header, started=self.clock())
        log.info("fetching bundle %s (%s release %s)", offer.id, offer.name, offer.counter)
        self._record(self._offer_status(offer, "downloading"))

    def _on_header(self, job: _Job, payload: bytes) -> None:
        if job.header is not None or job.header_sub is None:
            return
        self.client.unsubscribe(job.header_sub)
        job.header_sub = None
        if not job.offer.header_matches(payload):
            raise BundleRejected(
                Reason.HEADER_MISMATCH,
                "the header's SHA-256 differs from the signed desired command",
            )
        verifier = self.installer.verifier()
        verified = verifier.verify_header(payload)
        self._check_offer(job.offer, verified, len(payload))
        info = verified.manifest.payload
        partial_path = self.updates_dir / f"{job.offer.id}.partial"
        need = job.offer.size + self.config.update.disk_margin_bytes
        need += 0 if partial_path.exists() else info.length
        self.updates_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        free = free_bytes(self.updates_dir)
        if free < need:
            raise DeviceError(Reason.NO_SPACE, f"{free} bytes free in state_dir, {need} needed")
        job.header, job.verifier, job.verified = payload, verifier, verified
        job.partial = PartialPayload(self.updates_dir, job.offer.id, info.length, len(info.blocks))
        now = self.clock()
        sizes = block_sizes(info.length, info.block_size)
        job.transfer = Transfer(job.partial.bitmap, sizes, self.limits, now)
        self._last_progress = 0.0
        self._progress(now, force=True)
        if job.transfer.complete:
            self._finish(job)

    def _check_offer(self, offer: BundleOffer, verified: VerifiedManifest, header: int) -> None:
        manifest = verified.manifest
        actual = (manifest.name, manifest.counter, len(manifest.payload.blocks))
        size = header + manifest.payload.length
        if actual != (offer.name, offer.counter, offer.blocks) or size != offer.size:
            raise BundleRejected(
                Reason.OFFER_MISMATCH,
                f"header is {manifest.name} release {manifest.counter}, {actual[2]} blocks, "
                f"{size} bytes; the command said {offer.name} release {offer.counter}, "
                f"{offer.blocks} blocks, {offer.size} bytes",
            )

    def _on_block(self, job: _Job, index: int, payload: bytes) -> None:
        transfer, partial, verified = job.transfer, job.partial, job.verified
        assert transfer is not None
        assert partial is not None
        assert verified is not None
        if not transfer.is_expected(index):
            return  # a copy still in flight after we unsubscribed
        self._done_subs.append(job.block_subs.pop(index))
        now = self.clock()
        try:
            check_block(verified, index, payload)
        except Rejected as exc:
            delay = transfer.corrupt(index, now)
            log.warning("block %s rejected (%s); fetching it again in %.1f s", index, exc, delay)
            self._progress(now, force=True)
            return
        start, _ = verified.manifest.payload.block_range(index)
        partial.write(start, payload)
        transfer.arrived(index, now)
        if transfer.complete:
            partial.flush(now)
            self._finish(job)
            return
        partial.maybe_flush(now)
        self._progress(now)

    def _tick(self, now: float) -> None:
        connected = self.client.connected
        job = self._job
        transfer = job.transfer if job is not None else None
        if connected and not self._was_connected and transfer is not None:
            transfer.resumed(now)
        self._was_connected = connected
        if job is not None and transfer is not None and job.partial is not None:
            self._request(job, transfer, now)
            verdict = transfer.verdict(now)
            if verdict is not None:
                self._give_up(verdict, now)
                return
            job.partial.maybe_flush(now)
            self._progress(now)
        if self._retry is not None and now >= self._retry[0]:
            self._begin(self._retry[1])

    def _request_more(self) -> None:
        """Unsubscribe the blocks that arrived, subscribe the next ones (one packet each)."""
        if self._done_subs:
            self.client.unsubscribe(*self._done_subs)
            self._done_subs.clear()
        job = self._job
        if job is not None and job.transfer is not None:
            self._request(job, job.transfer, self.clock())

    def _request(self, job: _Job, transfer: Transfer, now: float) -> None:
        indices = transfer.requests(now)
        if not indices:
            return
        limit = job.verified.manifest.payload.block_size if job.verified else 0
        filters = [TopicFilter(str(self.bundles.block(job.offer.id, i))) for i in indices]
        subs = self.client.subscribe_many(filters, max_payload=limit, messages=self.inbox)
        job.block_subs.update(zip(indices, subs, strict=True))

    def _give_up(self, verdict: str, now: float) -> None:
        job = self._job
        assert job is not None
        assert job.transfer is not None
        rate = job.transfer.bytes_per_s(now)
        delay = self._retry_backoff.next_delay()
        detail = (
            f"transfer {'missed its deadline' if verdict == 'deadline' else 'too slow'} "
            f"({rate:.0f} B/s, {job.transfer.held.count} of {job.transfer.held.size} blocks); "
            f"retrying in {delay:.0f} s"
        )
        log.warning("bundle %s: %s", job.offer.id, detail)
        offer = job.offer
        self._reject_job(verdict, detail, keep_partial=True)
        self._retry = (now + delay, offer)

    def _finish(self, job: _Job) -> None:
        """Every block is held: verify, stage, canary, load, go live (this thread)."""
        self._unsubscribe(job)
        took = max(self.clock() - job.started, 1e-6)
        log.info(
            "bundle %s: all %s blocks held, %s bytes in %.2f s (%.2f MB/s)",
            job.offer.id,
            job.offer.blocks,
            job.offer.size,
            took,
            job.offer.size / took / 1e6,
        )
        self._record(self._offer_status(job.offer, "verifying"))
        with prompt_switching():
            swap = self._install(job)
        if swap is None:
            return
        installed = self._offer_status(job.offer, "installed")
        self._job = None
        self._retry_backoff.reset()
        offer = job.offer
        log.info("bundle %s (%s release %s) installed", offer.id, offer.name, offer.counter)
        self._record(installed)
        del job  # the plaintext is freed here, before the loop swaps
        self._swaps.put(swap)  # last: this thread is idle while the loop swaps

    def _install(self, job: _Job) -> Swap | None:
        """Decrypt, stage, canary, load; ``None`` when the bundle was rejected (recorded)."""
        assert job.partial is not None
        assert job.verifier is not None
        assert job.header is not None
        payload = job.partial.read()
        try:
            bundle = job.verifier.decrypt(payload)
        except Rejected as exc:
            self._reject_job(exc.code, exc.reason, keep_partial=False)
            return None
        state, slot = self.installer.stage(job.header + payload)
        job.partial.discard()
        del payload
        self._record(self._offer_status(job.offer, "canary"))
        try:
            self.installer.prove(bundle, self._running_p50_ms)
            swap = self.installer.go_live(bundle, state, slot, job.offer.id)
        except Rejected as exc:
            log.warning("bundle %s rejected: %s", job.offer.id, exc)
            self._reject_job(exc.code, exc.reason, keep_partial=False)
            return None
        return swap

    # -- cleanup and status ---------------------------------------------------------------------

    def _unsubscribe(self, job: _Job) -> None:
        if job.header_sub is not None:
            self.client.unsubscribe(job.header_sub)
            job.header_sub = None
        self.client.unsubscribe(*job.block_subs.values(), *self._done_subs)
        job.block_subs.clear()
        self._done_subs.clear()

    def _cancel_job(self, *, keep_partial: bool) -> None:
        job, self._job = self._job, None
        if job is None:
            return
        self._unsubscribe(job)
        if job.partial is not None:
            if keep_partial:
                job.partial.flush(self.clock())
                job.partial.close()
            else:
                job.partial.discard()

    def _reject_job(self, code: str, detail: str, *, keep_partial: bool) -> None:
        job = self._job
        if job is None:
            self._show(UpdateStatus("rejected", code, detail[:1000]))
            return
        status = self._offer_status(job.offer, "rejected", code, detail)
        self._cancel_job(keep_partial=keep_partial)
        log.warning("bundle %s rejected: %s: %s", job.offer.id, code, detail)
        self._record(status)

    def _offer_status(
        self, offer: BundleOffer, state: str, reason: str | None = None, detail: str | None = None
    ) -> UpdateStatus:
        job = self._job
        transfer = job.transfer if job is not None and job.offer.id == offer.id else None
        return UpdateStatus(
            state=state,
            reason=reason,
            detail=None if detail is None else detail[:1000],
            bundle=offer.id,
            name=offer.name,
            counter=offer.counter,
            blocks_held=transfer.held.count if transfer else 0,
            blocks=offer.blocks,
            bytes_per_s=round(transfer.bytes_per_s(self.clock()), 1) if transfer else 0.0,
            requested=transfer.requested if transfer else 0,
            bad_blocks=transfer.bad_blocks if transfer else 0,
        )

    def _progress(self, now: float, *, force: bool = False) -> None:
        job = self._job
        if job is None or (not force and now - self._last_progress < PROGRESS_EVERY_S):
            return
        self._last_progress = now
        self._show(self._offer_status(job.offer, "downloading"))

    def _record(self, status: UpdateStatus) -> None:
        """Show a state of the desired bundle and remember it across restarts."""
        self._outcome = status
        self.records.save_outcome(status)
        self._show(status)

    def _show(self, status: UpdateStatus) -> None:
        with self._lock:
            self._status = status
        self.status_changed.set()
