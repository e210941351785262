"""Landmark / keypoint models: normalised points with scores.

The point tensor is ``P x values_per_point`` values (``x, y[, z, ...]``) in pixels of the model
input (or normalised; ``coordinates``), mapped to the original frame through the geometry;
``z`` is scaled like ``x`` (MediaPipe's convention). ``point_score_index`` names a per-point
value (pose visibility) passed through a sigmoid; ``score_output`` an overall presence score
passed through the metadata's activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import scores_to_probabilities, sigmoid
from agent.pipeline.tensors import dequantize
from agent.schema.decoding import DecoderSpec
from agent.schema.meta import TensorSpec


def decode_landmarks(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    spec: DecoderSpec,
    *,
    input_hw: tuple[int, int],
    scores: str,
    geometry: Letterbox | None,
) -> dict[str, Any]:
    index, v = spec.box_output, spec.values_per_point
    flat = dequantize(outputs[index], specs[index]).reshape(-1)
    if flat.size % v:
        raise InputError(f"landmark tensor has {flat.size} values, not a multiple of {v}")
    rows = flat.reshape(-1, v).astype(np.float64)
    h, w = input_hw
    pixels = spec.coordinates == "pixels" or (
        spec.coordinates == "auto" and float(np.abs(rows[:, :2]).max()) > 1.5
    )
    if pixels:
        rows[:, 0] /= w
        rows[:, 1] /= h
        if v > 2:
            rows[:, 2] /= w
    xs, ys = rows[:, 0], rows[:, 1]
    if geometry is not None:
        xs, ys = geometry.points_to_frame(xs, ys)
    else:
        xs, ys = np.clip(xs, 0.0, 1.0), np.clip(ys, 0.0, 1.0)
    columns = [np.round(xs, 5), np.round(ys, 5)]
    if v > 2 and spec.point_score_index != 2:
        columns.append(np.round(rows[:, 2], 5))
    if 0 <= spec.point_score_index < v:
        columns.append(np.round(sigmoid(rows[:, spec.point_score_index]), 4))
    points = np.stack(columns, axis=1).tolist()
    body: dict[str, Any] = {"points": points}
    if 0 <= spec.score_output < len(outputs) and spec.score_output != index:
        raw = dequantize(outputs[spec.score_output], specs[spec.score_output]).reshape(-1)[:1]
        body["score"] = float(scores_to_probabilities(raw, scores)[0])
    return {"landmarks": body}
