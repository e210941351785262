"""``edge-agent verify``: verify a bundle, decrypt it in memory, load it into LiteRT, run its
canary, and print a summary (``--json``: one JSON document). Exit 0 when all is well, 3 with a
reason code when the bundle is rejected, 1 when the model fails its canary or cannot be loaded
(the exit-code table: docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.bundle.container import Limits
from agent.bundle.files import (
    read_bundle,
    read_device_private,
    read_device_public,
    read_input,
    read_release_public,
)
from agent.bundle.state import ReleaseState, StateStore
from agent.bundle.trust import MAX_TRUST_BYTES, TrustRoot, load_trust
from agent.bundle.verify import BundleVerifier, DecryptedBundle, DeviceIdentity, open_bundle
from agent.clikit import EXIT_FAILED, EXIT_OK, add_json_flag
from agent.errors import BundleRejected, InputError
from agent.reasons import Reason
from agent.schema.canary import Canary, CanaryError, CanaryResult, check_canary, load_canary


@dataclass(frozen=True)
class LoadReport:
    backend: str
    accelerator: str
    latency_ms: float
    canary: CanaryResult | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, metavar="BUNDLE")
    trust = parser.add_mutually_exclusive_group(required=True)
    trust.add_argument("--trusted-key", type=Path, action="append", help="release public key")
    trust.add_argument("--trust-file", type=Path, help="versioned, signed trust file")
    parser.add_argument("--threshold", type=int, default=1, help="with --trusted-key (default 1)")
    parser.add_argument("--device-key", type=Path, required=True, help="this device's X25519 key")
    parser.add_argument("--device-id", help="default: the id in the .pub file beside the key")
    parser.add_argument("--hardware", help="this device's hardware id")
    parser.add_argument("--state-dir", type=Path, help="check counters and the time floor here")
    parser.add_argument("--backend", default="auto", help="LiteRT backend (default auto)")
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "edgetpu", "auto"))
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    limits = Limits()
    data = read_bundle(args.bundle, limits)
    key = read_device_private(args.device_key)
    device = DeviceIdentity(_device_id(args), key, args.hardware)
    state = StateStore(args.state_dir).load() if args.state_dir else ReleaseState()
    started = time.perf_counter()
    verifier = BundleVerifier(_trust(args), device, state, now=time.time(), limits=limits)
    bundle = open_bundle(data, verifier)
    verify_ms = (time.perf_counter() - started) * 1000
    report = _test_load(bundle, args.backend, args.accelerator)
    if args.json:
        print(json.dumps(_as_json(bundle, report, verify_ms), indent=2, sort_keys=True))
    else:
        print(_summary(bundle, report, verify_ms))
    return EXIT_OK if report.canary is None or report.canary.passed else EXIT_FAILED


def _device_id(args: argparse.Namespace) -> str:
    if args.device_id:
        return str(args.device_id)
    public = Path(args.device_key).with_suffix(".pub")
    if not public.exists():
        raise InputError(f"give --device-id or put the device public key at {public}")
    return read_device_public(public).device_id


def _trust(args: argparse.Namespace) -> TrustRoot:
    if args.trust_file is not None:
        return load_trust(read_input(args.trust_file, MAX_TRUST_BYTES, "trust file"))
    keys = [read_release_public(p) for p in args.trusted_key]
    try:
        return TrustRoot.from_keys(keys, args.threshold)
    except ValueError as exc:
        raise InputError(f"--threshold: {exc}") from None


def _test_load(bundle: DecryptedBundle, backend: str, accelerator: str) -> LoadReport:
    from agent.pipeline.tensors import dequantize
    from agent.runtime import open_model

    model_bytes = bundle.files["model.tflite"]
    cpu_model = bundle.file("model_cpu.tflite")
    model = open_model(
        bytes(model_bytes),
        backend=backend,
        accelerator=accelerator,
        cpu_fallback_model=None if cpu_model is None else bytes(cpu_model),
    )
    try:
        canary_bytes = bundle.file("canary.npz")
        canary = None if canary_bytes is None else _canary(canary_bytes)
        spec = model.inputs[0]
        sample = canary.input if canary else np.zeros(spec.shape, dtype=np.dtype(spec.dtype))
        started = time.perf_counter()
        outputs = model.invoke([sample])
        latency_ms = (time.perf_counter() - started) * 1000
        result = None
        if canary is not None:
            try:
                result = check_canary(dequantize(outputs[0], model.outputs[0]), canary)
            except CanaryError as exc:
                raise BundleRejected(Reason.MALFORMED, f"canary.npz: {exc}") from None
        return LoadReport(model.backend, model.accelerator, latency_ms, result)
    finally:
        model.close()


def _canary(data: memoryview) -> Canary:
    try:
        return load_canary(data)
    except CanaryError as exc:
        raise BundleRejected(Reason.MALFORMED, f"canary.npz: {exc}") from None


def _summary(bundle: DecryptedBundle, report: LoadReport, verify_ms: float) -> str:
    manifest = bundle.verified.manifest
    lines = [
        f"bundle:   {manifest.name} release {manifest.counter} "
        f"(verified, {len(bundle.verified.signers)} signer(s), recipient "
        f"{bundle.verified.recipient.recipient_id})",
        *(f"  {f.name:<18} {f.length:>10} bytes" for f in manifest.files),
        f"verify+decrypt: {verify_ms:.1f} ms",
        f"backend:  {report.backend} on {report.accelerator}",
        f"latency:  {report.latency_ms:.2f} ms (one invoke)",
    ]
    canary = report.canary
    if canary is None:
        lines.append("canary:   none in bundle")
    else:
        verdict = "passed" if canary.passed else "FAILED"
        lines.append(
            f"canary:   {verdict} "
            f"(max abs error {canary.max_abs_error:.3g}, atol {canary.atol:.3g})"
        )
    return "\n".join(lines)


def _as_json(bundle: DecryptedBundle, report: LoadReport, verify_ms: float) -> dict[str, object]:
    manifest = bundle.verified.manifest
    canary = report.canary
    return {
        "ok": canary is None or canary.passed,
        "bundle": {
            "name": manifest.name,
            "counter": manifest.counter,
            "signers": len(bundle.verified.signers),
            "recipient": bundle.verified.recipient.recipient_id,
            "files": {f.name: f.length for f in manifest.files},
        },
        "verify_ms": round(verify_ms, 3),
        "backend": report.backend,
        "accelerator": report.accelerator,
        "latency_ms": round(report.latency_ms, 3),
        "canary": None
        if canary is None
        else {
            "passed": canary.passed,
            "max_abs_error": canary.max_abs_error,
            "atol": canary.atol,
        },
    }
