"""``edge-fleet trust init|rotate|revoke``: the devices' root of trust, changed over MQTT.

* ``init`` writes root metadata version 1 (provision it on each device as ``keys.root_file``).
* ``rotate`` writes version N+1 from version N: add keys, remove keys, change thresholds;
  signed by a threshold of N's root keys and of N+1's (``--sign`` every key needed).
* ``revoke KEY`` is ``rotate`` that removes one key from every role: one command to revoke a
  compromised release or fleet key.

With ``--publish`` the new version is published retained on ``<prefix>/trust/root/<version>``;
earlier versions stay retained there, so a device that was offline catches up through each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.bundle.crypto import keyid
from agent.bundle.files import read_input, read_release_public
from agent.bundle.keys import MAX_KEY_FILE, decode_release_private
from agent.bundle.root import (
    MAX_ROOT_BYTES,
    ROLES,
    Root,
    load_root,
    make_root,
    next_root,
    role_keys,
)
from agent.errors import BundleRejected, InputError
from agent.fsutil import atomic_write
from agent.mqtt.topics import Topic
from agent.update.freeze import make_timestamp
from agent.update.protocol import root_topic
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.commands.push import fleet_signers
from fleet.connection import connect
from fleet.publish import publish_all

Roles = dict[str, tuple[list[Ed25519PublicKey], int]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="write root metadata version 1")
    for role in ROLES:
        init.add_argument(
            f"--{role}", action="append", type=Path, required=True, help=f"{role} public key"
        )
    rotate = actions.add_parser("rotate", help="write version N+1: add/remove keys, thresholds")
    rotate.add_argument("--from", dest="current", type=Path, required=True, help="version N")
    for role in ROLES:
        rotate.add_argument(f"--add-{role}", action="append", type=Path, default=[])
    rotate.add_argument("--remove", action="append", default=[], help="public key file or keyid")
    revoke = actions.add_parser("revoke", help="write version N+1 without one key, in any role")
    revoke.add_argument("key", help="the compromised key: its public key file or keyid (hex)")
    revoke.add_argument("--from", dest="current", type=Path, required=True, help="version N")
    stamp = actions.add_parser(
        "timestamp", help="publish a signed timestamp (fleet key; republish from a timer)"
    )
    stamp.add_argument("--expires-hours", type=float, default=24.0, help="default 24")
    add_connection_arguments(stamp)
    for sub in (init, rotate, revoke):
        for role in ROLES:
            sub.add_argument(f"--{role}-threshold", type=int, help=f"{role} keys needed")
        sub.add_argument("--sign", action="append", type=Path, required=True, help="root key")
        sub.add_argument("--expires-days", type=float, default=365.0, help="default 365")
        sub.add_argument("--out", type=Path, required=True, help="where to write the metadata")
        sub.add_argument("--publish", action="store_true", help="publish it (retained)")
        add_connection_arguments(sub)


def run(args: argparse.Namespace) -> int:
    if args.action == "timestamp":
        return publish_timestamp(args)
    if args.expires_days <= 0:
        raise InputError(f"--expires-days {args.expires_days:g}: devices refuse an expired root")
    signers = [_private(path) for path in args.sign]
    if args.action == "init":
        version = 1
        roles = {r: ([read_release_public(p) for p in getattr(args, r)], 1) for r in ROLES}
    else:
        current = _current(args.current)
        version = current.version + 1
        removed = [args.key] if args.action == "revoke" else list(args.remove)
        added = {r: getattr(args, f"add_{r}", []) for r in ROLES}
        roles = rotated_roles(current, added, [_keyid(k) for k in removed])
    for name, (keys, kept) in roles.items():
        wanted = getattr(args, f"{name}_threshold")
        roles[name] = (keys, wanted if wanted is not None else min(kept, len(keys)))
    try:
        envelope = make_root(version, int(time.time() + args.expires_days * 86400), roles, signers)
        if version == 1:
            load_root(envelope)
        else:
            next_root(current, envelope)  # what every device will check
    except (ValueError, BundleRejected) as exc:
        raise InputError(f"cannot make root version {version}: {exc}") from None
    atomic_write(args.out, envelope, 0o644)
    print(f"root version {version} written to {args.out}")
    for name, (keys, threshold) in roles.items():
        ids = ", ".join(keyid(k).hex()[:16] for k in keys)
        print(f"  {name}: {threshold} of {len(keys)} ({ids})")
    if args.publish:
        settings = settings_from(args)
        with connect(settings) as client:
            publish_all(client, [(root_topic(settings.topic_prefix, version), envelope)])
        print(f"published retained on {root_topic(settings.topic_prefix, version)}")
    return 0


def publish_timestamp(args: argparse.Namespace) -> int:
    """A signed timestamp on ``<prefix>/trust/timestamp`` (retained): devices with
    ``update.freeze_after_s`` report ``fleet_silent_s`` when none fresh reaches them."""
    settings = settings_from(args)
    now = int(time.time())
    envelope = make_timestamp(
        now, now + int(args.expires_hours * 3600), fleet_signers(settings, args.co_sign)
    )
    topic = Topic(f"{settings.topic_prefix}/trust/timestamp")
    with connect(settings) as client:
        publish_all(client, [(topic, envelope)])
    print(f"timestamp {now} published retained on {topic}")
    return 0


def rotated_roles(
    current: Root, added: Mapping[str, Sequence[Path]], removed: Sequence[bytes]
) -> Roles:
    """The roles of the next version: ``current``'s, plus ``added`` files, minus ``removed``
    key ids (from every role). Thresholds are kept (the caller clamps or overrides them)."""
    gone = set(removed)
    known = {kid for role in (current.root, current.release, current.fleet) for kid in role.keys}
    unknown = gone - known
    if unknown:
        raise InputError(f"key {sorted(unknown)[0].hex()[:16]} is not in root {current.version}")
    roles: Roles = {}
    for name, role in zip(ROLES, (current.root, current.release, current.fleet), strict=True):
        keys = [k for k in role_keys(role) if keyid(k) not in gone]
        keys += [read_release_public(p) for p in added.get(name, ())]
        if not keys:
            raise InputError(f"the {name} role would have no key left; add one with --add-{name}")
        roles[name] = (keys, role.threshold)
    return roles


def _current(path: Path) -> Root:
    """Version N as written by this command (checked against its own root keys)."""
    data = read_input(path, MAX_ROOT_BYTES, "root metadata")
    try:
        return load_root(data)
    except BundleRejected as exc:
        raise InputError(f"{path}: {exc}") from None


def _private(path: Path) -> Ed25519PrivateKey:
    return decode_release_private(read_input(path, MAX_KEY_FILE, "root key"), str(path))


def _keyid(value: str) -> bytes:
    path = Path(value)
    if path.exists():
        return keyid(read_release_public(path))
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InputError(f"{value!r} is neither a public key file nor a hex keyid") from None
    if len(raw) != 32:
        raise InputError(f"keyid {value!r} must be 64 hex digits")
    return raw
