"""``edge-agent check-config PATH``: validate a config offline; exit 0 when it is usable, else 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import load_config
from agent.errors import ConfigError
from agent.secrets import FileResolver, check_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the agent's TOML config file")
    parser.add_argument(
        "--schema-only",
        action="store_true",
        help="check the config text only, not the files it names (for checking on a workstation)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    problems = [] if args.schema_only else check_files(config, FileResolver.from_env(args.config))
    for problem in problems:
        print(f"{args.config}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.config}: ok (device {config.device_id}, source {config.source.type})")
    return 0
