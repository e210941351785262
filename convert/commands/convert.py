"""``edge-convert convert``: Keras → (quantized) TFLite, with a report proving it still works."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent.errors import InputError
from agent.fsutil import atomic_write
from convert.api import (
    DEFAULT_CALIBRATION_SAMPLES,
    IO_TYPES,
    QUANTIZE_MODES,
    ConversionResult,
    ConvertOptions,
    check_accuracy,
    convert_keras,
)
from convert.compress import TrainOptions, auto_qat, qat
from convert.progress import ProgressBars
from convert.report import format_table

MAX_LABELS_BYTES = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help=".keras file, legacy .h5 or SavedModel directory")
    add_common(parser)
    parser.add_argument(
        "--qat",
        nargs="?",
        const="always",
        choices=("always", "auto"),
        help="quantization-aware fine-tuning on --data before the int8 conversion; "
        "'auto': only when post-training int8 drops more than --max-accuracy-drop",
    )
    add_training(parser, epochs=2, learning_rate=1e-5, data_required=False)


def add_training(
    parser: argparse.ArgumentParser, epochs: int, learning_rate: float, data_required: bool
) -> None:
    """The training flags shared by ``prune``, ``distill`` and ``convert --qat``."""
    parser.add_argument(
        "--data",
        type=Path,
        required=data_required,
        help="training data: .npz with x (shaped like the model input) and integer labels y",
    )
    parser.add_argument("--epochs", type=int, default=epochs, help="default %(default)s")
    parser.add_argument("--batch-size", type=int, default=32, help="default %(default)s")
    parser.add_argument(
        "--learning-rate", type=float, default=learning_rate, help="Adam, default %(default)s"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, default %(default)s")


def train_options(args: argparse.Namespace) -> TrainOptions:
    if args.data is None:
        raise InputError("training needs --data: an .npz with x and integer labels y")
    return TrainOptions(
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        save_keras=getattr(args, "save_keras", None),
    )


def add_common(parser: argparse.ArgumentParser, quantize: str = "float32") -> None:
    """Output, quantization, validation and report flags of every converting command."""
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .tflite to write")
    parser.add_argument("--quantize", choices=QUANTIZE_MODES, default=quantize)
    parser.add_argument(
        "--representative",
        type=Path,
        help="calibration data for int8: a directory of images or a .npy/.npz (key x)",
    )
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=DEFAULT_CALIBRATION_SAMPLES,
        help="how many calibration samples to use (default %(default)s)",
    )
    parser.add_argument("--io-type", choices=IO_TYPES, default="float32", help="int8 models only")
    parser.add_argument("--validate", type=Path, help=".npz with x (and y) to compare Keras/TFLite")
    parser.add_argument(
        "--max-accuracy-drop", type=float, metavar="PTS", help="fail above this drop in points"
    )
    parser.add_argument("--report", type=Path, help="write the report as JSON here")
    parser.add_argument("--metadata", type=Path, help="write the model metadata JSON here")
    parser.add_argument("--labels", type=Path, help="text file: one label per line, output order")
    parser.add_argument("--canary", type=Path, help="write a canary .npz here (needs --validate)")
    parser.add_argument("--color", choices=("rgb", "bgr", "gray"), help="camera colour order")
    parser.add_argument("--mean", type=_floats, default=(0.0,), help="comma-separated, default 0")
    parser.add_argument(
        "--std", type=_floats, default=(255.0,), help="comma-separated, default 255"
    )
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads for the timing")
    parser.add_argument("--edgetpu", action="store_true", help="also run edgetpu_compiler")
    parser.add_argument(
        "--min-tpu-coverage", type=float, metavar="F", help="fail below this fraction (0..1)"
    )


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _labels(path: Path | None) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        data = path.read_bytes()[: MAX_LABELS_BYTES + 1]
    except OSError as exc:
        raise InputError(f"cannot read labels {path}: {exc.strerror}") from None
    if len(data) > MAX_LABELS_BYTES:
        raise InputError(f"labels file {path} is larger than {MAX_LABELS_BYTES} bytes")
    return tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())


def options_from_args(args: argparse.Namespace, bars: ProgressBars) -> ConvertOptions:
    if args.canary is not None and args.validate is None:
        raise InputError("--canary needs --validate: the canary is the first validation sample")
    return ConvertOptions(
        quantize=args.quantize,
        io_type=args.io_type,
        representative=args.representative,
        calibration_samples=args.calibration_samples,
        validate=args.validate,
        max_accuracy_drop=args.max_accuracy_drop,
        threads=args.threads,
        color=args.color,
        mean=args.mean,
        std=args.std,
        labels=_labels(args.labels),
        edgetpu=args.edgetpu,
        min_tpu_coverage=args.min_tpu_coverage,
        progress=bars.message,
        tick=bars.tick,
    )


def write_outputs(result: ConversionResult, args: argparse.Namespace) -> None:
    if args.report is not None:
        atomic_write(args.report, json.dumps(result.report, indent=2).encode() + b"\n")
    if args.metadata is not None:
        atomic_write(args.metadata, result.metadata.to_json())
    if args.canary is not None and result.canary is not None:
        atomic_write(args.canary, result.canary.to_npz())


def run(args: argparse.Namespace) -> int:
    def produce(options: ConvertOptions) -> ConversionResult:
        if args.qat is None:
            if args.data is not None:
                raise InputError("--data is for training: add --qat (or use prune / distill)")
            return convert_keras(args.src, args.output, options)
        if args.qat == "auto":
            return auto_qat(args.src, args.output, options, train_options(args))
        return qat(args.src, args.output, options, train_options(args))

    return run_converting(args, produce)


def run_converting(
    args: argparse.Namespace, produce: Callable[[ConvertOptions], ConversionResult]
) -> int:
    """Progress on stderr (bars only on a terminal) around ``produce``, then :func:`finish`."""
    bars = ProgressBars(sys.stderr)
    options = options_from_args(args, bars)
    try:
        result = produce(options)
    finally:
        bars.close()
    return finish(result, args, options)


def finish(result: ConversionResult, args: argparse.Namespace, options: ConvertOptions) -> int:
    """Write the requested files, print the table, then enforce the accuracy limit."""
    write_outputs(result, args)
    print(format_table(result.report))
    check_accuracy(result.validation, options.max_accuracy_drop)
    return 0
