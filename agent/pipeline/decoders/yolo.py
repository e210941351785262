"""YOLO-style outputs: v5 ``[1, N, 5+C]`` (objectness) and v8 ``[1, 4+C, N]`` (no objectness).

Boxes are ``[x_center, y_center, w, h]`` in pixels of the model input or normalised
(``coordinates``; ``auto`` takes pixels when any coordinate exceeds 1.5). v8 tensors are read
transposed (channels first) unless their middle axis is clearly the longer one. Scores go
through the metadata's activation (Ultralytics exports already apply the sigmoid); NMS is
greedy, per class by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.errors import InputError
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import Detection, make_detection, nms, scores_to_probabilities
from agent.pipeline.tensors import dequantize
from agent.schema.decoding import DecoderSpec
from agent.schema.meta import TensorSpec


def yolo_rows(array: np.ndarray, kind: str) -> np.ndarray:
    """The output as ``(N, values)`` rows."""
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise InputError(f"YOLO output must be [1, N, V] or [1, V, N], got {list(array.shape)}")
    if (kind == "yolov8" and array.shape[0] < array.shape[1]) or (
        kind == "yolov5" and array.shape[0] < array.shape[1] and array.shape[0] >= 6
    ):
        array = array.T
    return array


def decode_yolo(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    spec: DecoderSpec,
    *,
    input_hw: tuple[int, int],
    labels: Sequence[str],
    scores: str,
    threshold: float,
    geometry: Letterbox | None,
) -> list[Detection]:
    index = spec.box_output
    rows = yolo_rows(dequantize(outputs[index], specs[index]), spec.kind)
    first = 5 if spec.kind == "yolov5" else 4
    if rows.shape[1] <= first:
        raise InputError(f"{spec.kind} rows need more than {first} values, got {rows.shape[1]}")
    classes = scores_to_probabilities(rows[:, first:], scores)
    if spec.kind == "yolov5":
        classes = classes * scores_to_probabilities(rows[:, 4:5], scores)
    best = np.argmax(classes, axis=1)
    best_score = classes[np.arange(rows.shape[0]), best]
    keep = np.flatnonzero(best_score >= threshold)
    if keep.size == 0:
        return []
    xywh = rows[keep, :4].astype(np.float64)
    pixels = spec.coordinates == "pixels" or (
        spec.coordinates == "auto" and float(np.abs(xywh).max()) > 1.5
    )
    if pixels:
        h, w = input_hw
        xywh = xywh / np.array([w, h, w, h], dtype=np.float64)
    x, y, bw, bh = xywh.T
    boxes = np.stack([y - bh / 2, x - bw / 2, y + bh / 2, x + bw / 2], axis=1)
    kept_scores, kept_classes = best_score[keep], best[keep]
    found: list[tuple[int, int, float]] = []
    groups = np.unique(kept_classes) if spec.class_wise else np.array([-1])
    for c in groups:
        members = np.flatnonzero(kept_classes == c) if c >= 0 else np.arange(keep.size)
        for k in nms(boxes[members], kept_scores[members], spec.iou_threshold, spec.max_detections):
            i = int(members[k])
            found.append((i, int(kept_classes[i]), float(kept_scores[i])))
    found.sort(key=lambda t: -t[2])
    return [
        make_detection(boxes[i], c, s, labels, geometry) for i, c, s in found[: spec.max_detections]
    ]
