"""``edge-agent check-config PATH``: validate a config offline.

Exit 0 when it is usable, 4 (the exit code ``edge-agent run`` gives the same config) when it is
not; every problem is printed, one per line, ``PATH:LINE: key: message``. ``--json`` prints one
document on stdout instead (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.clikit import EXIT_CONFIG, EXIT_OK, add_json_flag
from agent.config import AgentConfig, load_config
from agent.errors import ConfigError
from agent.mqtt.messages import MAX_RESULT_BYTES
from agent.pipeline.fit import ENVELOPE_BYTES, MAX_FLOAT_CHARS
from agent.secrets import FileResolver, check_files
from agent.sources.plan import linuxpy_installed, opencv_installed, source_problems


def config_warnings(config: AgentConfig) -> list[str]:
    """Settings that work but will not do what they say (pure)."""
    warnings = []
    raw = config.output.max_raw_values
    fits = (MAX_RESULT_BYTES - ENVELOPE_BYTES) // MAX_FLOAT_CHARS
    if raw > fits:
        warnings.append(
            f"output.max_raw_values = {raw}: raw tensors over {fits} values do not fit the "
            f"{MAX_RESULT_BYTES // 1024} KiB result limit; such results are cut to fit, flagged "
            '"truncated": true and counted in status errors.result_truncated '
            "(use a decoder, e.g. a segmentation mask, instead of raw tensors)"
        )
    return warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="the agent's TOML config file")
    parser.add_argument(
        "--schema-only",
        action="store_true",
        help="check the config text only, not the files it names (for checking on a workstation)",
    )
    add_json_flag(parser)


def config_problems(exc: ConfigError) -> list[dict[str, Any]]:
    """Every problem a ConfigError carries, as ``{"key", "line", "message"}`` records."""
    listed = getattr(exc, "problems", None)
    if listed is not None:
        return list(listed)
    return [{"key": exc.key, "line": None, "message": str(exc)}]


def _where(path: Path, problem: dict[str, Any]) -> str:
    return f"{path}:{problem['line']}" if problem.get("line") else str(path)


def run(args: argparse.Namespace) -> int:
    config: AgentConfig | None = None
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        problems = config_problems(exc)
    else:
        files = [] if args.schema_only else check_files(config, FileResolver.from_env(args.config))
        if not args.schema_only:  # what this install can serve (the video extra)
            files += source_problems(config.source, opencv_installed(), linuxpy_installed())
        problems = [{"key": None, "line": None, "message": problem} for problem in files]
    code = EXIT_CONFIG if problems else EXIT_OK
    if args.json:
        document: dict[str, Any] = {"config": str(args.config), "ok": not problems}
        document["problems"] = problems
        if config is not None:
            document |= {"device_id": config.device_id, "source": config.source.type}
            document["warnings"] = config_warnings(config)
        print(json.dumps(document, indent=2, sort_keys=True))
        return code
    for problem in problems:
        print(f"{_where(args.config, problem)}: {problem['message']}", file=sys.stderr)
    for warning in config_warnings(config) if config is not None and not problems else []:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    if config is not None and not problems:
        print(f"{args.config}: ok (device {config.device_id}, source {config.source.type})")
    return code
