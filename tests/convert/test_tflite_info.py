"""The dependency-free TFLite reader agrees with LiteRT and rejects bytes that are not a model."""

from __future__ import annotations

import pytest

from convert.litert_run import LiteRTModel
from convert.tflite_info import TFLiteFormatError, read_tflite
from tests.support.models import ModelFactory


def test_non_tflite_bytes_are_rejected() -> None:
    with pytest.raises(TFLiteFormatError, match="missing the TFL3 file identifier"):
        read_tflite(b"PK\x03\x04 a zip file, not a model")


def test_truncated_model_is_rejected_not_crashed() -> None:
    with pytest.raises(TFLiteFormatError):
        read_tflite(b"\x10\x00\x00\x00TFL3\x00\x00")


@pytest.mark.tensorflow
@pytest.mark.parametrize(("quantize", "io_type"), [("float32", "float32"), ("int8", "int8")])
def test_tensor_specs_match_the_litert_interpreter(
    sample_models: ModelFactory, quantize: str, io_type: str
) -> None:
    data = sample_models(quantize, io_type).model_bytes()
    info = read_tflite(data)
    runtime = LiteRTModel(data, threads=1)
    assert info.inputs[0].spec == runtime.input_spec
    assert info.outputs[0].spec == runtime.output_spec


@pytest.mark.tensorflow
def test_truncating_a_real_model_anywhere_raises_format_error(sample_models: ModelFactory) -> None:
    data = sample_models("float32").model_bytes()
    for cut in (16, 64, 256, len(data) // 2):
        with pytest.raises(TFLiteFormatError):
            read_tflite(data[:cut])
