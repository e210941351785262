"""``edge-fleet gc``: delete retained bundles (header + blocks) that no device wants any more.

A bundle is kept while some device's retained desired command names it and that device has not
reported it installed. Deleting a retained message is an empty retained publish.
"""

from __future__ import annotations

import argparse
import logging

from agent.bundle.container import Limits, parse_header
from agent.bundle.envelope import open_envelope
from agent.bundle.manifest import parse_manifest
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError
from agent.mqtt.topics import TopicFilter
from agent.update.commands import COMMAND_PAYLOAD_TYPE, MAX_COMMAND_BYTES, Command
from agent.update.protocol import BundleTopics, check_bundle_id
from fleet.bundles import unwanted_bundles
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.connection import collect, connect
from fleet.progress import install_outcome
from fleet.publish import clear_retained
from fleet.rollout import Outcome
from fleet.session import FleetSession

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    add_connection_arguments(parser)


def block_count(header: bytes, limits: Limits) -> int:
    """How many block topics a retained header implies (its manifest is not verified here)."""
    return len(parse_manifest(parse_header(header, limits).manifest, limits).payload.blocks)


def desired_bundle(envelope: bytes) -> str | None:
    """The bundle id a retained desired command names; ``None`` if it cannot be read."""
    try:
        payload, _signatures = open_envelope(
            envelope, COMMAND_PAYLOAD_TYPE, MAX_COMMAND_BYTES, "command"
        )
        command = Command.from_json(payload)
    except (BundleRejected, StrictJSONError, ValueError, TypeError) as exc:
        _log.warning("ignoring an unreadable desired command: %s", exc)
        return None
    return command.bundle.id if command.bundle is not None else None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    prefix = settings.topic_prefix
    limits = Limits()
    topics = BundleTopics(prefix)
    with connect(settings) as client:
        session = FleetSession(client, prefix)
        headers = client.subscribe(
            TopicFilter(f"{topics.base}/+/header"), maxsize=100_000, max_payload=limits.max_header
        )
        commands = client.subscribe(
            TopicFilter(f"{prefix}/+/commands/desired"),
            maxsize=100_000,
            max_payload=MAX_COMMAND_BYTES,
        )
        published: dict[str, int] = {}
        for message in collect(headers):
            bid = message.topic.split("/")[-2]
            try:
                published[check_bundle_id(bid)] = block_count(message.payload, limits)
            except (BundleRejected, ValueError) as exc:
                _log.warning("retained header %s is unreadable (%s); left alone", bid, exc)
        desired = {
            message.topic.split("/")[-3]: wanted
            for message in collect(commands)
            if (wanted := desired_bundle(message.payload)) is not None
        }
        installed = {
            device: bid
            for device, bid in desired.items()
            if install_outcome(session.known.row(device), bid).outcome is Outcome.INSTALLED
        }
        doomed = unwanted_bundles(published, desired, installed)
        for bid in doomed:
            print(
                f"{'would delete' if args.dry_run else 'deleting'} bundle {bid} "
                f"({published[bid]} blocks)"
            )
            if not args.dry_run:
                clear_retained(
                    client,
                    [topics.header(bid), *(topics.block(bid, i) for i in range(published[bid]))],
                )
        print(f"{len(published) - len(doomed)} bundle(s) kept, {len(doomed)} deleted")
    return 0
