"""The test broker itself: it runs on a private port, restarts on the same port, and logs."""

from __future__ import annotations

import socket

import pytest

from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker


def _accepts(broker: MosquittoBroker) -> bool:
    try:
        with socket.create_connection((broker.host, broker.port), timeout=0.5):
            return True
    except OSError:
        return False


def test_broker_listens_on_a_private_port_not_1883(broker: MosquittoBroker) -> None:
    assert broker.port != 1883
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert _accepts(broker)


def test_killed_broker_restarts_on_the_same_port(broker: MosquittoBroker) -> None:
    port = broker.port
    broker.kill()
    assert not broker.is_running()
    assert not _accepts(broker)
    broker.start()
    assert broker.port == port
    assert _accepts(broker)
    assert "running" in broker.log()
