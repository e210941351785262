"""Acceptance on the sample model: real TensorFlow conversion, real LiteRT interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from convert.tflite_info import read_tflite
from tests.support.models import ModelFactory

pytestmark = pytest.mark.tensorflow


def test_int8_file_is_at_most_three_tenths_of_float32(sample_models: ModelFactory) -> None:
    report = sample_models("int8").report
    assert report["size_bytes"] <= 0.3 * report["float32_size_bytes"]
    assert report["size_ratio"] <= 0.3


def test_float16_file_is_at_most_six_tenths_of_float32(sample_models: ModelFactory) -> None:
    report = sample_models("float16").report
    assert report["size_bytes"] <= 0.6 * report["float32_size_bytes"]


def test_int8_loses_at_most_one_accuracy_point_on_heldout(sample_models: ModelFactory) -> None:
    validation = sample_models("int8").report["validation"]
    assert validation["samples"] == 360
    assert validation["keras_accuracy"] >= 0.97
    assert validation["accuracy_drop_points"] <= 1.0


def test_int8_io_model_has_int8_input_and_output_tensors(sample_models: ModelFactory) -> None:
    info = read_tflite(sample_models("int8", "int8").model_bytes())
    assert [t.spec.dtype for t in info.inputs] == ["int8"]
    assert [t.spec.dtype for t in info.outputs] == ["int8"]
    assert info.inputs[0].spec.scale > 0.0


def test_converted_model_has_static_batch_of_one(sample_models: ModelFactory) -> None:
    info = read_tflite(sample_models("float32").model_bytes())
    assert info.inputs[0].shape_signature == (1, 8, 8, 1)
    assert info.outputs[0].shape_signature == (1, 10)
    assert not info.has_dynamic_shapes


def test_canary_input_is_the_quantized_model_input(sample_models: ModelFactory) -> None:
    model = sample_models("int8", "int8")
    with np.load(model.canary) as canary:
        assert canary["input"].dtype == np.int8
        assert canary["input"].shape == (1, 8, 8, 1)
        assert canary["expected"].dtype == np.float32
        assert canary["expected"].shape == (1, 10)
        scale = model.report["outputs"][0]["scale"]
        assert float(canary["atol"]) == pytest.approx(max(1e-3, 2 * scale))
