"""k of n fleet keys from edge-fleet: --co-sign adds distinct signatures to every command."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.keys import encode_private
from agent.bundle.trust import TrustRoot
from agent.update.commands import open_command, rollback_command, sign_command
from fleet.commands.common import add_connection_arguments
from fleet.commands.push import fleet_signers
from fleet.settings import FleetSettings


def _key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(encode_private(key))
    return key


def test_co_signed_commands_meet_a_threshold_of_two(tmp_path: Path) -> None:
    first, second = _key(tmp_path / "a.key"), _key(tmp_path / "b.key")
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    args = parser.parse_args(["--co-sign", str(tmp_path / "b.key")])
    signers = fleet_signers(FleetSettings(fleet_key=tmp_path / "a.key"), args.co_sign)
    fleet = TrustRoot.from_keys([first.public_key(), second.public_key()], 2, role="fleet")
    envelope = sign_command(rollback_command("cam-1", 1.8e9), signers)
    assert len(open_command(envelope, fleet, "cam-1").signers) == 2
