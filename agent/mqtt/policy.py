"""Connection policy, pure: jittered exponential backoff and what to do after a CONNACK.

No sockets or threads here, so every decision is tested without a broker.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from agent.backoff import Backoff as SharedBackoff

# CONNACK codes meaning "I do not speak this protocol version": 0x01 is the MQTT 3.1.1 code a
# 3.1.1-only broker answers an MQTT 5 CONNECT with; 0x84 is the MQTT 5 "Unsupported Protocol
# Version" reason code.
_PROTOCOL_REFUSED = frozenset({0x01, 0x84})

_CONNACK_TEXT = {
    0x01: "unacceptable protocol version",
    0x02: "client identifier not valid",
    0x03: "server unavailable",
    0x04: "bad user name or password",
    0x05: "not authorised",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x9F: "connection rate exceeded",
}


class Protocol(enum.Enum):
    MQTT5 = "5"
    MQTT311 = "3.1.1"


class Next(enum.Enum):
    CONNECTED = "connected"
    FALL_BACK = "fall back to MQTT 3.1.1 now"
    RETRY_LATER = "retry after backoff"


@dataclass(frozen=True, slots=True)
class ConnackDecision:
    next: Next
    reason: str


def connack_text(code: int) -> str:
    return _CONNACK_TEXT.get(code, f"reason code {code:#04x}")


def refusal_message(code: int) -> str:
    """The one-line error users see for a refused CONNACK."""
    return f"broker refused the connection: {connack_text(code)} (code {code:#04x})"


def after_connack(protocol: Protocol, code: int) -> ConnackDecision:
    """Decide what a CONNACK with reason ``code`` means for a connection made with ``protocol``."""
    if code == 0:
        return ConnackDecision(Next.CONNECTED, "accepted")
    if protocol is Protocol.MQTT5 and code in _PROTOCOL_REFUSED:
        return ConnackDecision(Next.FALL_BACK, refusal_message(code))
    return ConnackDecision(Next.RETRY_LATER, refusal_message(code))


class Backoff(SharedBackoff):
    """:class:`~agent.backoff.Backoff` between ``min_s`` and ``max_s`` (reconnect delays)."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        super().__init__(base=min_s, max_delay=max_s, rng=rng or random.Random())  # noqa: S311

    def next(self) -> float:
        return self.next_delay()
