"""``edge-agent run --config PATH``: the long-running service (systemd's ExecStart)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.config import load_config
from agent.daemon.lifecycle import Flags
from agent.daemon.sdnotify import Notifier
from agent.daemon.service import Service
from agent.errors import ConfigError
from agent.sources.plan import linuxpy_installed, opencv_installed, source_problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="the agent's TOML config (see docs/configuration.md)",
    )


def run(args: argparse.Namespace) -> int:
    # Everything the service creates (state directory, slots, outbox, SQLite's -wal/-shm,
    # partial downloads) is private to it: set before any thread starts, so no race.
    os.umask(0o077)
    config = load_config(args.config)
    problems = source_problems(config.source, opencv_installed(), linuxpy_installed())
    if problems:  # a source this install cannot serve: exit 4 before anything starts
        raise ConfigError("source", "; ".join(problems))
    flags = Flags()
    flags.install()
    return Service(config, args.config, flags, notifier=Notifier.from_env()).run()
