"""YOLO v5/v8 decoding on real TFLite models built with TensorFlow to emit known boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.pipeline.decoders import decoder_for
from agent.pipeline.geometry import letterbox_geometry
from agent.pipeline.postprocess import BBox
from agent.runtime import open_model
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options

SIDE, ANCHORS, CLASSES = 64, 100, 3
# Known objects in model-input pixels: (x_center, y_center, w, h, class, score).
OBJECTS = [(20.0, 28.0, 16.0, 12.0, 1, 0.9), (44.0, 40.0, 20.0, 12.0, 2, 0.7)]


def _rows(version: str) -> np.ndarray:
    """``ANCHORS`` candidate rows: each object, a weaker duplicate one pixel off, and noise."""
    values = 5 + CLASSES if version == "v5" else 4 + CLASSES
    rows = np.zeros((ANCHORS, values), np.float32)
    rows[:, :4] = (32.0, 32.0, 4.0, 4.0)
    first = 5 if version == "v5" else 4
    for i, (x, y, w, h, c, s) in enumerate(OBJECTS):
        for k, (dx, score) in enumerate(((0.0, s), (1.0, s - 0.1))):
            row = rows[10 * i + k]
            row[:4] = (x + dx, y, w, h)
            row[first + c] = score
            if version == "v5":
                row[4] = 1.0
    rows[50:, first] = 0.2  # below the threshold everywhere
    if version == "v5":
        rows[50:, 4] = 1.0
    return rows


def _model(tmp_path: Path, version: str) -> Path:
    import tensorflow as tf

    rows = _rows(version)
    constant = rows[None] if version == "v5" else rows.T[None]  # v8 is channels first

    class Emit(tf.keras.layers.Layer):
        def call(self, x: tf.Tensor) -> tf.Tensor:
            return tf.constant(constant) + 0.0 * tf.reduce_mean(x)

    inputs = tf.keras.Input((SIDE, SIDE, 3), batch_size=1)
    model = tf.keras.Model(inputs, Emit()(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path = tmp_path / f"yolo{version}.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.mark.tensorflow
@pytest.mark.parametrize(("version", "kind"), [("v5", "yolov5"), ("v8", "yolov8")])
def test_yolo_model_gives_its_known_boxes_mapped_through_the_letterbox(
    tmp_path: Path, version: str, kind: str
) -> None:
    raw = _model(tmp_path, version).read_bytes()
    meta = recognise_model(inspect_model(raw), Options(resize="letterbox")).metadata
    assert meta.decoder is not None
    assert meta.decoder.kind == kind
    loaded = open_model(raw, threads=1)
    outputs = loaded.invoke([np.zeros((1, SIDE, SIDE, 3), np.float32)])
    geometry = letterbox_geometry(128, 64, SIDE, SIDE)  # a 2:1 frame: 16 px bands top and bottom
    decoder = decoder_for(meta)
    assert decoder is not None
    body, label, score = decoder(outputs, loaded.outputs, 0.5, geometry)
    found = body["detections"]
    assert [(d["index"], round(d["score"], 3)) for d in found] == [(1, 0.9), (2, 0.7)]
    for d, (x, y, w, h, _, _) in zip(found, OBJECTS, strict=True):
        # frame px = (model px - pad) / scale, scale 0.5, pad_y 16; frame is 128 x 64
        want = BBox(
            (x - w / 2) / 0.5 / 128, (y - h / 2 - 16) / 0.5 / 64,
            (x + w / 2) / 0.5 / 128, (y + h / 2 - 16) / 0.5 / 64,
        )  # fmt: skip
        assert BBox(**d["bbox"]).iou(want) > 0.999
    assert (label, score) == ("1,2", pytest.approx(0.9))
    loaded.close()
