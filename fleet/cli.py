"""``edge-fleet``: push model bundles to devices over MQTT, watch them, roll out, roll back."""

from __future__ import annotations

from collections.abc import Sequence

from agent.clikit import Command, run_cli

COMMANDS = (
    Command("status", "fleet.commands.status", "table of devices from retained status"),
    Command("keygen", "fleet.commands.keygen", "create the Ed25519 fleet signing key"),
    Command("push", "fleet.commands.push", "publish a bundle and tell devices to install it"),
    Command("rollback", "fleet.commands.rollback", "tell a device to go back one model"),
    Command("rollout", "fleet.commands.rollout", "staged rollout: canaries, then batches"),
    Command("gc", "fleet.commands.gc", "delete retained bundles no device wants any more"),
    Command("trust", "fleet.commands.trust", "root of trust: init, rotate, revoke a key"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("edge-fleet", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
