"""Socket-level pieces of the MQTT adapter: the TLS context and TCP_NODELAY."""

from __future__ import annotations

import contextlib
import socket
import ssl

import paho.mqtt.client as paho

from agent.errors import ConfigError
from agent.mqtt.settings import MqttSettings


def no_delay(client: paho.Client) -> None:
    """Send small packets at once (TCP_NODELAY). With Nagle's algorithm a SUBSCRIBE or PUBACK
    queued behind an unacknowledged one waits for the broker's delayed ACK (~40 ms), which caps
    request/response traffic such as the block transfer at a few MB/s."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # an SSLSocket is one too
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def ssl_context(settings: MqttSettings) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` (or the system CAs); present the client cert."""
    tls = settings.tls
    assert tls is not None
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None
        )
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("mqtt.ca_file", f"cannot load TLS files: {exc}") from None
    return context
