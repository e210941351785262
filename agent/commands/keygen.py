"""``edge-agent keygen``: this device's X25519 key pair (bundles are encrypted to it) and its
Ed25519 report-signing key pair (``NAME-report.key`` for ``keys.report_key``,
``NAME-report.pub`` for ``edge-fleet devices add --report-key``); the public files carry the
device id. Group ids get no report key (a group reports nothing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle.files import write_key_pair
from agent.bundle.keys import (
    check_device_id,
    encode_device_public,
    encode_private,
    encode_report_public,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for the key files")
    parser.add_argument(
        "--device-id",
        required=True,
        help="the id bundles are encrypted for (a 'group:NAME' id makes a shared group key)",
    )
    parser.add_argument(
        "--name", default="device", help="file stem: writes NAME.key (0600) and NAME.pub"
    )


def run(args: argparse.Namespace) -> int:
    device_id = check_device_id(args.device_id)
    key = X25519PrivateKey.generate()
    private_path, public_path = write_key_pair(
        args.out, args.name, encode_private(key), encode_device_public(device_id, key.public_key())
    )
    print(f"device key: {private_path} (stays on the device)")
    print(f"public key: {public_path} (give it to the fleet manager; device id {device_id})")
    if device_id.startswith("group:"):
        return 0
    signer = Ed25519PrivateKey.generate()
    report_private, report_public = write_key_pair(
        args.out,
        f"{args.name}-report",
        encode_private(signer),
        encode_report_public(device_id, signer.public_key()),
    )
    print(f"report signing key: {report_private} (keys.report_key; stays on the device)")
    print(f"report public key: {report_public} (edge-fleet devices add {device_id} --report-key)")
    return 0
