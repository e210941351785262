"""``edge-convert bundle``: sign and encrypt a ``.tflite`` (plus its metadata, labels and
canary) into a model bundle for a list of devices."""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from agent.bundle.container import Limits
from agent.bundle.crypto import CIPHERS, DEFAULT_CIPHER
from agent.bundle.files import read_device_public, read_input
from agent.bundle.keys import MAX_KEY_FILE, decode_release_private
from agent.bundle.manifest import MAX_COUNTER
from agent.bundle.writer import RecipientKey, Release, build_bundle
from agent.errors import InputError
from agent.fsutil import atomic_write
from agent.runtime.model import EDGETPU_HINT
from agent.schema.canary import MAX_CANARY_BYTES, CanaryError, load_canary
from agent.schema.meta import MAX_METADATA_BYTES, MetadataError, ModelMetadata
from agent.schema.stages import STAGE_FILES
from convert.commands.modelopts import add_model_arguments, model_options, read_label_file
from convert.describe import ModelFacts, inspect_model, recognise_model
from convert.recognise import EDGETPU_OP

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_LABELS = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL.tflite")
    parser.add_argument("--name", required=True, help="model name (lower case, e.g. digits)")
    parser.add_argument(
        "--version", type=int, required=True, help="monotonic release counter N (>= 0)"
    )
    parser.add_argument("--signing-key", type=Path, action="append", required=True, default=[])
    parser.add_argument(
        "--recipient", type=Path, action="append", required=True, default=[], help="DEVICE.pub"
    )
    parser.add_argument(
        "--metadata",
        type=Path,
        help="model metadata JSON (edge-convert convert); derived from the model when omitted",
    )
    parser.add_argument("--canary", type=Path, help="canary.npz (input, expected, atol)")
    parser.add_argument("--cpu-model", type=Path, help="CPU variant of an Edge TPU model")
    parser.add_argument(
        "--stage",
        type=Path,
        action="append",
        default=[],
        metavar="STAGE.tflite",
        help="an earlier stage of a model chain, in order (stage_1.tflite, ...); MODEL is the "
        "last; --metadata must declare them in its stages",
    )
    parser.add_argument("--hardware", action="append", default=[], help="allowed hardware id")
    parser.add_argument("--expires", help="lifetime such as 30d, 12h, 2w (default: none)")
    parser.add_argument("--cipher", choices=CIPHERS, default=DEFAULT_CIPHER)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.edgepkg")
    parser.add_argument(
        "--allow-edgetpu-only",
        action="store_true",
        help="bundle an Edge TPU-compiled model without a CPU variant (devices with a TPU only)",
    )
    add_model_arguments(parser)


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``90m``, ``12h``, ``30d`` or ``1w2d``."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InputError(f"--expires {text!r}: use a number and a unit s, m, h, d or w (e.g. 30d)")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise InputError("--expires must be a positive duration")
    return seconds


def run(args: argparse.Namespace) -> int:
    limits = Limits()
    if not 0 <= args.version <= MAX_COUNTER:
        raise InputError(f"--version must be in 0..{MAX_COUNTER}")
    files = _files(args, limits)
    if args.metadata is not None:
        metadata = _metadata(files.get("metadata.json"), args.metadata)
    elif args.stage:
        raise InputError("a model chain (--stage) needs --metadata declaring its stages")
    else:
        metadata = derive_metadata(args, files)
        files["metadata.json"] = metadata.to_json()
    _check_stages(args.stage, metadata)
    created = int(time.time())
    release = Release(
        name=args.name,
        counter=args.version,
        created=created,
        expires=None if args.expires is None else created + parse_duration(args.expires),
        hardware=tuple(args.hardware),
        metadata=metadata,
        cipher=args.cipher,
    )
    signers = [
        decode_release_private(read_input(p, MAX_KEY_FILE, "signing key"), str(p))
        for p in args.signing_key
    ]
    recipients = [
        RecipientKey(d.device_id, d.public_key) for d in map(read_device_public, args.recipient)
    ]
    try:
        bundle = build_bundle(release, files, signers, recipients, limits=limits)
    except ValueError as exc:
        raise InputError(f"cannot build bundle: {exc}") from None
    atomic_write(args.output, bundle, 0o644)
    print(
        f"{args.output}: {args.name} release {args.version}, {len(bundle)} bytes, "
        f"{len(signers)} signature(s), {len(recipients)} recipient(s)"
    )
    return 0


