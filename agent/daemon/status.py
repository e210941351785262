"""What the service reports: its health, the retained status message, the ``systemctl`` line.

Pure: the caller passes in what it has (the served model, the source's counters, the outbox's
figures); nothing here publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.daemon.metrics import RollingStats, cpu_temperature_c, rss_bytes
from agent.errors import ErrorLog
from agent.model.active import ActiveModel
from agent.mqtt.messages import LastError, ModelRef, OutboxStats, StatusMessage, UpdateStatus


@dataclass
class Health:
    """What the status message reports beyond the rolling figures."""

    state: str = "starting"
    last_error: LastError | None = None
    errors: ErrorLog = field(default_factory=ErrorLog)

    def fail(self, code: str, message: str) -> None:
        self.last_error = LastError(code, message[:1000])


@dataclass(frozen=True)
class StatusInputs:
    """Everything a status message is made of, gathered by the service."""

    ts: float
    health: Health
    stats: RollingStats
    active: ActiveModel | None
    source_stats: Mapping[str, int]
    sensor_oversize: int | None
    outbox: OutboxStats
    groups: tuple[str, ...]
    update: UpdateStatus | None
    drops: Mapping[str, int] = field(default_factory=dict)  # the MQTT client's DropLog
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # a model chain's


def status_message(inputs: StatusInputs) -> StatusMessage:
    health, stats, active = inputs.health, inputs.stats, inputs.active
    errors = dict(health.errors.counts)
    errors.update({k: v for k, v in inputs.source_stats.items() if k.startswith("error.")})
    if inputs.sensor_oversize is not None:
        errors["mqtt_oversize"] = inputs.sensor_oversize
    errors.update(inputs.drops)  # oversize drops per topic, refused commands/roots, fleet_silent_s
    model = active.model if active else None
    return StatusMessage(
        ts=inputs.ts,
        state=health.state,
        fps=round(stats.fps(), 3),
        latency_p50_ms=stats.percentile_ms(50),
        latency_p95_ms=stats.percentile_ms(95),
        frames_dropped=inputs.source_stats.get("dropped", 0),
        queue_depth=inputs.outbox.depth,
        backend=model.backend if model else "",
        backend_reason=model.backend_reason if model else "",
        accelerator=model.accelerator if model else "cpu",
        degraded=bool(model and model.degraded),
        model=model_ref(active) if active else None,
        rss_bytes=rss_bytes(),
        cpu_temp_c=cpu_temperature_c(),
        errors=errors,
        outbox=inputs.outbox,
        last_error=health.last_error,
        groups=inputs.groups,
        update=inputs.update,
        stages=inputs.stages,
    )


def model_ref(active: ActiveModel) -> ModelRef:
    return ModelRef(active.name, str(active.version), active.sha256)


def status_text(health: Health, active: ActiveModel | None, fps: float) -> str:
    """The one line ``systemctl status`` shows."""
    if health.state == "error" and health.last_error is not None:
        return f"error ({health.last_error.code}): {health.last_error.message}"
    model = f"{active.name} v{active.version}" if active else "no model"
    return f"{health.state}: {model}, {fps:.1f} fps"
