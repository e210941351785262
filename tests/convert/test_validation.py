"""Agreement metrics and (de)quantization arithmetic (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipeline.tensors import dequantize, quantize
from agent.schema.meta import TensorSpec
from convert.validation import compare


def test_compare_reports_agreement_errors_and_accuracy_drop() -> None:
    keras = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    tflite = np.array([[0.8, 0.2], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]], np.float32)
    result = compare(keras, tflite, np.array([0, 1, 0, 1]))
    assert result.samples == 4
    assert result.top1_agreement == 0.75
    assert result.max_abs_error == pytest.approx(0.2)
    assert result.mean_abs_error == pytest.approx(0.075)
    assert result.keras_accuracy == 1.0
    assert result.tflite_accuracy == 0.75
    assert result.accuracy_drop_points == pytest.approx(25.0)


def test_compare_without_labels_has_no_accuracy() -> None:
    out = np.eye(3, dtype=np.float32)
    result = compare(out, out)
    assert (result.keras_accuracy, result.tflite_accuracy, result.accuracy_drop_points) == (
        None,
        None,
        None,
    )


def test_quantize_rounds_offsets_and_clips_to_int8() -> None:
    spec = TensorSpec("x", (1, 4), "int8", scale=0.5, zero_point=-10)
    q = quantize(np.array([[0.0, 1.26, 1000.0, -1000.0]]), spec)
    assert q.dtype == np.int8
    assert q.tolist() == [[-10, -7, 127, -128]]


def test_dequantize_uses_a_wide_cast() -> None:
    spec = TensorSpec("y", (1, 2), "int8", scale=0.25, zero_point=-128)
    values = dequantize(np.array([[127, -128]], np.int8), spec)
    assert values.tolist() == [[63.75, 0.0]]
    assert values.dtype == np.float32
