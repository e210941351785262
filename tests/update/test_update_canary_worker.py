"""The canary runs in its own process: model and canary through a pipe, verdict back as JSON."""

from __future__ import annotations

import io

import pytest

from agent.update.canary_worker import CanarySettings, encode_request, read_request, run_canary
from tests.support.models import ModelFactory
from tests.update.harness import wrong_canary

MEMORY = 2 << 30


def test_a_request_round_trips_through_the_framing() -> None:
    settings = CanarySettings(backend="litert", threads=1)
    parsed = read_request(io.BytesIO(encode_request(settings, b"model", b"canary")))
    assert parsed == (settings, b"model", b"canary")


def test_views_into_a_decrypted_buffer_frame_like_bytes_without_a_copy_first() -> None:
    plaintext = memoryview(bytearray(b"modelcanary"))
    data = encode_request(CanarySettings(), plaintext[:5].toreadonly(), plaintext[5:].toreadonly())
    assert data == encode_request(CanarySettings(), b"model", b"canary")


def test_a_truncated_request_names_where_it_ends() -> None:
    data = encode_request(CanarySettings(), b"model", b"canary")[:-2]
    with pytest.raises(ValueError, match="request ends inside the canary"):
        read_request(io.BytesIO(data))


@pytest.mark.tensorflow
def test_the_converters_canary_passes_in_the_worker(sample_models: ModelFactory) -> None:
    model = sample_models("int8")
    report = run_canary(
        CanarySettings(threads=1),
        model.model_bytes(),
        model.canary.read_bytes(),
        timeout_s=120,
        memory_bytes=MEMORY,
    )
    assert report.reason is None, report.detail
    assert report.latency_ms is not None
    assert report.latency_ms > 0


@pytest.mark.tensorflow
def test_a_wrong_expected_output_is_a_canary_mismatch(sample_models: ModelFactory) -> None:
    model = sample_models("int8")
    report = run_canary(
        CanarySettings(threads=1),
        model.model_bytes(),
        wrong_canary(model.canary.read_bytes()),
        timeout_s=120,
        memory_bytes=MEMORY,
    )
    assert report.reason == "canary_mismatch"
    assert "differs from the expected canary output" in report.detail


@pytest.mark.tensorflow
def test_a_model_that_does_not_parse_fails_in_the_worker_not_here(
    sample_models: ModelFactory,
) -> None:
    canary = sample_models("int8").canary.read_bytes()
    report = run_canary(
        CanarySettings(threads=1), b"TFL3" + bytes(500), canary, timeout_s=120, memory_bytes=MEMORY
    )
    assert report.reason in ("canary_load", "canary_crash")
    assert not report.passed


def test_a_worker_that_does_not_answer_in_time_is_a_canary_timeout() -> None:
    report = run_canary(CanarySettings(), b"m", b"c", timeout_s=0.001, memory_bytes=MEMORY)
    assert report.reason == "canary_timeout"


def test_a_malformed_canary_is_reported_by_the_worker() -> None:
    report = run_canary(CanarySettings(), b"m", b"not an npz", timeout_s=60, memory_bytes=MEMORY)
    assert report.reason == "canary_malformed"
    assert "not a valid npz" in report.detail
