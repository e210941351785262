"""Agent configuration: pure data, closed to typos, checkable offline.

:func:`parse_config` takes the dict that ``tomllib`` produced and returns an :class:`AgentConfig`
or raises :class:`~agent.errors.ConfigError` naming the dotted key (``mqtt.qos: must be 0 or 1``).
It does no I/O: files named by the config are read by :mod:`agent.secrets` when the service
starts. Secrets (passwords, the device key) are never written in the config text, only the names
of files that hold them.

Units are part of the key names (``_s`` seconds, ``_bytes`` bytes) and documented in
``docs/configuration.md``, which a test keeps in step with :data:`SCHEMA_KEYS`.

The sections live in :mod:`agent.config.sections`, the parser and the one file read in
:mod:`agent.config.loader`; callers import from here.
"""

from agent.config.loader import load_config, parse_config, parse_toml
from agent.config.sections import (
    DEVICE_ID_RE,
    GROUP_RE,
    MAX_CONFIG_BYTES,
    MAX_GROUPS,
    PREFIX_RE,
    RECIPIENT_RE,
    SCHEMA_KEYS,
    Accelerator,
    AgentConfig,
    EventsConfig,
    HomeAssistantConfig,
    KeysConfig,
    ModelConfig,
    MqttConfig,
    OutputConfig,
    Policy,
    SampleFormat,
    SourceConfig,
    SourceType,
    StatusConfig,
    StoreConfig,
    UpdateConfig,
)

__all__ = [
    "DEVICE_ID_RE",
    "GROUP_RE",
    "MAX_CONFIG_BYTES",
    "MAX_GROUPS",
    "PREFIX_RE",
    "RECIPIENT_RE",
    "SCHEMA_KEYS",
    "Accelerator",
    "AgentConfig",
    "EventsConfig",
    "HomeAssistantConfig",
    "KeysConfig",
    "ModelConfig",
    "MqttConfig",
    "OutputConfig",
    "Policy",
    "SampleFormat",
    "SourceConfig",
    "SourceType",
    "StatusConfig",
    "StoreConfig",
    "UpdateConfig",
    "load_config",
    "parse_config",
    "parse_toml",
]
