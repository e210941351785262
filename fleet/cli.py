"""``edge-fleet``: push model bundles to devices over MQTT, watch them, roll out, roll back."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from agent.clikit import Command, run_cli

COMMANDS = (
    Command("status", "fleet.commands.status", "the fleet: counts, failures, devices"),
    Command("devices", "fleet.commands.devices", "the device registry the view counts on"),
    Command("keygen", "fleet.commands.keygen", "create the Ed25519 fleet signing key"),
    Command("push", "fleet.commands.push", "publish a bundle and tell devices to install it"),
    Command("rollback", "fleet.commands.rollback", "tell a device to go back one model"),
    Command(
        "rollout", "fleet.commands.rollout", "staged rollouts: start/status/pause/resume/cancel"
    ),
    Command("gc", "fleet.commands.gc", "delete retained bundles no device wants any more"),
    Command("trust", "fleet.commands.trust", "root of trust: init, rotate, revoke a key"),
)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    verbose = any(w in ("-v", "--verbose") or w.startswith("-vv") for w in words)
    # Results go to stdout, progress and problems to stderr; the MQTT client's INFO lines
    # (connected, subscribed) only with -v.
    logging.getLogger("agent").setLevel(logging.NOTSET if verbose else logging.WARNING)
    if "rollout" in words:  # the old form `rollout BUNDLE ...` means `rollout start BUNDLE ...`
        at = words.index("rollout") + 1
        verbs = ("start", "status", "pause", "resume", "cancel", "-h", "--help")
        if at < len(words) and words[at] not in verbs:
            words.insert(at, "start")
    return run_cli("edge-fleet", __doc__ or "", COMMANDS, words)


if __name__ == "__main__":
    raise SystemExit(main())
