from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from agent.errors import BackendError, InputError
from agent.pipeline.tensors import dequantize, quantize
from agent.runtime import LoadedModel, open_model
from agent.schema.meta import TensorSpec
from tests.support.models import HELDOUT, ModelFactory

pytestmark = pytest.mark.tensorflow


def _heldout() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(HELDOUT)
    return data["x"].astype(np.float32), data["y"]


def _accuracy(model: LoadedModel, x: np.ndarray, y: np.ndarray) -> float:
    spec_in, spec_out = model.inputs[0], model.outputs[0]
    hits = 0
    for image, label in zip(x, y, strict=True):
        (out,) = model.invoke([quantize(image[None], spec_in)])
        hits += int(np.argmax(dequantize(out, spec_out)) == label)
    return hits / len(y)


def test_float_model_loads_from_bytes_with_its_tensor_specs(sample_models: ModelFactory) -> None:
    model = open_model(sample_models("float32").model_bytes(), threads=1)
    assert (model.backend, model.accelerator, model.threads) == ("litert", "cpu", 1)
    assert model.degraded is False
    assert model.fallback_reason is None
    assert model.inputs == (TensorSpec("x", (1, 8, 8, 1), "float32"),)
    assert model.outputs[0].shape == (1, 10)
    x, y = _heldout()
    assert _accuracy(model, x, y) >= 0.95


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_int8_model_exposes_quantization_and_classifies(
    sample_models: ModelFactory, io_type: str
) -> None:
    model = open_model(sample_models("int8", io_type).model_bytes())
    spec = model.inputs[0]
    assert spec.dtype == io_type
    assert spec.scale == pytest.approx(1 / 255)
    assert spec.zero_point == (-128 if io_type == "int8" else 0)
    assert model.outputs[0].scale == pytest.approx(1 / 256)
    assert model.threads == os.cpu_count()
    x, y = _heldout()
    assert _accuracy(model, x, y) >= 0.95


def test_requested_edgetpu_falls_back_to_cpu_degraded_with_the_same_outputs(
    sample_models: ModelFactory,
) -> None:
    data = sample_models("float32").model_bytes()
    cpu = open_model(data, accelerator="cpu")
    tpu = open_model(data, accelerator="edgetpu")
    assert (tpu.accelerator, tpu.degraded) == ("cpu", True)
    assert tpu.fallback_reason is not None
    assert "libedgetpu.so.1" in tpu.fallback_reason
    x, _ = _heldout()
    for image in x[:20]:
        np.testing.assert_array_equal(tpu.invoke([image[None]])[0], cpu.invoke([image[None]])[0])


def test_edgetpu_fallback_uses_the_cpu_variant_when_given(sample_models: ModelFactory) -> None:
    cpu_variant = sample_models("int8", "int8").model_bytes()
    # Stands in for an Edge TPU-compiled model, which the CPU interpreter cannot run.
    tpu_only = b"edgetpu-compiled model that the CPU cannot run"
    model = open_model(tpu_only, accelerator="edgetpu", cpu_fallback_model=cpu_variant)
    assert (model.accelerator, model.degraded) == ("cpu", True)
    x, y = _heldout()
    assert _accuracy(model, x[:100], y[:100]) >= 0.95


def test_auto_accelerator_without_a_tpu_runs_on_cpu_not_degraded(
    sample_models: ModelFactory,
) -> None:
    model = open_model(sample_models("float32").model_bytes(), accelerator="auto")
    assert (model.accelerator, model.degraded) == ("cpu", False)
    assert model.fallback_reason is not None


def test_the_loaded_model_says_which_backend_auto_picked_and_why(
    sample_models: ModelFactory,
) -> None:
    auto = open_model(sample_models("float32").model_bytes(), backend="auto", accelerator="auto")
    assert auto.backend == "litert"
    assert auto.backend_reason.startswith("auto: litert is the first of litert, tflite_runtime")
    named = open_model(sample_models("float32").model_bytes(), backend="litert")
    assert named.backend_reason == "named in the config"


def test_invoke_rejects_wrong_shape_dtype_and_count(sample_models: ModelFactory) -> None:
    model = open_model(sample_models("int8", "int8").model_bytes())
    with pytest.raises(InputError, match=r"input 'x' needs int8\[1, 8, 8, 1\], got float32"):
        model.invoke([np.zeros((1, 8, 8, 1), dtype=np.float32)])
    with pytest.raises(InputError, match=r"needs int8\[1, 8, 8, 1\], got int8\[1, 8, 8\]"):
        model.invoke([np.zeros((1, 8, 8), dtype=np.int8)])
    with pytest.raises(InputError, match=r"takes 1 input\(s\), got 2"):
        model.invoke([np.zeros((1, 8, 8, 1), dtype=np.int8)] * 2)


def test_outputs_are_copies_not_views_into_the_interpreter(sample_models: ModelFactory) -> None:
    model = open_model(sample_models("float32").model_bytes())
    x, _ = _heldout()
    first = model.invoke([x[0][None]])[0]
    kept = first.copy()
    model.invoke([x[1][None]])
    np.testing.assert_array_equal(first, kept)


def test_concurrent_invokes_are_serialised_and_correct(sample_models: ModelFactory) -> None:
    model = open_model(sample_models("float32").model_bytes(), threads=1)
    x, _ = _heldout()
    expected = [model.invoke([image[None]])[0] for image in x[:40]]
    failures: list[int] = []

    def work() -> None:
        for i, image in enumerate(x[:40]):
            if not np.array_equal(model.invoke([image[None]])[0], expected[i]):
                failures.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_closed_model_refuses_to_invoke(sample_models: ModelFactory) -> None:
    model = open_model(sample_models("float32").model_bytes())
    model.close()
    model.close()
    with pytest.raises(BackendError, match="model is closed"):
        model.invoke([np.zeros((1, 8, 8, 1), dtype=np.float32)])


def test_model_is_never_read_from_a_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="flatbuffer bytes"):
        open_model(str(tmp_path / "model.tflite"))  # type: ignore[arg-type]
