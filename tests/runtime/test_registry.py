from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import BackendError, ConfigError
from agent.runtime import (
    ReprobeSchedule,
    edgetpu_library,
    load_edgetpu_delegate,
    open_model,
    resolve_backend,
)

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_backend_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'onnx'; choose one of auto, litert"):
        resolve_backend("onnx")


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is not None, reason="tflite_runtime is installed"
)
def test_missing_tflite_runtime_names_what_to_install() -> None:
    with pytest.raises(
        BackendError, match=r"'tflite_runtime' is not installed .*pip install tflite-runtime"
    ):
        resolve_backend("tflite_runtime")


def test_auto_prefers_litert() -> None:
    backend = resolve_backend("auto")
    assert backend.name == "litert"
    assert backend.interpreter.__module__ == "ai_edge_litert.interpreter"


def test_open_model_rejects_an_unknown_accelerator_before_loading() -> None:
    with pytest.raises(ConfigError, match=r"model\.accelerator: must be one of cpu, edgetpu, auto"):
        open_model(b"", accelerator="gpu")


def test_open_model_rejects_zero_threads() -> None:
    with pytest.raises(ConfigError, match=r"model\.threads: must be at least 1; got 0"):
        open_model(b"x", threads=0)


def test_garbage_model_bytes_are_a_backend_error() -> None:
    with pytest.raises(BackendError, match="litert could not load the model"):
        open_model(b"definitely not a flatbuffer", backend="litert")


def test_importing_the_agent_inference_side_loads_no_runtime_and_no_tensorflow() -> None:
    code = (
        "import sys\n"
        "import agent.runtime, agent.pipeline.preprocess, agent.pipeline.postprocess\n"
        "import agent.sources, agent.sources.camera, agent.sources.imagedir, agent.sources.sensor\n"
        "print(sorted(m for m in ('tensorflow', 'ai_edge_litert', 'tflite_runtime')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_edgetpu_library_names_per_platform() -> None:
    assert edgetpu_library("Linux") == "libedgetpu.so.1"
    assert edgetpu_library("Darwin") == "libedgetpu.1.dylib"
    assert edgetpu_library("Windows") == "edgetpu.dll"


def test_missing_edgetpu_library_is_reported_not_raised() -> None:
    backend = resolve_backend("litert")
    delegate, reason = load_edgetpu_delegate(backend.load_delegate)
    assert delegate is None
    assert reason is not None
    assert reason.startswith("Edge TPU delegate libedgetpu.so.1 unavailable: ")
    assert "libedgetpu.so.1" in reason.split(": ", 1)[1]


def test_reprobe_delays_grow_with_jitter_up_to_the_cap_and_reset() -> None:
    schedule = ReprobeSchedule(base=1.0, factor=2.0, max_delay=8.0, rng=random.Random(7))
    delays = [schedule.next_delay() for _ in range(6)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    schedule.reset()
    assert 0.5 <= schedule.next_delay() <= 1.0
