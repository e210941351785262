"""Quantize and dequantize tensors with a tensor's scale and zero point (pure numpy).

``real = (q - zero_point) * scale``. Dequantizing casts to a wide integer first so that
``q - zero_point`` cannot wrap around in ``int8``/``uint8`` arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from agent.errors import InputError
from agent.schema.meta import TensorSpec

_FLOAT_DTYPES = ("float32", "float16")


def quantize(x_float: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Turn float values into what ``spec`` expects.

    Quantized specs get ``round(x / scale) + zero_point`` clipped to the dtype's range; float
    specs get a cast (no copy when the dtype already matches).
    """
    dtype = np.dtype(spec.dtype)
    if spec.quantized:
        info = np.iinfo(dtype)
        q: np.ndarray = np.rint(np.asarray(x_float, dtype=np.float32) / np.float32(spec.scale))
        q += np.float32(spec.zero_point)
        np.clip(q, info.min, info.max, out=q)
        return q.astype(dtype)
    return np.asarray(x_float).astype(dtype, copy=False)


def dequantize(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real float32 values of ``array`` under ``spec`` (a float32 view/copy when not quantized)."""
    if spec.quantized:
        wide = array.astype(np.int32) - np.int32(spec.zero_point)
        return wide.astype(np.float32) * np.float32(spec.scale)
    return np.asarray(array).astype(np.float32, copy=False)


def window_to_input(window: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Reshape a sensor window (``T x F`` floats) into ``spec`` and quantize it if needed."""
    size = math.prod(spec.shape)  # numpy.prod of a tuple costs ~6 µs, most of this call
    if window.size != size:
        raise InputError(
            f"sensor window has {window.size} values ({list(window.shape)}); "
            f"the model input {list(spec.shape)} needs {size}"
        )
    return quantize(np.asarray(window, dtype=np.float32).reshape(spec.shape), spec)
