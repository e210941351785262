"""A lazy command-line dispatcher shared by ``edge-agent``, ``edge-convert`` and ``edge-fleet``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``.
Only the module of the chosen sub-command is imported, so ``edge-agent --help`` stays fast and a
heavy dependency of one command never slows the others down.

Errors raised on purpose (:class:`agent.errors.EdgeError`) print as one line naming the problem;
``-v`` adds the traceback. Anything else is a bug and always shows its traceback.

Every tool shares ``--version``, ``-v`` and one exit-code table (:data:`EXIT_CODES`, documented
in ``docs/cli.md``). Results go to stdout, logs and errors to stderr, so
``edge-agent verify --json ... | jq`` always sees JSON only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from agent import __version__
from agent.errors import BundleRejected, ConfigError, EdgeError, InputError, TransportError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3
EXIT_CONFIG = 4
EXIT_UNAVAILABLE = 5
EXIT_INTERRUPTED = 130

# The one table every tool follows (docs/cli.md is checked against it by a test).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILED: "the operation failed (runtime, accelerator, a check that did not pass)",
    EXIT_USAGE: "bad command line, or an input file that is missing or malformed",
    EXIT_REJECTED: "a bundle or signed command failed verification (reason code on stderr)",
    EXIT_CONFIG: "the configuration is invalid (every problem is printed with its line)",
    EXIT_UNAVAILABLE: "the broker or network is unreachable; retrying later may work",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


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
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, InputError):
        return EXIT_USAGE
    if isinstance(exc, TransportError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def error_document(exc: EdgeError, code: int) -> dict[str, object]:
    """What ``--json`` prints on stdout when a command fails on purpose."""
    error: dict[str, object] = {"kind": type(exc).__name__, "code": exc.code, "message": str(exc)}
    details = getattr(exc, "problems", None)
    if details is not None:
        error["problems"] = details
    return {"ok": False, "exit_code": code, "error": error}


def version_text(prog: str) -> str:
    return f"{prog} {__version__}"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: the command's result as one JSON document on stdout (logs stay on stderr)."""
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout (for scripts)"
    )


def run_cli(
    prog: str, description: str, commands: Sequence[Command], argv: Sequence[str] | None = None
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="exit codes: " + "; ".join(f"{c} {t}" for c, t in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=version_text(prog))
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
        code = exit_code_for(exc)
        if getattr(args, "json", False):  # a script reading stdout still gets one document
            print(json.dumps(error_document(exc, code), sort_keys=True))
        return code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
