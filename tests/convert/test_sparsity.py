"""Zero-weight share and compressed size, read from the .tflite bytes (no TensorFlow)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from convert.sparsity import deflate_size, tensor_zeros, weight_sparsity
from convert.tflite_info import TFLiteFormatError, WeightTensor, read_weights
from tests.support.models import ModelFactory


def _weight(values: np.ndarray, shape: tuple[int, ...], sparse: bool = False) -> WeightTensor:
    return WeightTensor("w", "FULLY_CONNECTED", shape, str(values.dtype), values.tobytes(), sparse)


def test_dense_filter_counts_its_stored_zeros() -> None:
    values = np.array([0, 3, 0, -2, 0, 0], np.int8)
    assert tensor_zeros(_weight(values, (2, 3))) == (4, 6)


def test_sparse_format_filter_counts_left_out_values_as_zeros() -> None:
    kept = np.array([1.5, -0.25], np.float32)  # 2 of 8 values stored
    assert tensor_zeros(_weight(kept, (2, 4), sparse=True)) == (6, 8)


def test_deflate_size_is_zlib_level_nine() -> None:
    data = bytes(1000) + b"x" * 10
    assert deflate_size(data) == len(zlib.compress(data, 9))
    assert deflate_size(data) < 50


def test_weights_of_non_model_bytes_are_rejected() -> None:
    with pytest.raises(TFLiteFormatError, match="missing the TFL3 file identifier"):
        read_weights(b"not a model at all")


@pytest.mark.tensorflow
def test_int8_digits_model_lists_its_four_filters(sample_models: ModelFactory) -> None:
    weights = read_weights(sample_models("int8").model_bytes())
    assert [(w.op, w.shape, w.dtype, w.sparse) for w in weights] == [
        ("CONV_2D", (16, 3, 3, 1), "int8", False),
        ("CONV_2D", (32, 3, 3, 16), "int8", False),
        ("FULLY_CONNECTED", (64, 2048), "int8", False),
        ("FULLY_CONNECTED", (10, 64), "int8", False),
    ]


@pytest.mark.tensorflow
def test_unpruned_model_has_few_zero_weights(sample_models: ModelFactory) -> None:
    sparsity = weight_sparsity(sample_models("float32").model_bytes())
    assert sparsity["weights"] == 16 * 9 + 32 * 9 * 16 + 2048 * 64 + 64 * 10
    assert sparsity["zero_fraction"] < 0.01
    report = sample_models("int8").report
    assert report["weight_sparsity"]["weights"] == sparsity["weights"]
    assert 0 < report["deflate_size_bytes"] < report["size_bytes"]
