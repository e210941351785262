"""Connection settings parsed from a broker URL. Pure: no files are read here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.mqtt.topics import TopicError, validate_device_id

#: The largest packet an agent accepts by default: a 1 MiB bundle header (``Limits.max_header``)
#: plus room for the topic and properties; the broker recipe's ``max_packet_size``.
DEFAULT_MAX_PACKET_BYTES = 1_049_600
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """CA bundle to verify the broker, plus an optional client certificate and key."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Everything the client needs to connect. ``password`` is the secret itself (read by the
    caller from a file or ``$CREDENTIALS_DIRECTORY``), never part of the URL."""

    host: str
    port: int
    client_id: str
    tls: TLSFiles | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    protocol: str = "5"  # the first protocol tried: "5" (falls back on refusal) or "3.1.1"
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES  # announced on an MQTT 5 CONNECT

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        client_id: str,
        tls: TLSFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        protocol: str = "5",
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
    ) -> MqttSettings:
        """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]``; mqtts implies TLS."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ConfigError("mqtt.url", f"scheme must be mqtt:// or mqtts://, got {url!r}")
        if parts.username or parts.password:
            raise ConfigError(
                "mqtt.url", "put the user in mqtt.username and the password in a file"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("mqtt.url", f"must be scheme://host[:port] only, got {url!r}")
        if not parts.hostname:
            raise ConfigError("mqtt.url", f"has no host: {url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError("mqtt.url", f"has an invalid port: {url!r}") from None
        try:
            validate_device_id(client_id)
        except TopicError as exc:
            raise ConfigError("device_id", str(exc)) from None
        if password is not None and username is None:
            raise ConfigError("mqtt.username", "a password is set but no user name")
        if not 5 <= keepalive_s <= 65535:
            raise ConfigError("mqtt.keepalive", "must be between 5 and 65535 seconds")
        if not 0 < backoff_min_s <= backoff_max_s:
            raise ConfigError("mqtt.backoff", "needs 0 < min <= max")
        wants_tls = parts.scheme == "mqtts"
        if tls is not None and not wants_tls:
            raise ConfigError("mqtt.url", "TLS files are set but the URL is mqtt://; use mqtts://")
        if tls is not None and (tls.cert_file is None) != (tls.key_file is None):
            raise ConfigError("mqtt.cert_file", "client certificate and key go together")
        return cls(
            host=parts.hostname,
            port=port,
            client_id=client_id,
            tls=(tls or TLSFiles()) if wants_tls else None,
            username=username,
            password=password,
            keepalive_s=keepalive_s,
            backoff_min_s=backoff_min_s,
            backoff_max_s=backoff_max_s,
            protocol=protocol,
            max_packet_bytes=max_packet_bytes,
        )
