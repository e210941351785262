"""The ``[events]`` table and the audio keys of ``[source]`` (pure, like the rest of the parser)."""

from __future__ import annotations

from typing import Any, cast

from agent.config.sections import SCHEMA_KEYS, EventsConfig, SampleFormat
from agent.config.table import Table
from agent.errors import ConfigError

MAX_EVENT_LABELS = 64


def audio_keys(t: Table) -> dict[str, Any]:
    """``window_s``/``hop_s`` (hop at most the window) and the raw PCM format."""
    window = t.raw.get("window_s")
    hop = t.raw.get("hop_s")
    window_s = None if window is None else t.number("window_s", 1.0, 0.01, 600.0)
    hop_s = None if hop is None else t.number("hop_s", 1.0, 0.01, 600.0)
    if hop_s is not None and window_s is not None and hop_s > window_s:
        raise ConfigError(
            t.key("hop_s"), "must not be longer than window_s (audio would be skipped)"
        )
    fmt = t.choice("sample_format", "s16le", ("s16le", "s32le", "f32le"))
    return {
        "window_s": window_s,
        "hop_s": hop_s,
        "sample_rate": t.integer("sample_rate", 16000, 1000, 384000),
        "channels": t.integer("channels", 1, 1, 32),
        "sample_format": cast(SampleFormat, fmt),
    }


def check_microphone_device(t: Table) -> None:
    device = t.raw.get("device")
    if device is None:
        return
    if isinstance(device, bool) or not (
        (isinstance(device, int) and device >= 0) or (isinstance(device, str) and device)
    ):
        raise ConfigError(t.key("device"), "must be a PortAudio device index or name")


def events(t: Table) -> EventsConfig:
    t.reject_unknown(SCHEMA_KEYS["events"])
    labels = t.strings("labels")
    if len(set(labels)) != len(labels) or len(labels) > MAX_EVENT_LABELS:
        raise ConfigError(t.key("labels"), f"must be at most {MAX_EVENT_LABELS} distinct labels")
    raw = t.raw.get("thresholds", {})
    if not isinstance(raw, dict):
        raise ConfigError(t.key("thresholds"), 'must be a table such as {"cat" = 0.7}')
    thresholds = []
    for label in raw:
        if label not in labels:
            raise ConfigError(t.key(f"thresholds.{label}"), "is not one of events.labels")
        thresholds.append((label, t.table("thresholds").number(label, 0.5, 0.0, 1.0)))
    return EventsConfig(
        labels=labels,
        threshold=t.number("threshold", 0.5, 0.0, 1.0),
        thresholds=tuple(thresholds),
        min_results=t.integer("min_results", 3, 1, 10_000),
        quiet_s=t.number("quiet_s", 2.0, 0.0, 86400.0),
        update_s=t.number("update_s", 1.0, 0.0, 86400.0),
        snapshot=t.boolean("snapshot", False),
        snapshot_max_bytes=t.integer("snapshot_max_bytes", 65536, 1024, 256 * 1024),
    )
