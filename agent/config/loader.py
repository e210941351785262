"""Build an :class:`~agent.config.sections.AgentConfig` from TOML; errors name the dotted key.

:func:`load_config` is the only I/O: one capped read of the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from agent.config import media
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
    CameraBackend,
    HomeAssistantConfig,
    KeysConfig,
    ModelConfig,
    MqttConfig,
    OutputConfig,
    Policy,
    SourceConfig,
    SourceType,
    StatusConfig,
    StoreConfig,
    UpdateConfig,
)
from agent.config.table import Table as _Table
from agent.errors import ConfigError

# Which source keys each source type takes (besides ``type``); anything else is a typo.
_SOURCE_KEYS: dict[str, frozenset[str]] = {
    "camera": frozenset({"device", "fps", "backend"}),
    "stream": frozenset({"url", "fps"}),
    "mjpeg_http": frozenset({"url", "fps"}),
    "video": frozenset({"path", "loop", "realtime", "fps"}),
    "images": frozenset({"path", "poll_s", "max_image_bytes"}),
    "sensor": frozenset({"path", "format", "fields", "baud", "window", "hop", "max_line_bytes"}),
    "mqtt_sensor": frozenset({"topic", "format", "fields", "window", "hop", "max_line_bytes"}),
    "audio": frozenset({"path", "loop", "realtime", "poll_s", "window_s", "hop_s"}),
    "pcm": frozenset({"path", "sample_rate", "channels", "sample_format", "window_s", "hop_s"}),
    "microphone": frozenset({"device", "sample_rate", "channels", "window_s", "hop_s"}),
}
_SOURCE_REQUIRED: dict[str, str] = {
    "camera": "device",
    "stream": "url",
    "mjpeg_http": "url",
    "video": "path",
    "images": "path",
    "sensor": "path",
    "mqtt_sensor": "topic",
    "audio": "path",
    "pcm": "path",
}


def parse_config(raw: dict[str, Any]) -> AgentConfig:
    """Validate a parsed TOML document. Pure: no file is opened."""
    top = _Table(raw, "")
    top.reject_unknown((*SCHEMA_KEYS[""], *(k for k in SCHEMA_KEYS if k)))
    device_id = top.string("device_id", required=True)
    if not DEVICE_ID_RE.match(device_id):
        raise ConfigError(
            "device_id",
            "must be 1-64 characters of letters, digits, '_', '.', '-' (no '/', '+', '#')",
        )
    if "source" not in raw:
        raise ConfigError("source", "is required (a [source] table with a type)")
    return AgentConfig(
        device_id=device_id,
        state_dir=top.string("state_dir", required=True),
        source=_source(top.table("source")),
        mqtt=_mqtt(top.table("mqtt")),
        keys=_keys(top.table("keys")),
        model=_model(top.table("model")),
        output=_output(top.table("output")),
        status=_status(top.table("status")),
        store=_store(top.table("store")),
        homeassistant=_homeassistant(top.table("homeassistant")),
        update=_update(top.table("update")),
        events=media.events(top.table("events")),
        groups=_groups(top),
    )


def _groups(top: _Table) -> tuple[str, ...]:
    groups = top.strings("groups")
    for group in groups:
        if not GROUP_RE.match(group):
            raise ConfigError("groups", f"{group!r} must be 1-64 of letters, digits, '_', '.', '-'")
    if len(groups) > MAX_GROUPS or len(set(groups)) != len(groups):
        raise ConfigError("groups", f"must be at most {MAX_GROUPS} distinct names")
    return groups


def _update(t: _Table) -> UpdateConfig:
    t.reject_unknown(SCHEMA_KEYS["update"])
    d = UpdateConfig()
    retry_min = t.number("retry_min_s", d.retry_min_s, 0.1, 86400.0)
    config = UpdateConfig(
        window=t.integer("window", d.window, 1, 64),
        deadline_s=t.number("deadline_s", d.deadline_s, 1.0, 7 * 86400.0),
        min_bytes_per_s=t.number("min_bytes_per_s", d.min_bytes_per_s, 0.0, 1e10),
        throughput_window_s=t.number("throughput_window_s", d.throughput_window_s, 1.0, 3600.0),
        retry_min_s=retry_min,
        retry_max_s=t.number("retry_max_s", d.retry_max_s, 0.1, 7 * 86400.0),
        disk_margin_bytes=t.integer("disk_margin_bytes", d.disk_margin_bytes, 0, 1 << 40),
        canary_timeout_s=t.number("canary_timeout_s", d.canary_timeout_s, 1.0, 3600.0),
        canary_memory_bytes=t.integer(
            "canary_memory_bytes", d.canary_memory_bytes, 64 * 1024 * 1024, 1 << 40
        ),
        latency_budget_factor=t.number("latency_budget_factor", d.latency_budget_factor, 1.0, 1e3),
        watch_results=t.integer("watch_results", d.watch_results, 0, 1_000_000),
        watch_s=t.number("watch_s", d.watch_s, 0.0, 86400.0),
        freeze_after_s=t.number("freeze_after_s", d.freeze_after_s, 0.0, 365 * 86400.0),
    )
    if config.retry_max_s < retry_min:
        raise ConfigError(t.key("retry_max_s"), "must not be smaller than retry_min_s")
    return config


def _mqtt(t: _Table) -> MqttConfig:
    t.reject_unknown(SCHEMA_KEYS["mqtt"])
    url = t.string("url", MqttConfig.url)
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(
            t.key("url"), f"must look like mqtt://host:port or mqtts://host:port; got {url!r}"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError(t.key("url"), f"has an invalid port: {url!r}") from None
    if parts.username or parts.password:
        raise ConfigError(
            t.key("url"), "must not contain credentials; use username and password_file"
        )
    prefix = t.string("topic_prefix", MqttConfig.topic_prefix)
    if not PREFIX_RE.match(prefix):
        raise ConfigError(
            t.key("topic_prefix"), "must be topic levels without wildcards, e.g. 'edge'"
        )
    reconnect_min = t.number("reconnect_min_s", MqttConfig.reconnect_min_s, 0.1, 3600)
    reconnect_max = t.number("reconnect_max_s", MqttConfig.reconnect_max_s, 0.1, 3600)
    if reconnect_max < reconnect_min:
        raise ConfigError(t.key("reconnect_max_s"), "must not be smaller than reconnect_min_s")
    config = MqttConfig(
        url=url,
        topic_prefix=prefix,
        qos=t.integer("qos", MqttConfig.qos, 0, 1),
        username=t.optional_string("username"),
        password_file=t.optional_string("password_file"),
        ca_file=t.optional_string("ca_file"),
        cert_file=t.optional_string("cert_file"),
        key_file=t.optional_string("key_file"),
        keepalive_s=t.integer("keepalive_s", MqttConfig.keepalive_s, 5, 3600),
        reconnect_min_s=reconnect_min,
        reconnect_max_s=reconnect_max,
        max_packet_bytes=t.integer(
            "max_packet_bytes", MqttConfig.max_packet_bytes, 1 << 16, 1 << 28
        ),
        max_message_bytes=t.integer(
            "max_message_bytes", MqttConfig.max_message_bytes, 1024, 256 * 1024 * 1024
        ),
        protocol=cast(Literal["5", "3.1.1"], t.choice("protocol", "5", ("5", "3.1.1"))),
    )
    if config.password_file and not config.username:
        raise ConfigError(t.key("password_file"), "needs mqtt.username")
    if (config.cert_file is None) != (config.key_file is None):
        raise ConfigError(t.key("cert_file"), "cert_file and key_file go together")
    if (config.cert_file or config.ca_file) and not config.tls:
        raise ConfigError(t.key("url"), "TLS files are set but the url is not mqtts://")
    return config


def _keys(t: _Table) -> KeysConfig:
    t.reject_unknown(SCHEMA_KEYS["keys"])
    config = KeysConfig(
        trust_file=t.optional_string("trust_file"),
        trusted_keys=t.strings("trusted_keys"),
        threshold=t.integer("threshold", 1, 1, 16),
        device_key=t.string("device_key", KeysConfig.device_key),
        fleet_keys=t.strings("fleet_keys"),
        fleet_threshold=t.integer("fleet_threshold", 1, 1, 16),
        root_file=t.optional_string("root_file"),
        group_keys=_group_keys(t),
        report_key=t.optional_string("report_key"),
    )
    if config.root_file and (config.trust_file or config.trusted_keys or config.fleet_keys):
        raise ConfigError(t.key("root_file"), "replaces trust_file, trusted_keys, fleet_keys")
    if config.trust_file and config.trusted_keys:
        raise ConfigError(t.key("trusted_keys"), "give either keys.trust_file or keys.trusted_keys")
    if config.trusted_keys and config.threshold > len(config.trusted_keys):
        raise ConfigError(t.key("threshold"), "is larger than the number of trusted keys")
    return config


def _group_keys(t: _Table) -> tuple[tuple[str, str], ...]:
    raw = t.raw.get("group_keys", {})
    if not isinstance(raw, dict):
        raise ConfigError(t.key("group_keys"), 'must be a table such as {"group:lab" = "lab.key"}')
    keys = []
    for rid, name in raw.items():
        if not RECIPIENT_RE.match(rid):
            raise ConfigError(t.key("group_keys"), f"{rid!r} is not a recipient id")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(t.key(f"group_keys.{rid}"), "must name a key file")
        keys.append((rid, name))
    return tuple(keys)


def _model(t: _Table) -> ModelConfig:
    t.reject_unknown(SCHEMA_KEYS["model"])
    threads = t.raw.get("threads")
    reprobe_min = t.number("reprobe_min_s", 5.0, 0.1, 3600.0)
    reprobe_max = t.number("reprobe_max_s", 600.0, 0.1, 86400.0)
    if reprobe_max < reprobe_min:
        raise ConfigError(t.key("reprobe_max_s"), "must be at least model.reprobe_min_s")
    return ModelConfig(
        bundle=t.optional_string("bundle"),
        accelerator=cast(Accelerator, t.choice("accelerator", "cpu", ("cpu", "edgetpu", "auto"))),
        backend=t.choice("backend", "auto", ("auto", "litert", "tflite_runtime", "tflite")),
        threads=None if threads is None else t.integer("threads", 1, 1, 64),
        hardware_id=t.optional_string("hardware_id"),
        reprobe_min_s=reprobe_min,
        reprobe_max_s=reprobe_max,
    )


def _source(t: _Table) -> SourceConfig:
    kind = t.choice("type", "", tuple(_SOURCE_KEYS))
    t.reject_unknown(_SOURCE_KEYS[kind] | {"type", "stall_s"})
    if kind != "camera" and kind in _SOURCE_REQUIRED:
        t.string(_SOURCE_REQUIRED[kind], required=True)
    device = t.raw.get("device")
    if kind == "camera" and not (
        (isinstance(device, int) and not isinstance(device, bool) and device >= 0)
        or (isinstance(device, str) and device.startswith("/dev/"))
    ):
        raise ConfigError(t.key("device"), "must be a V4L2 index (0, 1, ...) or a /dev/video* path")
    if kind == "microphone":
        media.check_microphone_device(t)
    fps = t.raw.get("fps")
    stall = t.raw.get("stall_s")
    fmt = t.choice("format", "json", ("json", "csv"))
    fields = t.strings("fields")
    if fmt == "csv" and kind in ("sensor", "mqtt_sensor") and not fields:
        raise ConfigError(t.key("fields"), "is required for csv: the column names in order")
    return SourceConfig(
        type=cast(SourceType, kind),
        device=str(device) if device is not None else None,
        backend=cast(CameraBackend, t.choice("backend", "auto", ("auto", "opencv", "v4l2"))),
        url=t.optional_string("url"),
        path=t.optional_string("path"),
        loop=t.boolean("loop", False),
        realtime=t.boolean("realtime", True),
        fps=None if fps is None else t.number("fps", 1.0, 0.01, 1000.0),
        poll_s=t.number("poll_s", 1.0, 0.01, 3600.0),
        format=cast(Literal["json", "csv"], fmt),
        fields=fields,
        baud=t.integer("baud", 115200, 50, 4_000_000),
        topic=t.optional_string("topic"),
        window=t.integer("window", 1, 1, 1_000_000),
        hop=t.integer("hop", 1, 1, 1_000_000),
        max_line_bytes=t.integer("max_line_bytes", 4096, 16, 1024 * 1024),
        max_image_bytes=t.integer("max_image_bytes", 32 * 1024 * 1024, 1024, 1 << 30),
        stall_s=None if stall is None else t.number("stall_s", 0.0, 0.0, 86400.0),
        **media.audio_keys(t),
    )


def _output(t: _Table) -> OutputConfig:
    t.reject_unknown(SCHEMA_KEYS["output"])
    return OutputConfig(
        policy=cast(Policy, t.choice("policy", "every", ("every", "on_change", "threshold"))),
        threshold=t.number("threshold", 0.5, 0.0, 1.0),
        min_interval_s=t.number("min_interval_s", 0.0, 0.0, 86400.0),
        top_k=t.integer("top_k", 3, 1, 1000),
        score_threshold=t.number("score_threshold", 0.0, 0.0, 1.0),
        max_raw_values=t.integer("max_raw_values", 1024, 1, 1 << 20),
    )


def _status(t: _Table) -> StatusConfig:
    t.reject_unknown(SCHEMA_KEYS["status"])
    return StatusConfig(interval_s=t.number("interval_s", 30.0, 0.1, 86400.0))


def _store(t: _Table) -> StoreConfig:
    t.reject_unknown(SCHEMA_KEYS["store"])
    return StoreConfig(
        max_bytes=t.integer("max_bytes", StoreConfig.max_bytes, 64 * 1024, 1 << 40),
        max_age_s=t.number("max_age_s", StoreConfig.max_age_s, 1.0, 365 * 86400.0),
        commit_ms=t.number("commit_ms", StoreConfig.commit_ms, 0.0, 1000.0),
        commit_max=t.integer("commit_max", StoreConfig.commit_max, 1, 10_000),
        coalesce=t.boolean("coalesce", StoreConfig.coalesce),
    )


def _homeassistant(t: _Table) -> HomeAssistantConfig:
    t.reject_unknown(SCHEMA_KEYS["homeassistant"])
    prefix = t.string("discovery_prefix", HomeAssistantConfig.discovery_prefix)
    if not PREFIX_RE.match(prefix):
        raise ConfigError(
            t.key("discovery_prefix"),
            "must be topic levels without wildcards, e.g. 'homeassistant'",
        )
    return HomeAssistantConfig(
        enabled=t.boolean("enabled", False),
        discovery_prefix=prefix,
        state_interval_s=t.number("state_interval_s", 1.0, 0.1, 3600.0),
    )


def parse_toml(text: bytes) -> AgentConfig:
    """Parse TOML bytes (size-capped) into a validated config."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"config is {len(text)} bytes, more than {MAX_CONFIG_BYTES}")
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("", "config is not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}") from None
    return parse_config(raw)


def load_config(path: Path) -> AgentConfig:
    """Read and validate a config file (the only I/O in this module)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError("", f"cannot read config {path}: {exc.strerror}") from None
    from agent.config.problems import check_toml  # every problem, each with its line

    return check_toml(data, str(path))
