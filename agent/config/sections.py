"""The config's sections as frozen dataclasses, with their defaults and the keys they accept.

Pure data: :mod:`agent.config.loader` builds these from TOML and checks every value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from agent.errors import ConfigError

MAX_CONFIG_BYTES = 256 * 1024
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RECIPIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # as agent.bundle.keys
GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_GROUPS = 32
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")

SourceType = Literal[
    "camera",
    "stream",
    "mjpeg_http",
    "video",
    "images",
    "sensor",
    "mqtt_sensor",
    "audio",
    "pcm",
    "microphone",
]
CameraBackend = Literal["auto", "opencv", "v4l2"]
SampleFormat = Literal["s16le", "s32le", "f32le"]
Accelerator = Literal["cpu", "edgetpu", "auto"]
Policy = Literal["every", "on_change", "threshold"]


@dataclass(frozen=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "edge"
    qos: int = 1
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    max_message_bytes: int = 256 * 1024
    max_packet_bytes: int = 1_049_600  # MQTT 5 Maximum Packet Size announced on CONNECT
    protocol: Literal["5", "3.1.1"] = "5"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


@dataclass(frozen=True)
class KeysConfig:
    trust_file: str | None = None
    trusted_keys: tuple[str, ...] = ()
    threshold: int = 1
    device_key: str = "device.key"
    fleet_keys: tuple[str, ...] = ()
    fleet_threshold: int = 1  # how many distinct fleet keys must sign a command (k of n)
    root_file: str | None = None  # provisioned root metadata (release + fleet keys, rotatable)
    group_keys: tuple[tuple[str, str], ...] = ()  # (recipient id such as "group:lab", key file)
    report_key: str | None = None  # Ed25519 key the device signs its reports with

    def __post_init__(self) -> None:
        if self.fleet_keys and self.fleet_threshold > len(self.fleet_keys):
            raise ConfigError("keys.fleet_threshold", "is larger than the number of fleet keys")


@dataclass(frozen=True)
class ModelConfig:
    bundle: str | None = None
    accelerator: Accelerator = "cpu"
    backend: str = "auto"
    threads: int | None = None
    hardware_id: str | None = None
    reprobe_min_s: float = 5.0
    reprobe_max_s: float = 600.0


@dataclass(frozen=True)
class SourceConfig:
    type: SourceType
    device: str | None = None
    backend: CameraBackend = "auto"  # camera: OpenCV when installed, else V4L2 MJPEG (linuxpy)
    url: str | None = None
    path: str | None = None
    loop: bool = False
    realtime: bool = True
    fps: float | None = None
    poll_s: float = 1.0
    format: Literal["json", "csv"] = "json"
    fields: tuple[str, ...] = ()
    baud: int = 115200
    topic: str | None = None
    window: int = 1
    hop: int = 1
    max_line_bytes: int = 4096
    max_image_bytes: int = 32 * 1024 * 1024
    stall_s: float | None = None
    window_s: float | None = None
    hop_s: float | None = None
    sample_rate: int = 16000
    channels: int = 1
    sample_format: SampleFormat = "s16le"


@dataclass(frozen=True)
class OutputConfig:
    policy: Policy = "every"
    threshold: float = 0.5
    min_interval_s: float = 0.0
    top_k: int = 3
    score_threshold: float = 0.0
    max_raw_values: int = 1024


@dataclass(frozen=True)
class StatusConfig:
    interval_s: float = 30.0


@dataclass(frozen=True)
class StoreConfig:
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 7 * 24 * 3600.0
    commit_ms: float = 5.0  # group commit: the longest a result waits to become durable
    commit_max: int = 256  # group commit: most results per transaction
    coalesce: bool = True  # several waiting results go out as one batch message


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = False
    discovery_prefix: str = "homeassistant"
    state_interval_s: float = 1.0


@dataclass(frozen=True)
class EventsConfig:
    """Events from results (``agent.events``); off while ``labels`` is empty."""

    labels: tuple[str, ...] = ()
    threshold: float = 0.5
    thresholds: tuple[tuple[str, float], ...] = ()
    min_results: int = 3
    quiet_s: float = 2.0
    update_s: float = 1.0
    snapshot: bool = False
    snapshot_max_bytes: int = 65536


@dataclass(frozen=True)
class UpdateConfig:
    """Model updates over MQTT (``docs/mqtt-protocol.md``); off without ``keys.fleet_keys``."""

    window: int = 32
    deadline_s: float = 3600.0
    min_bytes_per_s: float = 1024.0
    throughput_window_s: float = 30.0
    retry_min_s: float = 5.0
    retry_max_s: float = 600.0
    disk_margin_bytes: int = 16 * 1024 * 1024
    canary_timeout_s: float = 60.0
    canary_memory_bytes: int = 2 * 1024 * 1024 * 1024
    latency_budget_factor: float = 3.0
    watch_results: int = 20
    watch_s: float = 10.0
    freeze_after_s: float = 0.0  # report fleet_silent_s past this without a signed timestamp


@dataclass(frozen=True)
class AgentConfig:
    device_id: str
    state_dir: str
    source: SourceConfig
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    groups: tuple[str, ...] = ()


# Every key the schema accepts, by table; docs/configuration.md documents each of them.
SCHEMA_KEYS: dict[str, tuple[str, ...]] = {
    "": ("device_id", "state_dir", "groups"),
    "mqtt": tuple(MqttConfig.__dataclass_fields__),
    "keys": tuple(KeysConfig.__dataclass_fields__),
    "model": tuple(ModelConfig.__dataclass_fields__),
    "source": tuple(SourceConfig.__dataclass_fields__),
    "output": tuple(OutputConfig.__dataclass_fields__),
    "status": tuple(StatusConfig.__dataclass_fields__),
    "store": tuple(StoreConfig.__dataclass_fields__),
    "homeassistant": tuple(HomeAssistantConfig.__dataclass_fields__),
    "update": tuple(UpdateConfig.__dataclass_fields__),
    "events": tuple(EventsConfig.__dataclass_fields__),
}
