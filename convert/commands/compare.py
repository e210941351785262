"""``edge-convert compare``: every compression method on one model, measured the same way."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.fsutil import atomic_write
from convert.compare import VARIANTS, CompareOptions, compare
from convert.compress import SCHEDULES
from convert.progress import ProgressBars


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="the trained .keras model")
    parser.add_argument(
        "-o", "--outdir", type=Path, required=True, help="directory for the results (created)"
    )
    parser.add_argument("--data", type=Path, required=True, help="training .npz (x, y)")
    parser.add_argument("--validate", type=Path, required=True, help="held-out .npz (x, y)")
    parser.add_argument("--representative", type=Path, required=True, help="int8 calibration data")
    parser.add_argument("--student", type=Path, help=".keras student for the distilled variant")
    parser.add_argument("--sparsity", type=float, default=0.8, help="default %(default)s")
    parser.add_argument("--schedule", choices=SCHEDULES, default="polynomial")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads, all variants")
    parser.add_argument("--runs", type=int, default=100, help="invokes per timing round")
    parser.add_argument(
        "--variants",
        type=lambda text: tuple(v.strip() for v in text.split(",") if v.strip()),
        help=f"comma-separated subset of {','.join(VARIANTS)} "
        "(default: all; distilled-int8 only with --student)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")


def run(args: argparse.Namespace) -> int:
    variants = args.variants or tuple(
        v for v in VARIANTS if v != "distilled-int8" or args.student is not None
    )
    bars = ProgressBars(sys.stderr)  # bars only when stderr is a terminal
    options = CompareOptions(
        data=args.data,
        validate=args.validate,
        representative=args.representative,
        student=args.student,
        sparsity=args.sparsity,
        schedule=args.schedule,
        threads=args.threads,
        runs=args.runs,
        variants=variants,
        progress=bars.message,
        tick=bars.tick,
    )
    try:
        result = compare(args.src, args.outdir, options)
    finally:
        bars.close()
    document = json.dumps(result.document, indent=2).encode() + b"\n"
    atomic_write(args.outdir / "compare.json", document)
    for variant, report in result.reports.items():
        atomic_write(args.outdir / f"{variant}.json", json.dumps(report, indent=2).encode())
    table = result.markdown()
    atomic_write(args.outdir / "compare.md", table.encode() + b"\n")
    if not args.no_plot:
        from convert.plot import accuracy_size_png

        png = accuracy_size_png(result.rows, result.keras_accuracy, f"{args.src.name}: variants")
        atomic_write(args.outdir / "compare.png", png)
    print(table)
    written = "compare.json, compare.md" + ("" if args.no_plot else ", compare.png")
    print(f"edge-convert: wrote {written} in {args.outdir}", file=sys.stderr)
    return 0
