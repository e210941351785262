"""Output tensors to results: classification, SSD-style detection, raw tensors (pure numpy).

Every result is a frozen dataclass with ``to_dict()`` returning plain JSON-able values. Boxes are
:class:`BBox` normalised to the original frame (``0..1``, ``x`` right, ``y`` down), mapped back
through the :class:`~agent.pipeline.preprocess.Letterbox` used to build the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.pipeline.geometry import Letterbox
from agent.pipeline.tensors import dequantize
from agent.schema.labels import label_of
from agent.schema.meta import TensorSpec

DEFAULT_MAX_RAW_VALUES = 4096
# SSD box-coder scales (y, x, h, w): the reciprocals of the usual variances (0.1, 0.1, 0.2, 0.2).
SSD_SCALES: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)


@dataclass(frozen=True)
class Classification:
    index: int
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "score": self.score}


@dataclass(frozen=True)
class BBox:
    """An axis-aligned box, normalised coordinates."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)

    def iou(self, other: BBox) -> float:
        w = min(self.xmax, other.xmax) - max(self.xmin, other.xmin)
        h = min(self.ymax, other.ymax) - max(self.ymin, other.ymin)
        inter = max(0.0, w) * max(0.0, h)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax}


@dataclass(frozen=True)
class Detection:
    """A detected object; ``keypoints`` are ``(x, y)`` normalised to the frame (may be empty)."""

    index: int
    label: str
    score: float
    bbox: BBox
    keypoints: tuple[tuple[float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "label": self.label,
            "score": self.score,
            "bbox": self.bbox.to_dict(),
        }
        if self.keypoints:
            out["keypoints"] = [[x, y] for x, y in self.keypoints]
        return out


@dataclass(frozen=True)
class RawTensor:
    name: str
    shape: tuple[int, ...]
    values: tuple[float, ...]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "values": list(self.values),
            "truncated": self.truncated,
        }


def _label(labels: Sequence[str], index: int) -> str:
    return label_of(tuple(labels), index)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(z)
    result: np.ndarray = e / np.sum(e, axis=-1, keepdims=True)
    return result


def sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))
    return result


def scores_to_probabilities(values: np.ndarray, kind: str) -> np.ndarray:
    """Apply the activation named by ``metadata.scores`` (``probabilities`` is left as is)."""
    if kind == "logits":
        return softmax(values)
    if kind == "sigmoid":
        return sigmoid(values)
    return values


def classify(
    output: np.ndarray,
    spec: TensorSpec,
    labels: Sequence[str] = (),
    *,
    top_k: int = 5,
    threshold: float = 0.0,
    scores: str = "probabilities",
) -> list[Classification]:
    """Top-``k`` classes with score ``>= threshold``, best first (ties: lower index first)."""
    values = scores_to_probabilities(dequantize(output, spec).reshape(-1), scores)
    k = min(max(top_k, 0), values.size)
    if k == 0:
        return []
    order = np.argsort(-values, kind="stable")[:k]
    # Python ints and floats once, compared as numpy compares a float32 with a Python float
    # (the threshold rounded to the values' dtype first).
    limit = float(values.dtype.type(threshold))
    return [
        Classification(i, _label(labels, i), score)
        for i, score in zip(order.tolist(), values[order].tolist(), strict=True)
        if score >= limit
    ]


def decode_ssd_boxes(
    raw: np.ndarray, anchors: np.ndarray, scales: tuple[float, float, float, float] = SSD_SCALES
) -> np.ndarray:
    """Decode ``(N, 4)`` ``[ty, tx, th, tw]`` against anchors ``[yc, xc, h, w]``.

    Returns ``(N, 4)`` ``[ymin, xmin, ymax, xmax]`` normalised to the model input.
    """
    if raw.shape != anchors.shape or raw.ndim != 2 or raw.shape[1] != 4:
        raise InputError(
            f"box encodings {list(raw.shape)} and anchors {list(anchors.shape)} must both be Nx4"
        )
    ys, xs, hs, ws = scales
    ya, xa, ha, wa = (anchors[:, i] for i in range(4))
    yc = raw[:, 0] / ys * ha + ya
    xc = raw[:, 1] / xs * wa + xa
    h = np.exp(raw[:, 2] / hs) * ha
    w = np.exp(raw[:, 3] / ws) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_out: int) -> np.ndarray:
    """Greedy non-maximum suppression on ``[ymin, xmin, ymax, xmax]`` boxes; kept indices."""
    order = np.argsort(-scores, kind="stable")
    heights = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    areas = heights * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size and len(keep) < max_out:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        yy1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        xx1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        yy2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        xx2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(yy2 - yy1, 0, None) * np.clip(xx2 - xx1, 0, None)
        union = areas[i] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def make_detection(  # noqa: PLR0917 - the one constructor every decoder calls
    box: np.ndarray | Sequence[float],
    index: int,
    score: float,
    labels: Sequence[str],
    geometry: Letterbox | None,
    keypoints: np.ndarray | None = None,
) -> Detection:
    """A detection from a model-normalised ``[ymin, xmin, ymax, xmax]`` box and ``(K, 2)``
    ``(x, y)`` keypoints, both mapped to the original frame."""
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    if geometry is not None:
        xmin, ymin, xmax, ymax = geometry.to_frame(xmin, ymin, xmax, ymax)
    else:
        xmin, ymin, xmax, ymax = (min(1.0, max(0.0, v)) for v in (xmin, ymin, xmax, ymax))
    points: tuple[tuple[float, float], ...] = ()
    if keypoints is not None and keypoints.size:
        points = tuple(_point(float(x), float(y), geometry) for x, y in keypoints)
    return Detection(index, _label(labels, index), score, BBox(xmin, ymin, xmax, ymax), points)


