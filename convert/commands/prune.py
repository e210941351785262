"""``edge-convert prune``: magnitude pruning with fine-tuning, then the int8 conversion."""

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
from convert.compress import DEFAULT_MIN_LAYER_WEIGHTS, SCHEDULES, prune

DEFAULT_EPOCHS = 15
DEFAULT_LEARNING_RATE = 5e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="the trained .keras (or .h5) model to prune")
    parser.add_argument(
        "--sparsity", type=float, required=True, help="share of weights to zero (0.5..0.9)"
    )
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="polynomial",
        help="polynomial: ramp up to --sparsity over half the steps, then fine-tune at it; "
        "constant: --sparsity from the first step (default %(default)s)",
    )
    parser.add_argument(
        "--min-layer-weights",
        type=int,
        default=DEFAULT_MIN_LAYER_WEIGHTS,
        help="layers with fewer kernel weights stay dense (default %(default)s; 0 prunes all)",
    )
    parser.add_argument(
        "--save-keras", type=Path, help="also write the pruned, stripped Keras model (.h5)"
    )
    add_common(parser, quantize="int8")
    add_training(parser, DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, data_required=True)


def run(args: argparse.Namespace) -> int:
    def produce(options: ConvertOptions) -> ConversionResult:
        return prune(
            args.src,
            args.output,
            options,
            train_options(args),
            sparsity=args.sparsity,
            schedule=args.schedule,
            min_layer_weights=args.min_layer_weights,
        )

    return run_converting(args, produce)
