"""Camera-like frames of held-out digits through Preprocessor -> LiteRT -> classify."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.pipeline.postprocess import classify
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from tests.support.models import HELDOUT, ModelFactory

pytestmark = pytest.mark.tensorflow


def _camera_frame(digit: np.ndarray, side: int = 240) -> np.ndarray:
    """An 8x8 [0,1] digit rendered as a ``side`` x ``side`` BGR uint8 camera frame."""
    gray = np.rint(digit[:, :, 0] * 255).astype(np.uint8)
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize(("quantize", "io_type"), [("float32", "float32"), ("int8", "int8")])
def test_digit_frames_classify_to_their_labels(
    sample_models: ModelFactory, quantize: str, io_type: str
) -> None:
    converted = sample_models(quantize, io_type)
    meta = converted.model_metadata()
    model = open_model(converted.model_bytes(), threads=1)
    pre = Preprocessor(meta)
    data = np.load(HELDOUT)
    x, y = data["x"], data["y"]
    hits = 0
    for digit, label in zip(x, y, strict=True):
        tensor, _ = pre(_camera_frame(digit))
        outputs = model.invoke([tensor])
        top = classify(outputs[0], model.outputs[0], meta.labels, top_k=1, scores=meta.scores)
        hits += int(top[0].label == str(label))
    assert hits / len(y) >= 0.95


def test_preprocessed_frame_equals_the_model_input_the_converter_used(
    sample_models: ModelFactory,
) -> None:
    converted = sample_models("int8", "int8")
    meta = converted.model_metadata()
    digit = np.load(HELDOUT)["x"][0]
    tensor, _ = Preprocessor(meta)(_camera_frame(digit))
    spec = meta.inputs[0]
    direct = np.clip(np.rint(digit / spec.scale) + spec.zero_point, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(tensor[0], direct)
