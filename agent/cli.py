"""``edge-agent``: the device daemon and its offline tools."""

from __future__ import annotations

from collections.abc import Sequence

from agent.clikit import Command, run_cli

COMMANDS = (
    Command("run", "agent.commands.run", "run the inference service (systemd runs this)"),
    Command("check-config", "agent.commands.check_config", "validate a config file offline"),
    Command("keygen", "agent.commands.keygen", "create this device's X25519 key pair"),
    Command("verify", "agent.commands.verify", "verify, decrypt and test-load a model bundle"),
    Command("hass", "agent.commands.hass", "Home Assistant: remove this device's entities"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("edge-agent", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
