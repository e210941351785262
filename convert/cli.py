"""``edge-convert``: turn a Keras model into a small, fast, verified TFLite model bundle."""

from __future__ import annotations

from collections.abc import Sequence

from agent.clikit import Command, run_cli

COMMANDS = (
    Command("convert", "convert.commands.convert", "convert a Keras model to (quantized) TFLite"),
    Command("prune", "convert.commands.prune", "magnitude-prune with fine-tuning, then convert"),
    Command("distill", "convert.commands.distill", "distill a teacher into a student, convert it"),
    Command("compare", "convert.commands.compare", "compare compression methods on one model"),
    Command("keygen", "convert.commands.keygen", "create an Ed25519 release signing key pair"),
    Command("bundle", "convert.commands.bundle", "sign and encrypt a .tflite into a model bundle"),
    Command("describe", "convert.commands.describe", "show what a .tflite is and its metadata"),
    Command("inspect", "convert.commands.inspect", "show a bundle's manifest without decrypting"),
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("edge-convert", __doc__ or "", COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
