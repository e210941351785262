"""Secrets and files named by the config: where they are and whether they can be read.

A secret (the MQTT password, the device's private key) is named in the config, never written in it.
A bare name (``device.key``) is looked up first in ``$CREDENTIALS_DIRECTORY`` -- where systemd's
``LoadCredential=`` puts it -- and then next to the config file; a path is used as given (relative
paths are relative to the config file's directory).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig
from agent.errors import ConfigError

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True)
class FileResolver:
    """Turns names from the config into paths (pure apart from ``exists`` checks)."""

    config_dir: Path
    credentials_dir: Path | None = None

    @classmethod
    def from_env(cls, config_path: Path, env: Mapping[str, str] | None = None) -> FileResolver:
        env = os.environ if env is None else env
        creds = env.get("CREDENTIALS_DIRECTORY")
        return cls(config_path.resolve().parent, Path(creds) if creds else None)

    def path(self, name: str) -> Path:
        candidate = Path(name)
        if candidate.is_absolute():
            return candidate
        if self.credentials_dir is not None and "/" not in name:
            in_creds = self.credentials_dir / name
            if in_creds.exists():
                return in_creds
        return self.config_dir / candidate


def read_secret(resolver: FileResolver, key: str, name: str) -> bytes:
    """Read a secret file named at config key ``key``; warn when others may read it."""
    path, info, data = _read(resolver, key, name)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s (%s) is readable by group or others; chmod 600 it", path, key)
    return data


def read_public(resolver: FileResolver, key: str, name: str) -> bytes:
    """Read a non-secret file the config names (a public key, the trust file)."""
    return _read(resolver, key, name)[2]


def _read(resolver: FileResolver, key: str, name: str) -> tuple[Path, os.stat_result, bytes]:
    path = resolver.path(name)
    try:
        info = path.stat()
        if info.st_size > MAX_SECRET_BYTES:
            raise ConfigError(key, f"{path} is {info.st_size} bytes; such a file is at most 64 KiB")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    return path, info, data


def referenced_files(config: AgentConfig) -> list[tuple[str, str]]:
    """Every (dotted key, file name) the config names that must exist at start-up."""
    files: list[tuple[str, str]] = []
    mqtt = config.mqtt
    for key, value in (
        ("mqtt.password_file", mqtt.password_file),
        ("mqtt.ca_file", mqtt.ca_file),
        ("mqtt.cert_file", mqtt.cert_file),
        ("mqtt.key_file", mqtt.key_file),
        ("keys.trust_file", config.keys.trust_file),
        ("keys.root_file", config.keys.root_file),
        ("keys.device_key", config.keys.device_key),
        ("keys.report_key", config.keys.report_key),
        ("model.bundle", config.model.bundle),
    ):
        if value:
            files.append((key, value))
    files.extend((f"keys.trusted_keys[{i}]", k) for i, k in enumerate(config.keys.trusted_keys))
    files.extend((f"keys.fleet_keys[{i}]", k) for i, k in enumerate(config.keys.fleet_keys))
    files.extend((f"keys.group_keys.{rid}", k) for rid, k in config.keys.group_keys)
    return files


def check_files(config: AgentConfig, resolver: FileResolver) -> list[str]:
    """Problems with files the config names, as ``dotted.key: message`` lines (empty when fine)."""
    problems = []
    for key, name in referenced_files(config):
        path = resolver.path(name)
        if not path.is_file():
            problems.append(f"{key}: {path} does not exist or is not a file")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key}: {path} is not readable by this user")
    if (
        config.source.type in ("video", "images", "sensor", "audio")
        and config.source.path
        and not resolver.path(config.source.path).exists()
    ):
        problems.append(f"source.path: {resolver.path(config.source.path)} does not exist")
    return problems
