"""A bundle file split into what the broker holds: the header and its ciphertext blocks. Pure.

The fleet manager reads its own ``.edgepkg`` (made by ``edge-convert bundle``): it parses the
header structurally and the manifest without verifying the signatures (devices verify; the fleet
has no device key and decrypts nothing), and splits the payload at the manifest's block size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.bundle.container import Limits, parse_header
from agent.bundle.manifest import Manifest, parse_manifest
from agent.mqtt.topics import Topic
from agent.update.commands import BundleOffer
from agent.update.protocol import DEFAULT_BLOCK_LIMIT, BundleTopics, split_bundle


@dataclass(frozen=True)
class PreparedBundle:
    header: bytes
    payload: memoryview
    manifest: Manifest
    offer: BundleOffer

    @property
    def bid(self) -> str:
        return self.offer.id

    def block(self, index: int) -> memoryview:
        start, end = self.manifest.payload.block_range(index)
        return self.payload[start:end]

    def messages(self, prefix: str) -> list[tuple[Topic, bytes]]:
        """Every retained message of this bundle: the header, then block 0..n-1."""
        topics = BundleTopics(prefix)
        blocks = len(self.manifest.payload.blocks)
        return [(topics.header(self.bid), self.header)] + [
            (topics.block(self.bid, i), bytes(self.block(i))) for i in range(blocks)
        ]


def prepare_bundle(
    data: bytes, limits: Limits | None = None, max_block: int = DEFAULT_BLOCK_LIMIT
) -> PreparedBundle:
    """Split ``data``; raises BundleRejected for a malformed file, ValueError for huge blocks."""
    limits = limits or Limits()
    header, _payload_length = split_bundle(data, limits)
    manifest = parse_manifest(parse_header(header, limits).manifest, limits)
    if manifest.payload.block_size > max_block:
        raise ValueError(
            f"bundle blocks are {manifest.payload.block_size} bytes; brokers such as AWS IoT "
            f"Core take at most {max_block}: rebuild it with smaller blocks"
        )
    offer = BundleOffer.for_header(
        header,
        manifest.name,
        manifest.counter,
        len(data),
        len(manifest.payload.blocks),
    )
    return PreparedBundle(header, memoryview(data)[len(header) :], manifest, offer)


def unwanted_bundles(
    published: Mapping[str, int],
    desired: Mapping[str, str],
    installed: Mapping[str, str | None],
) -> list[str]:
    """Bundle ids no device still wants: none desires it, or every device that does runs it.

    ``published``: bundle id -> block count; ``desired``: device -> bundle id of its retained
    desired command; ``installed``: device -> the bundle id its status reports installed.
    """
    wanted = {bid for device, bid in desired.items() if installed.get(device) != bid}
    return sorted(bid for bid in published if bid not in wanted)
