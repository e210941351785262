"""Connection policy and settings, pure: backoff, CONNACK decisions, URL parsing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.mqtt.policy import Backoff, Next, Protocol, after_connack, refusal_message
from agent.mqtt.settings import MqttSettings, TLSFiles


def test_backoff_doubles_with_jitter_up_to_the_cap_and_never_hits_zero() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)


def test_backoff_reset_starts_again_from_the_minimum() -> None:
    backoff = Backoff(1.0, 60.0, random.Random(1))
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_mqtt5_refused_for_protocol_version_falls_back_at_once() -> None:
    assert after_connack(Protocol.MQTT5, 0x84).next is Next.FALL_BACK
    assert after_connack(Protocol.MQTT5, 0x01).next is Next.FALL_BACK


def test_mqtt311_refused_for_protocol_version_retries_later() -> None:
    assert after_connack(Protocol.MQTT311, 0x01).next is Next.RETRY_LATER


def test_bad_credentials_are_never_treated_as_connected() -> None:
    decision = after_connack(Protocol.MQTT5, 0x86)
    assert decision.next is Next.RETRY_LATER
    assert decision.reason == "broker refused the connection: bad user name or password (code 0x86)"
    assert after_connack(Protocol.MQTT311, 0x87).next is Next.RETRY_LATER


def test_accepted_connack_is_connected() -> None:
    assert after_connack(Protocol.MQTT311, 0).next is Next.CONNECTED


def test_unknown_reason_code_is_named_by_number() -> None:
    assert refusal_message(0x9C) == "broker refused the connection: reason code 0x9c (code 0x9c)"


def test_settings_from_url_defaults_ports_and_tls_by_scheme() -> None:
    plain = MqttSettings.from_url("mqtt://broker.local", client_id="pi-1")
    assert (plain.host, plain.port, plain.tls) == ("broker.local", 1883, None)
    secure = MqttSettings.from_url(
        "mqtts://broker.local:9883", client_id="pi-1", tls=TLSFiles(ca_file=Path("/ca.pem"))
    )
    assert (secure.port, secure.tls) == (9883, TLSFiles(ca_file=Path("/ca.pem")))
    assert MqttSettings.from_url("mqtts://b", client_id="pi-1").tls == TLSFiles()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://b", "mqtt.url"),
        ("mqtt://user:pw@b", "mqtt.url"),
        ("mqtt://b/path", "mqtt.url"),
        ("mqtt://:1883", "mqtt.url"),
        ("mqtt://b:99999", "mqtt.url"),
    ],
)
def test_settings_reject_bad_urls_naming_the_key(url: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings.from_url(url, client_id="pi-1")
    assert info.value.key == key


def test_settings_reject_tls_files_on_a_plain_url_and_a_lone_client_key() -> None:
    with pytest.raises(ConfigError, match="use mqtts://"):
        MqttSettings.from_url("mqtt://b", client_id="pi-1", tls=TLSFiles(ca_file=Path("/ca")))
    with pytest.raises(ConfigError, match="go together"):
        MqttSettings.from_url("mqtts://b", client_id="pi-1", tls=TLSFiles(key_file=Path("/k")))


def test_settings_reject_a_device_id_that_is_not_a_valid_client_id() -> None:
    with pytest.raises(ConfigError) as info:
        MqttSettings.from_url("mqtt://b", client_id="a/b")
    assert info.value.key == "device_id"
