"""What a bundle needs besides the ``.tflite``: model metadata and a canary (pure functions)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.schema.meta import ModelMetadata, Preprocess, Quantization, Scores, Task
from convert.tflite_info import TFLiteInfo

_PASS_THROUGH_OPS = ("DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE")


@dataclass(frozen=True)
class Canary:
    """A known input and the output the converted model gave for it, with a tolerance.

    ``input`` is exactly the model input tensor (batch 1, already in its dtype); ``expected`` is
    the dequantized float32 output.
    """

    input: npt.NDArray[Any]
    expected: npt.NDArray[np.float32]
    atol: float

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, input=self.input, expected=self.expected, atol=np.float32(self.atol))
        return buffer.getvalue()


def default_atol(output_scale: float) -> float:
    """Tolerance for a canary: two quantization steps for quantized outputs, else 1e-4."""
    return max(1e-3, 2.0 * output_scale) if output_scale else 1e-4


def last_activation(info: TFLiteInfo) -> str:
    """The op that produces the first output, looking through (de)quantize and reshapes."""
    return info.source_op(info.output_indices[0], _PASS_THROUGH_OPS)


def build_metadata(
    info: TFLiteInfo,
    quantization: Quantization,
    preprocess: Preprocess,
    labels: tuple[str, ...] = (),
    source: str = "",
) -> ModelMetadata:
    """Metadata derived from the converted file itself, so it can never disagree with it."""
    outputs = tuple(t.spec for t in info.outputs)
    classification = len(outputs) == 1 and _is_vector(outputs[0].shape)
    task: Task = "classification" if classification else "raw"
    # ``scores`` names what the agent applies to the output: a model that ends in a softmax or a
    # sigmoid (LOGISTIC) already emits probabilities; anything else emits logits.
    scores: Scores = "probabilities"
    if classification and last_activation(info) not in ("SOFTMAX", "LOGISTIC"):
        scores = "logits"
    return ModelMetadata(
        task=task,
        inputs=tuple(t.spec for t in info.inputs),
        outputs=outputs,
        quantization=quantization,
        preprocess=preprocess,
        labels=labels,
        scores=scores,
        source=source,
    )


def _is_vector(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and shape[0] == 1 and shape[1] > 1
