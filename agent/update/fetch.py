"""One desired bundle being fetched: its MQTT subscriptions, the partial file and the transfer.

The updater thread owns a :class:`Fetch` from the desired command until the install or a
rejection. The header is subscribed first; once it verified and matched the signed offer, the
blocks are subscribed a window at a time (:class:`~agent.update.transfer.Transfer` decides which),
each checked against the signed manifest and written to the partial file, whose bitmap survives a
restart. Every subscription delivers into the updater's one inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.bundle import BundleVerifier, VerifiedManifest, check_block
from agent.errors import BundleRejected, DeviceError, Rejected
from agent.mqtt.events import BoundedQueue, IncomingMessage, Subscription
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.ports import Subscriber
from agent.mqtt.settings import DEFAULT_MAX_PACKET_BYTES
from agent.mqtt.topics import TopicFilter
from agent.reasons import Reason
from agent.update.commands import BundleOffer
from agent.update.partial import PartialPayload, free_bytes
from agent.update.protocol import BundleTopics
from agent.update.transfer import Transfer, TransferLimits, block_sizes, check_block_fits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchSettings:
    """Where and how the updater fetches (from ``[update]`` and ``state_dir``)."""

    bundles: BundleTopics
    updates_dir: Path
    limits: TransferLimits
    max_header: int
    disk_margin_bytes: int
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES  # blocks must fit (mqtt.max_packet_bytes)


@dataclass(frozen=True)
class Held:
    """Every block is held: what the install needs."""

    header: bytes
    verifier: BundleVerifier
    partial: PartialPayload


class Fetch:
    """The subscriptions and files of one bundle transfer (updater thread only)."""

    def __init__(
        self,
        offer: BundleOffer,
        subscriber: Subscriber,
        inbox: BoundedQueue[IncomingMessage],
        settings: FetchSettings,
        started: float,
    ) -> None:
        self.offer = offer
        self.started = started
        self._subscriber = subscriber
        self._inbox = inbox
        self._settings = settings
        self._header_sub: Subscription | None = subscriber.subscribe(
            TopicFilter(str(settings.bundles.header(offer.id))),
            max_payload=settings.max_header,
            messages=inbox,
        )
        self.header: bytes | None = None
        self.verifier: BundleVerifier | None = None
        self.verified: VerifiedManifest | None = None
        self.partial: PartialPayload | None = None
        self.transfer: Transfer | None = None
        self._block_subs: dict[int, Subscription] = {}
        self._done_subs: list[Subscription] = []

    def route(self, topic: str) -> int | None:
        """``-1`` for this bundle's header, a block index for one of its blocks, else ``None``."""
        if topic == str(self._settings.bundles.header(self.offer.id)):
            return -1
        if self.transfer is None:
            return None
        return self._settings.bundles.block_index(self.offer.id, topic)

    def on_header(self, payload: bytes, verifier: Callable[[], BundleVerifier], now: float) -> bool:
        """Check the header against the offer and the trust root, open the partial file;
        whether a header was taken (a copy after the first is ignored)."""
        if self.header is not None or self._header_sub is None:
            return False
        self._subscriber.unsubscribe(self._header_sub)
        self._header_sub = None
        if not self.offer.header_matches(payload):
            raise BundleRejected(
                Reason.HEADER_MISMATCH,
                "the header's SHA-256 differs from the signed desired command",
            )
        checker = verifier()
        verified = checker.verify_header(payload)
        _check_offer(self.offer, verified, len(payload))
        info = verified.manifest.payload
        check_block_fits(info.block_size, self._settings.max_packet_bytes)
        directory = self._settings.updates_dir
        partial_path = directory / f"{self.offer.id}.partial"
        need = self.offer.size + self._settings.disk_margin_bytes
        need += 0 if partial_path.exists() else info.length
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        free = free_bytes(directory)
        if free < need:
            raise DeviceError(Reason.NO_SPACE, f"{free} bytes free in state_dir, {need} needed")
        self.header, self.verifier, self.verified = payload, checker, verified
        self.partial = PartialPayload(directory, self.offer.id, info.length, len(info.blocks))
        sizes = block_sizes(info.length, info.block_size)
        self.transfer = Transfer(self.partial.bitmap, sizes, self._settings.limits, now)
        return True

    def on_block(self, index: int, payload: bytes, now: float) -> bool | None:
        """A block arrived: ``None`` when it was not expected (a late copy), ``False`` when it
        failed its hash (asked for again later), ``True`` when it was written."""
        transfer, partial, verified = self.transfer, self.partial, self.verified
        assert transfer is not None
        assert partial is not None
        assert verified is not None
        if not transfer.is_expected(index):
            return None  # a copy still in flight after we unsubscribed
        self._done_subs.append(self._block_subs.pop(index))
        try:
            check_block(verified, index, payload)
        except Rejected as exc:
            delay = transfer.corrupt(index, now)
            log.warning("block %s rejected (%s); fetching it again in %.1f s", index, exc, delay)
            return False
        start, _ = verified.manifest.payload.block_range(index)
        partial.write(start, payload)
        transfer.arrived(index, now)
        if transfer.complete:
            partial.flush(now)
        else:
            partial.maybe_flush(now)
        return True

    def held(self) -> Held | None:
        """What the install needs once every block is held, else ``None``."""
        if self.transfer is None or not self.transfer.complete:
            return None
        assert self.header is not None
        assert self.verifier is not None
        assert self.partial is not None
        return Held(self.header, self.verifier, self.partial)

    def request_more(self, now: float) -> None:
        """Unsubscribe the blocks that arrived, subscribe the next ones (one packet each)."""
        if self._done_subs:
            self._subscriber.unsubscribe(*self._done_subs)
            self._done_subs.clear()
        if self.transfer is not None:
            self.request(now)

    def request(self, now: float) -> None:
        assert self.transfer is not None
        indices = self.transfer.requests(now)
        if not indices:
            return
        limit = self.verified.manifest.payload.block_size if self.verified else 0
        bundles = self._settings.bundles
        filters = [TopicFilter(str(bundles.block(self.offer.id, i))) for i in indices]
        subs = self._subscriber.subscribe_many(filters, max_payload=limit, messages=self._inbox)
        self._block_subs.update(zip(indices, subs, strict=True))

    def unsubscribe(self) -> None:
        if self._header_sub is not None:
            self._subscriber.unsubscribe(self._header_sub)
            self._header_sub = None
        self._subscriber.unsubscribe(*self._block_subs.values(), *self._done_subs)
        self._block_subs.clear()
        self._done_subs.clear()

    def cancel(self, now: float, *, keep_partial: bool) -> None:
        """Stop fetching; keep the partial file (and its bitmap) for a resume, or delete it."""
        self.unsubscribe()
        if self.partial is not None:
            if keep_partial:
                self.partial.flush(now)
                self.partial.close()
            else:
                self.partial.discard()


def offer_status(
    offer: BundleOffer,
    state: str,
    transfer: Transfer | None,
    now: float,
    *,
    reason: str | None = None,
    detail: str | None = None,
) -> UpdateStatus:
    """The ``update`` object of the status message for ``offer`` (with its transfer's figures)."""
    return UpdateStatus(
        state=state,
        reason=reason,
        detail=None if detail is None else detail[:1000],
        bundle=offer.id,
        name=offer.name,
        counter=offer.counter,
        blocks_held=transfer.held.count if transfer else 0,
        blocks=offer.blocks,
        bytes_per_s=round(transfer.bytes_per_s(now), 1) if transfer else 0.0,
        requested=transfer.requested if transfer else 0,
        bad_blocks=transfer.bad_blocks if transfer else 0,
    )


def _check_offer(offer: BundleOffer, verified: VerifiedManifest, header: int) -> None:
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
