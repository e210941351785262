"""Typed, dotted-key access to one parsed TOML table (pure); errors name the dotted key."""

from __future__ import annotations

from typing import Any, cast

from agent.errors import ConfigError


class Table:
    """Typed, dotted-key access to one TOML table that remembers which keys were read."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(where, "must be a table")
        self.raw = cast(dict[str, Any], raw)
        self.where = where

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def reject_unknown(self, allowed: tuple[str, ...] | frozenset[str]) -> None:
        for name in self.raw:
            if name not in allowed:
                raise ConfigError(self.key(name), "unknown key (check the spelling)")

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.optional_string(name)
        if value is None:
            if required or default is None:
                raise ConfigError(self.key(name), "is required")
            return default
        return value

    def optional_string(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.key(name), "must be a non-empty string")
        if "\x00" in value:
            raise ConfigError(self.key(name), "must not contain NUL characters")
        return value

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(name), f"must be an integer; got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(name), f"must be between {lo} and {hi}; got {value}")
        return value

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.key(name), f"must be a number; got {value!r}")
        if not lo <= float(value) <= hi:
            raise ConfigError(self.key(name), f"must be between {lo:g} and {hi:g}; got {value}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false; got {value!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.raw.get(name, default)
        if value not in allowed:
            raise ConfigError(self.key(name), f"must be one of {', '.join(allowed)}; got {value!r}")
        return cast(str, value)

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(self.key(name), "must be a list of non-empty strings")
        return tuple(value)

    def table(self, name: str) -> Table:
        return Table(self.raw.get(name, {}), self.key(name))
