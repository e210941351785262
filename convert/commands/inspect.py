"""``edge-convert inspect``: a bundle's manifest, recipients and signatures, without decrypting.

With ``--trusted-key`` the signatures are verified first; without, the manifest is shown as
unverified (inspect never needs a device key).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.bundle.container import Limits, RawHeader, parse_header
from agent.bundle.crypto import PAYLOAD_TYPE
from agent.bundle.files import read_bundle, read_release_public
from agent.bundle.manifest import Manifest, parse_manifest
from agent.bundle.trust import TrustRoot
from agent.clikit import add_json_flag
from agent.schema.stages import StageSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE")
    parser.add_argument(
        "--trusted-key", type=Path, action="append", default=[], help="verify signatures first"
    )
    parser.add_argument("--threshold", type=int, default=1)
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    limits = Limits()
    data = read_bundle(args.bundle, limits)
    raw = parse_header(data, limits)
    verified = "not verified (pass --trusted-key)"
    if args.trusted_key:
        trust = TrustRoot.from_keys(map(read_release_public, args.trusted_key), args.threshold)
        signers = trust.verify(PAYLOAD_TYPE, raw.signed, raw.signatures)
        verified = f"verified: {len(signers)} trusted signer(s), threshold {args.threshold}"
    manifest = parse_manifest(raw.manifest, limits)
    if args.json:
        print(json.dumps(_as_json(raw, manifest, verified), indent=2, sort_keys=True))
    else:
        print("\n".join(_lines(raw, manifest, verified)))
    return 0


def _as_json(raw: RawHeader, manifest: Manifest, verified: str) -> dict[str, Any]:
    return {
        "manifest": manifest.to_dict(),
        "header_length": raw.prefix.header_length,
        "recipients": [r.recipient_id for r in raw.recipients],
        "signatures": [s.keyid.hex() for s in raw.signatures],
        "signatures_status": verified,
    }


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _lines(raw: RawHeader, manifest: Manifest, verified: str) -> list[str]:
    payload = manifest.payload
    lines = [
        f"name:       {manifest.name}",
        f"release:    {manifest.counter}",
        f"hardware:   {', '.join(manifest.hardware) or 'any'}",
        f"created:    {_when(manifest.created)}",
        f"expires:    {_when(manifest.expires)}",
        f"cipher:     {payload.cipher}, {payload.chunk_size}-byte chunks",
        f"payload:    {payload.length} bytes, sha256 {payload.sha256}, "
        f"{len(payload.blocks)} block(s) of {payload.block_size}",
        "files:",
        *(f"  {f.name:<18} {f.length:>10} bytes  sha256 {f.sha256}" for f in manifest.files),
        f"recipients: {', '.join(r.recipient_id for r in raw.recipients)}",
        f"signatures: {verified}",
        *(f"  keyid {s.keyid.hex()}" for s in raw.signatures),
    ]
    if manifest.metadata is not None:
        meta = manifest.metadata
        lines.append(f"metadata:   task {meta.task}, quantization {meta.quantization}")
        lines += [f"  input  {t.name} {t.dtype}{list(t.shape)}" for t in meta.inputs]
        lines += [f"  output {t.name} {t.dtype}{list(t.shape)}" for t in meta.outputs]
        if meta.labels:
            lines.append(
                f"  labels {', '.join(meta.labels[:10])}{' ...' if len(meta.labels) > 10 else ''}"
            )
        lines += [
            f"  stage {i + 1} {s.name} ({s.file}): window {s.window}, hop {s.hop}, "
            f"x * {s.scale:g} + {s.offset:g}{_crop_text(s)}"
            for i, s in enumerate(meta.stages)
        ]
    return lines


def _crop_text(stage: StageSpec) -> str:
    c = stage.crop
    if c is None:
        return ""
    turn = "no rotation" if c.rotation_keypoints is None else (
        f"rotated by keypoints {c.rotation_keypoints[0]}->{c.rotation_keypoints[1]} "
        f"to {c.target_angle:g} deg"
    )  # fmt: skip
    return f"; crop of up to {c.max_crops} detections >= {c.threshold:g}, box x{c.scale:g}, {turn}"
