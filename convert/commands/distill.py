"""``edge-convert distill``: train a small student on a teacher's soft targets, then convert it."""

from __future__ import annotations

import argparse
from pathlib import Path

from convert.api import ConversionResult, ConvertOptions
from convert.commands.convert import (
    add_common,
    add_training,
    run_converting,
    train_options,
)
from convert.compress import distill

DEFAULT_EPOCHS = 40
DEFAULT_LEARNING_RATE = 1e-3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", type=Path, required=True, help="the trained .keras teacher")
    parser.add_argument(
        "--student",
        type=Path,
        required=True,
        help=".keras student (same input and number of outputs; trained from its weights)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=4.0,
        help="softens both models' outputs for the distillation loss (default %(default)s)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.1,
        help="weight of the hard-label loss; 1 - alpha goes to the teacher's soft targets "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--save-keras", type=Path, help="also write the trained student (.keras or .h5)"
    )
    add_common(parser, quantize="int8")
    add_training(parser, DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, data_required=True)


def run(args: argparse.Namespace) -> int:
    def produce(options: ConvertOptions) -> ConversionResult:
        return distill(
            args.teacher,
            args.output,
            options,
            train_options(args),
            student=args.student,
            temperature=args.temperature,
            alpha=args.alpha,
        )

    return run_converting(args, produce)
