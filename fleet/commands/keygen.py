"""``edge-fleet keygen``: the Ed25519 key that signs commands to devices (a role of its own).

The fleet key is not a release key: it may tell a device which signed bundle to install or to
roll back, but it cannot make a bundle. Devices list its public file in ``keys.fleet_keys``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.bundle.crypto import keyid
from agent.bundle.files import write_key_pair
from agent.bundle.keys import encode_private, encode_release_public


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for the key files")
    parser.add_argument(
        "--name", default="fleet", help="file stem: writes NAME.key (0600) and NAME.pub"
    )


def run(args: argparse.Namespace) -> int:
    key = Ed25519PrivateKey.generate()
    private_path, public_path = write_key_pair(
        args.out, args.name, encode_private(key), encode_release_public(key.public_key())
    )
    print(f"fleet signing key: {private_path} (keep it on the fleet manager's machine)")
    print(
        f"public key:        {public_path} (keyid {keyid(key.public_key()).hex()}; "
        "list it in each device's keys.fleet_keys)"
    )
    return 0
