"""``make demo``: the whole path on the bundled sample model, step by step.

Step 1 (issue 2): convert the digits model to full-integer int8 with real calibration data,
check it against Keras on held-out digits, and print the report. Later steps (bundle, broker,
agent) are added by their issues.

Run from the repository root: ``.venv/bin/python -m agent.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from agent.fsutil import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "models" / "digits"


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def convert_step(out: Path) -> Path:
    """Convert the sample model to int8 in ``out``; print the report; return the .tflite path."""
    # The converter is a workstation tool; import it only when the demo runs (never on a device).
    from convert.api import ConvertOptions, check_accuracy, convert_keras
    from convert.report import format_table

    options = ConvertOptions(
        quantize="int8",
        representative=DIGITS / "calibration.npz",
        validate=DIGITS / "heldout.npz",
        max_accuracy_drop=1.0,
        labels=tuple((DIGITS / "labels.txt").read_text().split()),
        progress=lambda message: _say(f"  {message}"),
    )
    _say("step 1: convert models/digits/digits.keras to int8 and validate it against Keras")
    result = convert_keras(DIGITS / "digits.keras", out / "digits_int8.tflite", options)
    atomic_write(out / "digits_int8.json", result.metadata.to_json())
    if result.canary is not None:
        atomic_write(out / "digits_int8_canary.npz", result.canary.to_npz())
    print(format_table(result.report))
    check_accuracy(result.validation, options.max_accuracy_drop)
    _say(f"step 1 done: {result.tflite_path} ({result.report['size_ratio']:.2f}x float32)")
    return result.tflite_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.demo", description=__doc__)
    parser.add_argument("--out", type=Path, help="keep the outputs here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        convert_step(args.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="edge-demo-") as tmp:
        convert_step(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
