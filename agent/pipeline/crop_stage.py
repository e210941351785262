"""A crop stage: each detection of the previous stage, cropped from the frame, through a model.

For each detection above ``crop.threshold`` (best first, at most ``crop.max_crops``) the
rotated square of :func:`agent.pipeline.crop.rect_for_detection` is warped out of the ORIGINAL
frame to the model's input size (:func:`agent.pipeline.imageops.warp_affine`: OpenCV when
installed, else a numpy bilinear sampler), run, and decoded: landmarks are mapped
back through the inverse affine into coordinates normalised to the frame (``z`` scaled like
``x``); a classifier's classes are kept as they are. The result is attached to the detection
as ``detection[stage name] = {"rect": ..., "landmarks"|"classes": ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.pipeline import imageops
from agent.pipeline.chain import StageStats
from agent.pipeline.crop import (
    CropRect,
    crop_to_frame,
    frame_to_crop,
    map_points,
    rect_for_detection,
)
from agent.pipeline.decoders import decoder_for
from agent.pipeline.postprocess import classify
from agent.pipeline.preprocess import Preprocessor
from agent.schema.meta import ModelMetadata
from agent.schema.stages import CropSpec, StageSpec

#: All output tensors of one invoke of the crop model.
CropInvoke = Callable[[np.ndarray], Sequence[np.ndarray]]


class CropStage:
    """Runs one model on the crops of a frame's detections; counts and times every invoke."""

    def __init__(
        self,
        spec: StageSpec,
        meta: ModelMetadata,
        invoke: CropInvoke,
        clock: Callable[[], float],
    ) -> None:
        assert spec.crop is not None
        self.spec, self.crop, self.meta = spec, spec.crop, meta
        self._invoke, self._clock = invoke, clock
        self._preprocess = Preprocessor(meta)
        self._decoder = decoder_for(meta)
        self.input_wh = (self._preprocess.width, self._preprocess.height)
        self.stats = StageStats()
        self.crops = 0  # crops run since start (status)

    def __call__(self, frame: np.ndarray, detections: list[dict[str, Any]]) -> None:
        """Attach this stage's output to each selected detection (in place)."""
        h, w = frame.shape[:2]
        chosen = sorted(
            (d for d in detections if d["score"] >= self.crop.threshold),
            key=lambda d: -float(d["score"]),
        )[: self.crop.max_crops]
        for det in chosen:
            rect = _rect(det, (w, h), self.crop)
            det[self.spec.name] = self._run(frame, rect, (w, h))

    def _run(self, frame: np.ndarray, rect: CropRect, frame_wh: tuple[int, int]) -> dict[str, Any]:
        warped = imageops.warp_affine(frame, frame_to_crop(rect, self.input_wh), self.input_wh)
        tensor, _ = self._preprocess(warped)
        started = self._clock()
        outputs = self._invoke(tensor)
        self.stats.last_s = self._clock() - started
        self.stats.total_s += self.stats.last_s
        self.stats.invocations += 1
        self.crops += 1
        body: dict[str, Any] = {"rect": _rect_dict(rect, frame_wh)}
        if self._decoder is None:
            found = classify(outputs[0], self.meta.outputs[0], self.meta.labels, top_k=5,
                             scores=self.meta.scores)  # fmt: skip
            body["classes"] = [{"label": c.label, "score": c.score} for c in found]
            return body
        decoded, _, _ = self._decoder(outputs, self.meta.outputs, 0.0, None)
        if "landmarks" in decoded:
            d = self._decoder.spec
            has_z = d.values_per_point > 2 and d.point_score_index != 2
            marks = _to_frame(decoded["landmarks"], rect, self.input_wh, frame_wh, has_z=has_z)
            body["landmarks"] = marks
        else:  # a detector on the crop: boxes stay relative to the crop
            body.update(decoded)
        return body


def _rect(det: dict[str, Any], frame_wh: tuple[int, int], crop: CropSpec) -> CropRect:
    b = det["bbox"]
    return rect_for_detection(
        (b["xmin"], b["ymin"], b["xmax"], b["ymax"]),
        det.get("keypoints", []),
        frame_wh,
        scale=crop.scale,
        rotation_keypoints=crop.rotation_keypoints,
        target_angle=math.radians(crop.target_angle),
    )


def _rect_dict(rect: CropRect, frame_wh: tuple[int, int]) -> dict[str, float]:
    w, h = frame_wh
    return {
        "x_center": round(rect.cx / w, 5),
        "y_center": round(rect.cy / h, 5),
        "width": round(rect.side / w, 5),
        "height": round(rect.side / h, 5),
        "rotation_deg": round(math.degrees(rect.angle), 3),
    }


def _to_frame(
    landmarks: dict[str, Any],
    rect: CropRect,
    input_wh: tuple[int, int],
    frame_wh: tuple[int, int],
    *,
    has_z: bool,
) -> dict[str, Any]:
    """Crop-normalised points -> frame-normalised points (``z`` scaled by the crop width)."""
    points = np.asarray(landmarks["points"], dtype=np.float64)
    (iw, ih), (fw, fh) = input_wh, frame_wh
    pixels = points[:, :2] * np.array([iw, ih])
    frame = map_points(crop_to_frame(rect, input_wh), pixels) / np.array([fw, fh])
    out = points.copy()
    out[:, :2] = np.round(frame, 5)
    if has_z:  # z (MediaPipe: scaled like x) from crop to frame widths
        out[:, 2] = np.round(points[:, 2] * rect.side / fw, 5)
    result = dict(landmarks)
    result["points"] = out.tolist()
    return result
