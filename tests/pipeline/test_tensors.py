from __future__ import annotations

import numpy as np

from agent.pipeline.tensors import dequantize, quantize
from agent.schema.meta import TensorSpec

INT8 = TensorSpec("x", (4,), "int8", scale=0.5, zero_point=-3)
UINT8 = TensorSpec("x", (4,), "uint8", scale=1 / 255, zero_point=0)
FLOAT = TensorSpec("x", (4,), "float32")
HALF = TensorSpec("x", (4,), "float16")


def test_quantize_int8_rounds_adds_zero_point_and_clips() -> None:
    q = quantize(np.array([0.0, 1.24, -100.0, 100.0], dtype=np.float32), INT8)
    assert q.dtype == np.int8
    assert q.tolist() == [-3, -1, -128, 127]


def test_quantize_uint8_maps_unit_interval_to_full_range() -> None:
    q = quantize(np.array([0.0, 0.6, 1.0, 2.0], dtype=np.float32), UINT8)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 153, 255, 255]


def test_quantize_float_specs_cast_without_quantizing() -> None:
    x = np.array([0.25, 1.5, -2.0, 3.0], dtype=np.float32)
    assert quantize(x, FLOAT) is x
    half = quantize(x, HALF)
    assert half.dtype == np.float16
    assert half.tolist() == [0.25, 1.5, -2.0, 3.0]


def test_dequantize_int8_does_not_wrap_when_subtracting_zero_point() -> None:
    spec = TensorSpec("y", (2,), "int8", scale=1.0, zero_point=100)
    out = dequantize(np.array([-128, 127], dtype=np.int8), spec)
    assert out.dtype == np.float32
    assert out.tolist() == [-228.0, 27.0]


def test_dequantize_uint8_with_large_zero_point() -> None:
    spec = TensorSpec("y", (2,), "uint8", scale=0.25, zero_point=200)
    out = dequantize(np.array([0, 255], dtype=np.uint8), spec)
    assert out.tolist() == [-50.0, 13.75]


def test_dequantize_float_tensor_is_float32() -> None:
    out = dequantize(np.array([1.5, 2.5], dtype=np.float16), HALF)
    assert out.dtype == np.float32
    assert out.tolist() == [1.5, 2.5]


def test_quantize_then_dequantize_is_within_half_a_step() -> None:
    x = np.linspace(-60.0, 60.0, 241, dtype=np.float32)
    back = dequantize(quantize(x, INT8), INT8)
    assert np.max(np.abs(back - x)) <= 0.25 + 1e-6
