"""Every problem of a config file in one pass, each with its TOML line, and "did you mean".

:func:`agent.config.parse_config` stops at the first problem. :func:`find_problems` runs it
again after taking the offending key out (a bad value falls back to its default, a missing
required key gets a placeholder), so one run reports every independent problem, at most one per
key. :func:`key_lines` maps dotted keys to the line that sets them; a missing key points at its
table's header. Pure: text in, records out.
"""

from __future__ import annotations

import copy
import difflib
import re
import tomllib
from typing import Any

from agent.config import MAX_CONFIG_BYTES, SCHEMA_KEYS, AgentConfig, parse_config
from agent.errors import ConfigError, ConfigErrors

MAX_PROBLEMS = 64
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"'-]+)\s*\]\]?")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_\"'.-]+)\s*=")
_PLACEHOLDER_SOURCE = {"type": "images", "path": "placeholder"}


def key_lines(text: str) -> dict[str, int]:
    """Dotted key (and table name) -> 1-based line where the text sets it."""
    lines: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = header.group(1).replace('"', "").replace("'", "")
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = assign.group(1).replace('"', "").replace("'", "")
            lines.setdefault(f"{table}.{key}" if table else key, number)
    return lines


def line_of(key: str, lines: dict[str, int]) -> int | None:
    """The key's own line, else the nearest enclosing table's header line."""
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return None


def suggestion(key: str) -> str | None:
    """The schema key an unknown dotted ``key`` most likely meant."""
    table, _, name = key.rpartition(".")
    allowed = SCHEMA_KEYS.get(table, ())
    if not table:
        allowed = (*SCHEMA_KEYS[""], *(k for k in SCHEMA_KEYS if k))
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    return f"{table}.{close[0]}" if close and table else (close[0] if close else None)


def find_problems(raw: dict[str, Any]) -> tuple[AgentConfig | None, list[ConfigError]]:
    """The config when it is valid, else every problem found (at most one per key)."""
    work = copy.deepcopy(raw)
    problems: list[ConfigError] = []
    reported: set[str] = set()
    for _ in range(MAX_PROBLEMS):
        try:
            config = parse_config(work)
        except ConfigError as exc:
            if exc.key not in reported:
                reported.add(exc.key)
                problems.append(_with_suggestion(exc))
            if not _take_out(work, exc.key):
                break
        else:
            return (None, problems) if problems else (config, [])
    return None, problems


def _with_suggestion(exc: ConfigError) -> ConfigError:
    if "unknown key" not in str(exc):
        return exc
    meant = suggestion(exc.key)
    if meant is None:
        return exc
    return ConfigError(exc.key, f"unknown key (did you mean {meant!r}?)")


def _take_out(work: dict[str, Any], key: str) -> bool:
    """Remove or replace what ``key`` names so parsing gets past it; False when it cannot."""
    parts = key.split(".") if key else []
    replacement = _placeholder(work, parts)
    if replacement is not None:
        name, value = replacement
        if work.get(name) == value:
            return False
        work[name] = value
        return True
    parent: Any = work
    for part in parts[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict) and parts and parts[-1] in parent:
        del parent[parts[-1]]
        return True
    return False


def _placeholder(work: dict[str, Any], parts: list[str]) -> tuple[str, Any] | None:
    """A valid stand-in for a required key or a source that cannot be parsed further."""
    if parts[:1] == ["source"] and (
        len(parts) == 1 or parts[-1] == "type" or not _present(work, parts)
    ):
        return "source", dict(_PLACEHOLDER_SOURCE)
    if len(parts) == 1 and parts[0] in ("device_id", "state_dir"):
        return parts[0], "placeholder"
    return None


def _present(work: dict[str, Any], parts: list[str]) -> bool:
    node: Any = work
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_toml(data: bytes, path: str) -> AgentConfig:
    """Like :func:`parse_toml`, but reports every problem, each with its line
    (:class:`~agent.errors.ConfigErrors`; :mod:`agent.config.problems`)."""
    try:
        text, raw = _decode(data)
    except ConfigError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found.group(1)) if found else None
        raise ConfigErrors(path, [{"key": "", "line": line, "message": str(exc)}]) from None
    config, problems = find_problems(raw)
    if config is not None:
        return config
    lines = key_lines(text)
    records: list[dict[str, object]] = [
        {"key": p.key, "line": line_of(p.key, lines), "message": str(p)} for p in problems
    ]
    records.sort(key=lambda r: r["line"] if isinstance(r["line"], int) else 1 << 30)
    raise ConfigErrors(path, records)


def _decode(data: bytes) -> tuple[str, dict[str, Any]]:
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"config is {len(data)} bytes, more than {MAX_CONFIG_BYTES}")
    try:
        text = data.decode("utf-8")
        return text, tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError("", "config is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}") from None