def _files(args: argparse.Namespace, limits: Limits) -> dict[str, bytes]:
    files = {"model.tflite": read_input(args.model, limits.max_payload, "model")}
    optional = {
        "model_cpu.tflite": (args.cpu_model, limits.max_payload),
        "metadata.json": (args.metadata, MAX_METADATA_BYTES),
        "labels.txt": (args.labels if args.metadata is not None else None, _MAX_LABELS),
        "canary.npz": (args.canary, MAX_CANARY_BYTES),
    }
    for name, (path, cap) in optional.items():
        if path is not None:
            files[name] = read_input(path, cap, name)
    for name, path in zip(STAGE_FILES, args.stage, strict=False):
        files[name] = read_input(path, limits.max_payload, name)
    if "canary.npz" in files:
        try:
            load_canary(files["canary.npz"])
        except CanaryError as exc:
            raise InputError(f"{args.canary}: {exc}") from None
    if "labels.txt" in files:
        read_label_file(args.labels, args.label_offset)  # refuses unreadable maps up front
    return files


def derive_metadata(args: argparse.Namespace, files: dict[str, bytes]) -> ModelMetadata:
    """Metadata from the model file, its embedded metadata and the command line."""
    facts = inspect_model(files["model.tflite"], str(args.model))
    cpu = None
    if "model_cpu.tflite" in files:
        cpu = inspect_model(files["model_cpu.tflite"], str(args.cpu_model))
        if not cpu.allocated:
            raise InputError(
                f"--cpu-model {args.cpu_model} does not run on the CPU: {cpu.allocation_error}"
            )
        _same_interface(facts, cpu)
    edgetpu = any(o.name == EDGETPU_OP for o in facts.info.operator_codes)
    if edgetpu and cpu is None and not args.allow_edgetpu_only:
        raise InputError(f"{EDGETPU_HINT} (or --allow-edgetpu-only for TPU-only devices)")
    if not facts.allocated and not edgetpu:
        raise InputError(f"{args.model} does not load in LiteRT: {facts.allocation_error}")
    known = cpu if cpu is not None else facts
    shape = known.inputs[0].shape if known.inputs else ()
    hw = (shape[1], shape[2]) if len(shape) == 4 else None
    options = model_options(args, hw)
    recognised = recognise_model(replace(facts, outputs=known.outputs), options)
    for reason in recognised.reasons:
        print(f"edge-convert: {reason}", file=sys.stderr)
    return recognised.metadata


def _same_interface(tpu: ModelFacts, cpu: ModelFacts) -> None:
    a = [(s.shape, s.dtype) for s in tpu.inputs]
    b = [(s.shape, s.dtype) for s in cpu.inputs]
    if a != b or len(tpu.outputs) != len(cpu.outputs):
        raise InputError(
            f"--cpu-model does not match the model: inputs {b} vs {a}, "
            f"{len(cpu.outputs)} vs {len(tpu.outputs)} outputs"
        )


def _check_stages(stages: list[Path], metadata: ModelMetadata | None) -> None:
    """``--stage`` files and ``metadata.stages`` must describe the same chain."""
    if len(stages) > len(STAGE_FILES):
        raise InputError(f"at most {len(STAGE_FILES)} --stage models (and MODEL, the last)")
    declared = () if metadata is None else metadata.stages
    if stages and len(declared) != len(stages) + 1:
        raise InputError(
            f"{len(stages)} --stage model(s) and MODEL make a chain of {len(stages) + 1}; "
            f"--metadata declares {len(declared)} stages"
        )
    if declared and not stages:
        raise InputError(f"--metadata declares a chain of {len(declared)} stages: give --stage")


def _metadata(data: bytes | None, path: Path | None) -> ModelMetadata | None:
    if data is None:
        return None
    try:
        return ModelMetadata.from_json(data)
    except MetadataError as exc:
        raise InputError(f"{path}: {exc}") from None
