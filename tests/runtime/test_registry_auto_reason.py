"""``backend = "auto"`` says what it picked and why, in the log and on the Backend it returns."""

from __future__ import annotations

import logging

import pytest

from agent.jsonutil import dumps_canonical
from agent.mqtt.messages import StatusMessage
from agent.runtime.registry import resolve_backend


def test_auto_names_the_backend_it_picked_and_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agent.runtime.registry"):
        backend = resolve_backend("auto")
    assert backend.name == "litert"  # the device extra installs ai-edge-litert
    assert (
        backend.reason == "auto: litert is the first of litert, tflite_runtime, tflite that imports"
    )
    assert f"backend litert picked; {backend.reason}" in caplog.text


def test_a_named_backend_says_so() -> None:
    assert resolve_backend("litert").reason == "named in the config"


def test_the_reason_travels_in_the_status_message() -> None:
    status = StatusMessage(ts=1.0, state="running", backend="litert", backend_reason="auto: x")
    assert StatusMessage.from_json(status.to_json()).backend_reason == "auto: x"
    older = status.to_obj()
    del older["backend_reason"]  # an agent from before this field
    assert StatusMessage.from_json(dumps_canonical(older)).backend_reason == ""
