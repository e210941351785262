"""Agreement between the Keras model and its TFLite conversion (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Validation:
    """How closely the converted model follows Keras on the validation samples.

    Accuracies are fractions in 0..1; ``accuracy_drop_points`` is in percentage points.
    """

    samples: int
    top1_agreement: float
    max_abs_error: float
    mean_abs_error: float
    keras_accuracy: float | None = None
    tflite_accuracy: float | None = None

    @property
    def accuracy_drop_points(self) -> float | None:
        if self.keras_accuracy is None or self.tflite_accuracy is None:
            return None
        return (self.keras_accuracy - self.tflite_accuracy) * 100.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "top1_agreement": self.top1_agreement,
            "max_abs_error": self.max_abs_error,
            "mean_abs_error": self.mean_abs_error,
            "keras_accuracy": self.keras_accuracy,
            "tflite_accuracy": self.tflite_accuracy,
            "accuracy_drop_points": self.accuracy_drop_points,
        }


def compare(
    keras_out: npt.NDArray[np.float32],
    tflite_out: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64] | None = None,
) -> Validation:
    """Compare outputs of shape ``(N, ...)``; top-1 is taken over the flattened output."""
    if keras_out.shape != tflite_out.shape:
        raise ValueError(
            f"output shapes differ: Keras {keras_out.shape}, TFLite {tflite_out.shape}"
        )
    n = keras_out.shape[0]
    keras_flat = keras_out.reshape(n, -1)
    tflite_flat = tflite_out.reshape(n, -1)
    keras_top = keras_flat.argmax(axis=1)
    tflite_top = tflite_flat.argmax(axis=1)
    error = np.abs(keras_flat.astype(np.float64) - tflite_flat.astype(np.float64))
    keras_acc = tflite_acc = None
    if labels is not None:
        keras_acc = float(np.mean(keras_top == labels))
        tflite_acc = float(np.mean(tflite_top == labels))
    return Validation(
        samples=int(n),
        top1_agreement=float(np.mean(keras_top == tflite_top)),
        max_abs_error=float(error.max()),
        mean_abs_error=float(error.mean()),
        keras_accuracy=keras_acc,
        tflite_accuracy=tflite_acc,
    )
