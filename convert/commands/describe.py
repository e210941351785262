"""``edge-convert describe MODEL.tflite``: tensors, ops, embedded metadata, the task and the
metadata ``bundle`` would write (``--json`` for the machine-readable form)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.bundle.container import Limits
from agent.bundle.files import read_input
from agent.clikit import add_json_flag
from agent.errors import InputError
from convert.commands.modelopts import add_model_arguments, model_options
from convert.describe import describe, inspect_model, recognise_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL.tflite")
    add_json_flag(parser)
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    data = read_input(args.model, Limits().max_payload, "model")
    facts = inspect_model(data, str(args.model))
    shape = facts.inputs[0].shape if facts.inputs else ()
    hw = (shape[1], shape[2]) if len(shape) == 4 else None
    recognised, problem = None, ""
    try:
        recognised = recognise_model(facts, model_options(args, hw))
    except InputError as exc:
        problem = str(exc)
    report = describe(facts, recognised, problem)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(_text(args.model, report))
    return 0


def _text(path: Path, r: dict[str, Any]) -> str:
    lines = [f"{path}"]
    for kind in ("inputs", "outputs"):
        for t in r[kind]:
            q = f" scale {t['scale']:.6g} zero point {t['zero_point']}" if t["scale"] else ""
            lines.append(f"  {kind[:-1]:6} {t['name']}: {t['shape']} {t['dtype']}{q}")
    ops = ", ".join(f"{o['name']} x{o['count']}" for o in r["operators"])
    lines.append(f"  operators: {ops}")
    if r["custom_ops"]:
        lines.append(f"  custom ops: {', '.join(r['custom_ops'])}")
    if r["edgetpu"]:
        lines.append(
            "  Edge TPU: compiled for the Edge TPU (needs a CPU variant to run without one)"
        )
    if not r["allocated"]:
        lines.append(f"  LiteRT cannot allocate it on the CPU: {r['allocation_error']}")
    if "hint" in r:
        lines.append(f"  hint: {r['hint']}")
    meta = r["embedded_metadata"]
    if meta:
        lines.append(f"  embedded metadata: {meta['name']!r} {meta['description']!r}")
        for t in meta["inputs"]:
            if t["mean"]:
                lines.append(f"    input normalisation: mean {t['mean']} std {t['std']}")
    if r["associated_files"]:
        lines.append(f"  associated files: {', '.join(r['associated_files'])}")
    if r["task"] is None:
        lines.append(f"  task: not recognised: {r['problem']}")
        return "\n".join(lines)
    lines.append(f"  task: {r['task']}")
    lines += [f"    {reason}" for reason in r["reasons"]]
    lines.append("  metadata bundle would write:")
    lines.append("    " + json.dumps(r["metadata"], sort_keys=True)[:4000])
    return "\n".join(lines)
