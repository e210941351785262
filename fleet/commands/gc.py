"""``edge-fleet gc``: delete retained bundles (header + blocks) that no device wants any more.

A bundle is kept while some device's retained desired command names it and that device has not
reported it installed. Deleting a retained message is an empty retained publish. The desired
commands are read by exact topic, one per registered device (:func:`desired_commands`); the
retained headers by the ``+/header`` wildcard, plus by exact topic every bundle a desired
command names (:func:`exact_headers`: brokers without wildcard retained delivery).
"""

from __future__ import annotations

import argparse
import json
import logging

from agent.bundle.container import Limits, parse_header
from agent.bundle.envelope import open_envelope
from agent.bundle.manifest import parse_manifest
from agent.errors import BundleRejected
from agent.jsonutil import StrictJSONError
from agent.mqtt.ports import EventConnection
from agent.mqtt.topics import DeviceTopics, Topic, TopicFilter
from agent.update.commands import COMMAND_PAYLOAD_TYPE, MAX_COMMAND_BYTES, Command
from agent.update.protocol import COMMAND_DESIRED, BundleTopics, check_bundle_id, command_topic
from fleet.bundles import unwanted_bundles
from fleet.commands.common import (
    IncompleteView,
    add_connection_arguments,
    add_view_arguments,
    open_session,
    require_complete,
    settings_from,
)
from fleet.connection import collect, connect
from fleet.progress import install_outcome
from fleet.publish import clear_retained
from fleet.reader import read_retained
from fleet.rollout import Outcome
from fleet.session import FleetSession

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    parser.add_argument("--json", action="store_true", help="the result as one JSON document")
    add_view_arguments(parser)
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
        session = open_session(client, settings, args)
        require_complete(session, args)
        headers = client.subscribe(
            TopicFilter(f"{topics.base}/+/header"), maxsize=100_000, max_payload=limits.max_header
        )
        published: dict[str, int] = {}
        for message in collect(headers):
            bid = message.topic.split("/")[-2]
            try:
                published[check_bundle_id(bid)] = block_count(message.payload, limits)
            except (BundleRejected, ValueError) as exc:
                _log.warning("retained header %s is unreadable (%s); left alone", bid, exc)
        desired = {
            device: wanted
            for device, envelope in desired_commands(client, session).items()
            if (wanted := desired_bundle(envelope)) is not None
        }
        named = sorted(set(desired.values()) - set(published))
        published |= exact_headers(client, topics, named, limits)
        installed = {
            device: bid
            for device, bid in desired.items()
            if install_outcome(session.known.row(device), bid).outcome is Outcome.INSTALLED
        }
        doomed = unwanted_bundles(published, desired, installed)
        for bid in doomed:
            if not args.json:
                print(
                    f"{'would delete' if args.dry_run else 'deleting'} bundle {bid} "
                    f"({published[bid]} blocks)"
                )
            if not args.dry_run:
                clear_retained(
                    client,
                    [topics.header(bid), *(topics.block(bid, i) for i in range(published[bid]))],
                )
    kept = sorted(b for b in published if b not in doomed)
    if args.json:
        document = {
            "dry_run": args.dry_run,
            "kept": kept,
            "deleted": {b: published[b] for b in sorted(doomed)},
            "desired_read": "wildcard" if session.registry is None else "exact",
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(f"{len(kept)} bundle(s) kept, {len(doomed)} deleted")
    return 0


def exact_headers(
    client: EventConnection, topics: BundleTopics, bids: list[str], limits: Limits
) -> dict[str, int]:
    """Block counts of the bundles ``bids`` (named by desired commands) read by exact topic: a
    broker that delivers no retained message to the ``+/header`` wildcard (RabbitMQ) still
    shows the bundles some device was told to install, and they can be deleted once installed."""
    payloads, _unread = read_retained(
        client, [topics.header(b) for b in bids], max_payload=limits.max_header
    )
    counts = {}
    for bid in bids:
        header = payloads.get(str(topics.header(bid)))
        if header is None:
            continue
        try:
            counts[bid] = block_count(header, limits)
        except (BundleRejected, ValueError) as exc:
            _log.warning("retained header %s is unreadable (%s); left alone", bid, exc)
    return counts


def desired_commands(client: EventConnection, session: FleetSession) -> dict[str, bytes]:
    """Each device's retained desired command, by device. With a registry: one exact topic per
    registered device (no wildcard: brokers that do not deliver retained messages to wildcard
    subscriptions, or drop what exceeds a client's queue, still answer all of them); a topic
    that could not be read stops gc, which must never delete a bundle someone still wants.
    Without one: a ``+`` wildcard, which can miss commands on large fleets."""
    prefix = session.prefix
    registry = session.registry
    if registry is None:
        commands = client.subscribe(
            TopicFilter(f"{prefix}/+/commands/desired"),
            maxsize=100_000,
            max_payload=MAX_COMMAND_BYTES,
        )
        return {m.topic.split("/")[-3]: m.payload for m in collect(commands)}
    topic_of = {
        str(command_topic(DeviceTopics(prefix, d), COMMAND_DESIRED)): d for d in registry.ids()
    }
    payloads, unread = read_retained(
        client, [Topic(t) for t in topic_of], max_payload=MAX_COMMAND_BYTES
    )
    if unread:
        listed = ", ".join(topic_of[t] for t in unread[:5]) + (" ..." if len(unread) > 5 else "")
        raise IncompleteView(
            f"the desired commands of {len(unread)} of {len(topic_of)} registered device(s) "
            f"could not be read ({listed}); nothing deleted"
        )
    return {topic_of[t]: p for t, p in payloads.items()}
