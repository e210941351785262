"""Anchor-based single-shot detectors: raw SSD outputs and MediaPipe BlazeFace-style models.

Both are MediaPipe's ``TensorsToDetectionsCalculator`` followed by (weighted) NMS:

* a box row is ``[y, x, h, w]`` (``box_format="yxhw"``, TF SSD) or ``[x, y, w, h]``
  (``"xywh"``, MediaPipe) at ``keypoint_offset``-free position 0; centres are
  ``raw / scale * anchor_size + anchor_centre``, sizes ``exp(raw / scale) * anchor_size``
  (``exp_size``, SSD) or ``raw / scale * anchor_size`` (MediaPipe);
* ``num_keypoints`` keypoints follow at ``keypoint_offset``, ``values_per_keypoint`` apart,
  decoded like centres;
* scores are clipped to ``±score_clip`` then passed through the metadata's activation;
* ``nms="weighted"`` averages every box (and keypoint) overlapping the best one by score, as
  MediaPipe does for faces and palms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.errors import InputError
from agent.pipeline.decoders.anchors import generate_anchors
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import Detection, make_detection, nms, scores_to_probabilities
from agent.pipeline.tensors import dequantize
from agent.schema.decoding import DecoderSpec
from agent.schema.meta import TensorSpec


def anchors_for(spec: DecoderSpec) -> np.ndarray:
    """The ``[yc, xc, h, w]`` anchors of a decoder: its table, or generated from its options."""
    if spec.anchor_table:
        return np.asarray(spec.anchor_table, dtype=np.float32)
    if spec.anchors is None:
        raise InputError(f"decoder {spec.kind} has no anchors")
    return generate_anchors(spec.anchors)


def decode_boxes(
    raw: np.ndarray, anchors: np.ndarray, spec: DecoderSpec
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4)`` ``[ymin, xmin, ymax, xmax]`` and ``(N, K, 2)`` keypoints ``(x, y)``."""
    if raw.ndim != 2 or raw.shape[0] != anchors.shape[0]:
        raise InputError(
            f"box tensor has {raw.shape[0] if raw.ndim else 0} rows, anchors {anchors.shape[0]}"
        )
    need = max(4, spec.keypoint_offset + spec.num_keypoints * spec.values_per_keypoint)
    if spec.num_keypoints and raw.shape[1] < need:
        raise InputError(f"box rows have {raw.shape[1]} values, {need} needed for the keypoints")
    sy, sx, sh, sw = spec.box_scale
    if spec.box_format == "xywh":
        x, y, w, h = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    else:
        y, x, h, w = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    ya, xa, ha, wa = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    yc = y / sy * ha + ya
    xc = x / sx * wa + xa
    if spec.exp_size:
        hh, ww = np.exp(h / sh) * ha, np.exp(w / sw) * wa
    else:
        hh, ww = h / sh * ha, w / sw * wa
    boxes = np.stack([yc - hh / 2, xc - ww / 2, yc + hh / 2, xc + ww / 2], axis=1)
    k = spec.num_keypoints
    if k == 0:
        return boxes, np.zeros((raw.shape[0], 0, 2), dtype=np.float32)
    start, step = spec.keypoint_offset, spec.values_per_keypoint
    cols = raw[:, start : start + k * step].reshape(-1, k, step)
    first, second = cols[:, :, 0], cols[:, :, 1]
    kx, ky = (first, second) if spec.box_format == "xywh" else (second, first)
    points = np.stack([kx / sx * wa[:, None] + xa[:, None], ky / sy * ha[:, None] + ya[:, None]], 2)
    return boxes, points


def weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, iou: float, max_out: int
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """MediaPipe's weighted NMS: ``(box, keypoints, index of the best member)`` per cluster."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    out: list[tuple[np.ndarray, np.ndarray, int]] = []
    while order.size and len(out) < max_out:
        best = int(order[0])
        yy1 = np.maximum(boxes[best, 0], boxes[order, 0])
        xx1 = np.maximum(boxes[best, 1], boxes[order, 1])
        yy2 = np.minimum(boxes[best, 2], boxes[order, 2])
        xx2 = np.minimum(boxes[best, 3], boxes[order, 3])
        inter = np.clip(yy2 - yy1, 0, None) * np.clip(xx2 - xx1, 0, None)
        union = areas[best] + areas[order] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        members = order[overlap > iou]
        if members.size == 0:
            members = order[:1]
        weights = scores[members][:, None]
        total = float(weights.sum())
        box = (boxes[members] * weights).sum(0) / total
        kps = (points[members] * weights[:, :, None]).sum(0) / total
        out.append((box, kps, best))
        order = order[overlap <= iou]
        order = order[order != best]
    return out


def decode_anchored(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    spec: DecoderSpec,
    anchors: np.ndarray,
    *,
    labels: Sequence[str],
    scores: str,
    threshold: float,
    geometry: Letterbox | None,
) -> list[Detection]:
    box_index, score_index = spec.box_output, spec.score_output
    raw = dequantize(outputs[box_index], specs[box_index])
    raw = raw.reshape(anchors.shape[0], -1)
    logits = dequantize(outputs[score_index], specs[score_index]).reshape(anchors.shape[0], -1)
    if spec.score_clip > 0:
        logits = np.clip(logits, -spec.score_clip, spec.score_clip)
    probs = scores_to_probabilities(logits, scores)
    if spec.background and probs.shape[1] > 1:
        probs = probs[:, 1:]
    best_class = np.argmax(probs, axis=1)
    best_score = probs[np.arange(probs.shape[0]), best_class]
    keep = np.flatnonzero(best_score >= threshold)
    if keep.size == 0:
        return []
    boxes, points = decode_boxes(raw[keep], anchors[keep], spec)
    found: list[tuple[np.ndarray, np.ndarray, int, float]] = []
    if spec.nms == "weighted":
        for box, kps, member in weighted_nms(
            boxes, points, best_score[keep], spec.iou_threshold, spec.max_detections
        ):
            found.append((box, kps, int(best_class[keep[member]]), float(best_score[keep[member]])))
    else:
        classes = best_class[keep]
        groups = np.unique(classes) if spec.class_wise else np.array([-1])
        for c in groups:
            rows = np.flatnonzero(classes == c) if c >= 0 else np.arange(keep.size)
            for k in nms(
                boxes[rows], best_score[keep][rows], spec.iou_threshold, spec.max_detections
            ):
                i = int(rows[k])
                found.append((boxes[i], points[i], int(classes[i]), float(best_score[keep][i])))
    found.sort(key=lambda t: -t[3])
    return [
        make_detection(box, c, s, labels, geometry, kps)
        for box, kps, c, s in found[: spec.max_detections]
    ]