def _point(x: float, y: float, geometry: Letterbox | None) -> tuple[float, float]:
    if geometry is not None:
        return geometry.point_to_frame(x, y)
    return min(1.0, max(0.0, x)), min(1.0, max(0.0, y))


def detect_postprocessed(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    labels: Sequence[str] = (),
    *,
    threshold: float = 0.5,
    geometry: Letterbox | None = None,
) -> list[Detection]:
    """Read the 4 outputs of ``TFLite_Detection_PostProcess`` (boxes, classes, scores, count).

    Outputs are ordered by the ``:N`` suffix of their names when they carry the op's name
    (TF2 converters may list them in another order), else taken positionally.
    """
    if len(outputs) != 4 or len(specs) != 4:
        raise InputError(f"detection post-process needs 4 outputs, got {len(outputs)}")
    pairs = _ordered_postprocess_outputs(outputs, specs)
    boxes, classes, scores, count = (dequantize(a, s) for a, s in pairs)
    boxes = boxes.reshape(-1, 4)
    classes, scores = classes.reshape(-1), scores.reshape(-1)
    n = min(int(count.reshape(-1)[0]), boxes.shape[0], classes.size, scores.size)
    limit = float(scores.dtype.type(threshold))  # compared as numpy compares float32 values
    return [
        make_detection(boxes[i], int(classes[i]), score, labels, geometry)
        for i, score in enumerate(scores[:n].tolist())
        if score >= limit
    ]


def _ordered_postprocess_outputs(
    outputs: Sequence[np.ndarray], specs: Sequence[TensorSpec]
) -> list[tuple[np.ndarray, TensorSpec]]:
    pairs = list(zip(outputs, specs, strict=True))
    if all(s.name.startswith("TFLite_Detection_PostProcess") for s in specs):

        def suffix(pair: tuple[np.ndarray, TensorSpec]) -> int:
            _, _, tail = pair[1].name.partition(":")
            return int(tail) if tail.isdigit() else 0

        pairs.sort(key=suffix)
    return pairs


def detect_anchors(
    box_encodings: np.ndarray,
    class_scores: np.ndarray,
    anchors: np.ndarray,
    *,
    box_spec: TensorSpec,
    score_spec: TensorSpec,
    labels: Sequence[str] = (),
    scores: str = "sigmoid",
    threshold: float = 0.5,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    class_wise: bool = True,
    background: bool = True,
    geometry: Letterbox | None = None,
) -> list[Detection]:
    """Decode raw SSD outputs (``[1, N, 4]`` encodings, ``[1, N, C]`` scores) and run NMS.

    ``background`` drops class column 0 (labels then index the remaining columns).
    ``class_wise`` runs NMS per class; otherwise one global NMS over each anchor's best class.
    """
    boxes = decode_ssd_boxes(dequantize(box_encodings, box_spec).reshape(-1, 4), anchors)
    probs = dequantize(class_scores, score_spec).reshape(boxes.shape[0], -1)
    probs = scores_to_probabilities(probs, scores)
    if background:
        probs = probs[:, 1:]
    if class_wise:
        found = _classwise(boxes, probs, threshold, iou_threshold, max_detections)
    else:
        found = _global(boxes, probs, threshold, iou_threshold, max_detections)
    found.sort(key=lambda t: (-t[2], t[1], t[0]))
    return [make_detection(boxes[a], c, s, labels, geometry) for a, c, s in found[:max_detections]]


def _classwise(
    boxes: np.ndarray, probs: np.ndarray, threshold: float, iou: float, max_out: int
) -> list[tuple[int, int, float]]:
    found: list[tuple[int, int, float]] = []
    for c in range(probs.shape[1]):
        candidates = np.flatnonzero(probs[:, c] >= threshold)
        if candidates.size == 0:
            continue
        kept = nms(boxes[candidates], probs[candidates, c], iou, max_out)
        found.extend((int(candidates[k]), c, float(probs[candidates[k], c])) for k in kept)
    return found


def _global(
    boxes: np.ndarray, probs: np.ndarray, threshold: float, iou: float, max_out: int
) -> list[tuple[int, int, float]]:
    best = np.argmax(probs, axis=1)
    best_scores = probs[np.arange(probs.shape[0]), best]
    candidates = np.flatnonzero(best_scores >= threshold)
    kept = nms(boxes[candidates], best_scores[candidates], iou, max_out)
    return [
        (int(candidates[k]), int(best[candidates[k]]), float(best_scores[candidates[k]]))
        for k in kept
    ]


def raw_outputs(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    max_values: int = DEFAULT_MAX_RAW_VALUES,
) -> list[RawTensor]:
    """Dequantized output tensors, each truncated to ``max_values`` values (flagged)."""
    result = []
    for array, spec in zip(outputs, specs, strict=True):
        flat = array.reshape(-1)
        truncated = flat.size > max_values
        values = dequantize(flat[:max_values], spec)
        result.append(
            RawTensor(spec.name, tuple(array.shape), tuple(float(v) for v in values), truncated)
        )
    return result
