"""Other source formats (legacy .h5, SavedModel) and rejection of models that need Flex ops."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import InputError
from convert.api import ConvertOptions, convert_keras
from convert.tflite_info import read_tflite

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"

pytestmark = pytest.mark.tensorflow


def _determinant_savedmodel(directory: Path) -> Path:
    """A SavedModel whose only op, MatrixDeterminant, has no TFLite builtin kernel."""
    import tensorflow as tf

    class Determinant(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2], tf.float32, name="matrix")])
        def __call__(self, matrix: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"det": tf.linalg.det(matrix)}

    module = Determinant()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.__call__})
    return directory


def test_model_needing_flex_ops_is_rejected_naming_the_op(tmp_path: Path) -> None:
    src = _determinant_savedmodel(tmp_path / "det")
    with pytest.raises(InputError) as caught:
        convert_keras(src, tmp_path / "det.tflite", ConvertOptions())
    assert str(caught.value) == (
        "the model needs TensorFlow-only (Flex) ops that TFLite builtins do not have: "
        "MatrixDeterminant"
    )
    assert not (tmp_path / "det.tflite").exists()


def test_legacy_h5_converts_with_a_static_batch_of_one(tmp_path: Path) -> None:
    import tensorflow as tf

    h5 = tmp_path / "digits.h5"
    tf.keras.models.load_model(DIGITS / "digits.keras", compile=False).save(h5)
    result = convert_keras(h5, tmp_path / "digits.tflite", ConvertOptions(reference_float32=False))
    info = read_tflite((tmp_path / "digits.tflite").read_bytes())
    assert info.inputs[0].shape_signature == (1, 8, 8, 1)
    assert result.report["size_ratio"] == 1.0
    assert result.metadata.task == "classification"
