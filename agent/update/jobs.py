"""The desired bundle's job on the updater thread: fetch it, retry a stalled transfer, install it.

:class:`Jobs` holds at most one :class:`~agent.update.fetch.Fetch` (the bundle the last desired
command named) and the retry scheduled after a transfer gave up. Once every block is held it
installs the bundle (:meth:`~agent.update.install.Installer.install`) and hands the loaded model
to the loop. Every state it reaches is shown and recorded on the :class:`StatusBoard`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.backoff import Backoff
from agent.errors import Rejected
from agent.model.swap import Swap
from agent.mqtt.events import BoundedQueue, IncomingMessage
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.ports import Subscriber
from agent.reasons import Reason
from agent.update.board import StatusBoard
from agent.update.commands import BundleOffer
from agent.update.fetch import Fetch, FetchSettings, Held, offer_status
from agent.update.install import Installer, prompt_switching
from agent.update.partial import discard_others

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0


class Jobs:
    """The fetch of the desired bundle, its retry, and its install (updater thread only)."""

    def __init__(
        self,
        subscriber: Subscriber,
        inbox: BoundedQueue[IncomingMessage],
        settings: FetchSettings,
        installer: Installer,
        board: StatusBoard,
        *,
        retry: Backoff,
        clock: Callable[[], float],
    ) -> None:
        self.client = subscriber
        self.inbox = inbox
        self.fetching = settings
        self.installer = installer
        self.board = board
        self.clock = clock
        self._job: Fetch | None = None
        self._retry: tuple[float, BundleOffer] | None = None
        self._retry_backoff = retry
        self.running_p50_ms: float | None = None
        self._last_progress = 0.0
        self._was_connected = False

    @property
    def busy(self) -> bool:
        return self._job is not None or self._retry is not None

    def fetching_offer(self, bid: str) -> bool:
        """Whether bundle ``bid`` is being fetched right now."""
        return self._job is not None and self._job.offer.id == bid

    def retrying(self, bid: str) -> bool:
        """Whether a retry of bundle ``bid`` is scheduled."""
        return self._retry is not None and self._retry[1].id == bid

    def on_message(self, topic: str, payload: bytes) -> None:
        """A message on a bundle topic: the job's header or one of its blocks (else ignored)."""
        if self._job is None:
            return
        index = self._job.route(topic)
        if index == -1:
            self._on_header(self._job, payload)
        elif index is not None:
            self._on_block(self._job, index, payload)

    def request_more(self) -> None:
        if self._job is not None:
            self._job.request_more(self.clock())

    def status_of(self, offer: BundleOffer, state: str) -> UpdateStatus:
        return self._offer_status(offer, state)

    def close(self) -> None:
        if self._job is not None and self._job.partial is not None:
            self._job.partial.close()

    def begin(self, offer: BundleOffer) -> None:
        """Fetch ``offer`` (what another job had fetched stays on disk for a later resume)."""
        self._cancel_job(keep_partial=True)
        discard_others(self.fetching.updates_dir, offer.id)
        self._retry = None
        self._job = Fetch(offer, self.client, self.inbox, self.fetching, self.clock())
        log.info("fetching bundle %s (%s release %s)", offer.id, offer.name, offer.counter)
        self.board.record(self._offer_status(offer, "downloading"))

    def _on_header(self, job: Fetch, payload: bytes) -> None:
        if not job.on_header(payload, self.installer.verifier, self.clock()):
            return
        self._last_progress = 0.0
        self._progress(self.clock(), force=True)
        held = job.held()
        if held is not None:
            self._finish(job, held)

    def _on_block(self, job: Fetch, index: int, payload: bytes) -> None:
        now = self.clock()
        stored = job.on_block(index, payload, now)
        if stored is None:
            return
        held = job.held()
        if held is not None:
            self._finish(job, held)
            return
        self._progress(now, force=not stored)

    def tick(self, now: float) -> None:
        """Ask again for what is due, give up a stalled transfer, start a due retry."""
        connected = self.client.connected
        job = self._job
        transfer = job.transfer if job is not None else None
        if connected and not self._was_connected and transfer is not None:
            transfer.resumed(now)
        self._was_connected = connected
        if job is not None and transfer is not None and job.partial is not None:
            job.request(now)
            verdict = transfer.verdict(now)
            if verdict is not None:
                self._give_up(verdict, now)
                return
            job.partial.maybe_flush(now)
            self._progress(now)
        if self._retry is not None and now >= self._retry[0]:
            self.begin(self._retry[1])

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
        self.reject(verdict, detail, keep_partial=True)
        self._retry = (now + delay, offer)

    def _finish(self, job: Fetch, held: Held) -> None:
        """Every block is held: verify, stage, canary, load, go live (this thread)."""
        job.unsubscribe()
        took = max(self.clock() - job.started, 1e-6)
        log.info(
            "bundle %s: all %s blocks held, %s bytes in %.2f s (%.2f MB/s)",
            job.offer.id,
            job.offer.blocks,
            job.offer.size,
            took,
            job.offer.size / took / 1e6,
        )
        self.board.record(self._offer_status(job.offer, "verifying"))
        with prompt_switching():
            swap = self._install(job.offer, held)
        if swap is None:
            return
        installed = self._offer_status(job.offer, "installed")
        self._job = None
        self._retry_backoff.reset()
        offer = job.offer
        log.info("bundle %s (%s release %s) installed", offer.id, offer.name, offer.counter)
        self.board.record(installed)
        del job, held  # the plaintext is freed here, before the loop swaps
        self.installer.hand_over(swap)  # last: this thread is idle while the loop swaps

    def _install(self, offer: BundleOffer, held: Held) -> Swap | None:
        """Decrypt, stage, canary, load; ``None`` when the bundle was rejected (recorded)."""
        try:
            return self.installer.install(
                held,
                offer.id,
                self.running_p50_ms,
                lambda: self.board.record(self._offer_status(offer, "canary")),
            )
        except Rejected as exc:
            self.reject(exc.code, exc.reason, keep_partial=False)
            return None

    def _cancel_job(self, *, keep_partial: bool) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.cancel(self.clock(), keep_partial=keep_partial)

    def withdraw(self) -> None:
        """The fleet cleared the desired command: drop the retry, end the fetch (withdrawn)."""
        self._retry = None
        if self._job is not None:
            self.reject(Reason.WITHDRAWN, "withdrawn by the fleet", keep_partial=False)

    def reject(self, code: str, detail: str, *, keep_partial: bool) -> None:
        """End the job with ``code`` (recorded), or show it when there is no job."""
        job = self._job
        if job is None:
            self.board.show(UpdateStatus("rejected", code, detail[:1000]))
            return
        status = self._offer_status(job.offer, "rejected", code, detail)
        self._cancel_job(keep_partial=keep_partial)
        log.warning("bundle %s rejected: %s: %s", job.offer.id, code, detail)
        self.board.record(status)

    def _offer_status(
        self, offer: BundleOffer, state: str, reason: str | None = None, detail: str | None = None
    ) -> UpdateStatus:
        job = self._job
        transfer = job.transfer if job is not None and job.offer.id == offer.id else None
        return offer_status(offer, state, transfer, self.clock(), reason=reason, detail=detail)

    def _progress(self, now: float, *, force: bool = False) -> None:
        job = self._job
        if job is None or (not force and now - self._last_progress < PROGRESS_EVERY_S):
            return
        self._last_progress = now
        self.board.show(self._offer_status(job.offer, "downloading"))
