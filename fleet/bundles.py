"""A bundle file split into what the broker holds: the header and its ciphertext blocks. Pure.

The fleet manager reads its own ``.edgepkg`` (made by ``edge-convert bundle``): it parses the
header structurally and the manifest without verifying the signatures (devices verify; the fleet
has no device key and decrypts nothing), and splits the payload at the manifest's block size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.bundle.container import Limits, Recipient, parse_header
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

    def topics(self, prefix: str) -> list[Topic]:
        """The header's topic, then every block's."""
        topics = BundleTopics(prefix)
        blocks = len(self.manifest.payload.blocks)
        return [topics.header(self.bid)] + [topics.block(self.bid, i) for i in range(blocks)]

    def messages(self, prefix: str) -> list[tuple[Topic, bytes]]:
        """Every retained message of this bundle: the header, then block 0..n-1."""
        topics = BundleTopics(prefix)
        blocks = len(self.manifest.payload.blocks)
        return [(topics.header(self.bid), self.header)] + [
            (topics.block(self.bid, i), bytes(self.block(i))) for i in range(blocks)
        ]


def check_header_size(header: bytes, recipients: Sequence[Recipient], max_message: int) -> None:
    """The header is one retained message: refuse it over ``max_message``, saying how many
    recipients would fit (each entry costs its id plus the ephemeral and wrapped keys)."""
    if len(header) <= max_message:
        return
    entries = sum(
        1 + len(r.recipient_id.encode()) + len(r.ephemeral) + len(r.wrapped_key) for r in recipients
    )
    per = entries / len(recipients) if recipients else 0
    fixed = len(header) - entries
    fit = int((max_message - fixed) // per) if per else 0
    raise ValueError(
        f"bundle header is {len(header)} bytes, more than {max_message} (the message limit of "
        f"brokers such as AWS IoT Core); {len(recipients)} recipients at ~{per:.0f} bytes each: "
        f"at most {max(fit, 0)} fit. Encrypt to a group key (one recipient for the whole "
        "group, see docs/fleet.md) or split the devices over several bundles"
    )


def prepare_bundle(
    data: bytes,
    limits: Limits | None = None,
    max_block: int = DEFAULT_BLOCK_LIMIT,
    max_message: int = DEFAULT_BLOCK_LIMIT,
) -> PreparedBundle:
    """Split ``data``; raises BundleRejected for a malformed file, ValueError for huge blocks
    or a header over ``max_message``."""
    limits = limits or Limits()
    header, _payload_length = split_bundle(data, limits)
    raw = parse_header(header, limits)
    check_header_size(header, raw.recipients, max_message)
    manifest = parse_manifest(raw.manifest, limits)
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
