"""How sparse and how compressible a ``.tflite`` file is, read from its bytes (numpy, no TF).

The share of zero weights counts the constant filters of the weight ops (convolutions, fully
connected), not biases: those are what pruning zeroes. A filter stored in the TFLite sparse
format holds only the kept values; the values it leaves out count as zeros.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from convert.tflite_info import WeightTensor, read_weights

_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
}


def deflate_size(data: bytes) -> int:
    """Bytes after deflate at level 9: what a zip of the file, or a compressed download, costs."""
    return len(zlib.compress(data, 9))


def tensor_zeros(weight: WeightTensor) -> tuple[int, int]:
    """``(zeros, dense elements)`` of one filter; stored sparse values left out count as zeros."""
    dtype = _DTYPES.get(weight.dtype)
    if dtype is None:
        return 0, weight.dense_elements
    values = np.frombuffer(weight.data, dtype=dtype)
    stored_zeros = int(np.count_nonzero(values == 0))
    missing = max(0, weight.dense_elements - len(values)) if weight.sparse else 0
    return stored_zeros + missing, weight.dense_elements


def weight_sparsity(model: bytes) -> dict[str, Any]:
    """The zero share over all weight-op filters and per filter, JSON-ready."""
    tensors = []
    zeros_total = elements_total = 0
    for weight in read_weights(model):
        zeros, elements = tensor_zeros(weight)
        zeros_total += zeros
        elements_total += elements
        tensors.append(
            {
                "name": weight.name,
                "op": weight.op,
                "shape": list(weight.shape),
                "dtype": weight.dtype,
                "sparse_format": weight.sparse,
                "zero_fraction": round(zeros / elements, 4) if elements else 0.0,
            }
        )
    return {
        "zero_fraction": round(zeros_total / elements_total, 4) if elements_total else 0.0,
        "weights": elements_total,
        "zeros": zeros_total,
        "tensors": tensors,
    }
