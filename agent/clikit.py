"""A lazy command-line dispatcher shared by ``edge-agent``, ``edge-convert`` and ``edge-fleet``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``.
Only the module of the chosen sub-command is imported, so ``edge-agent --help`` stays fast and a
heavy dependency of one command never slows the others down.

Errors raised on purpose (:class:`agent.errors.EdgeError`) print as one line naming the problem;
``-v`` adds the traceback. Anything else is a bug and always shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from agent.errors import BundleRejected, ConfigError, EdgeError, InputError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


class _CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _chosen(argv: Sequence[str], names: set[str]) -> str | None:
    for token in argv:
        if token in names:
            return token
        if not token.startswith("-"):
            return None
    return None


def exit_code_for(exc: EdgeError) -> int:
    if isinstance(exc, BundleRejected):
        return EXIT_REJECTED
    if isinstance(exc, InputError | ConfigError):
        return EXIT_USAGE
    return EXIT_FAILED


def run_cli(
    prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output; -v shows tracebacks"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv, {c.name for c in commands})
    module: _CommandModule | None = None
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        if command.name == chosen:
            module = cast(_CommandModule, importlib.import_module(command.module))
            module.add_arguments(child)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    assert module is not None  # argparse rejects an unknown or missing command
    try:
        return module.run(args)
    except EdgeError as exc:
        if args.verbose:
            logging.getLogger(prog).exception("%s failed", args.command)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
