"""Metadata derived from a converted file: which activation the agent applies to the scores."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipeline.postprocess import classify
from agent.schema.meta import Preprocess
from convert.artifacts import build_metadata
from convert.tflite_info import read_tflite

pytestmark = pytest.mark.tensorflow


def _classifier(activation: str | None) -> bytes:
    import tensorflow as tf

    model = tf.keras.Sequential(
        [tf.keras.Input((4,)), tf.keras.layers.Dense(3, activation=activation)]
    )
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.mark.parametrize(
    ("activation", "scores"),
    [("softmax", "probabilities"), ("sigmoid", "probabilities"), (None, "logits")],
)
def test_scores_name_what_the_agent_still_has_to_apply(activation: str | None, scores: str) -> None:
    info = read_tflite(_classifier(activation))
    meta = build_metadata(info, "float32", Preprocess())
    assert meta.scores == scores


def test_a_sigmoid_classifiers_scores_are_reported_as_the_model_emits_them() -> None:
    info = read_tflite(_classifier("sigmoid"))
    meta = build_metadata(info, "float32", Preprocess())
    output = np.array([[0.9, 0.2, 0.6]], dtype=np.float32)
    classes = classify(output, meta.outputs[0], ("a", "b", "c"), top_k=3, scores=meta.scores)
    assert [(c.label, round(c.score, 3)) for c in classes] == [("a", 0.9), ("c", 0.6), ("b", 0.2)]
