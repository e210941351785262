"""Output decoders selected by the bundle metadata (pure numpy; one module per family).

:class:`OutputDecoder` is built once per model (anchors are generated then) and turns the
output tensors of one inference into the ``outputs`` body of a result plus a summary
``(label, score)`` for the publish policy. See :mod:`agent.schema.decoding` for the options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.pipeline.decoders.anchored import anchors_for, decode_anchored
from agent.pipeline.decoders.landmarks import decode_landmarks
from agent.pipeline.decoders.segmentation import decode_segmentation
from agent.pipeline.decoders.yolo import decode_yolo
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import Detection, detect_postprocessed
from agent.schema.decoding import DecoderSpec
from agent.schema.meta import ModelMetadata, TensorSpec

Decoded = tuple[dict[str, Any], str | None, float | None]


class OutputDecoder:
    """Decode one model's outputs. ``threshold`` is used when the metadata names none."""

    def __init__(self, meta: ModelMetadata, spec: DecoderSpec) -> None:
        self.meta = meta
        self.spec = spec
        shape = meta.inputs[0].shape
        self.input_hw = (shape[1], shape[2]) if len(shape) == 4 else (1, 1)
        self._anchors = anchors_for(spec) if spec.kind in ("ssd_anchors", "blazeface") else None
        n_out = len(meta.outputs)
        for name in ("box_output", "score_output"):
            value = getattr(spec, name)
            if value >= n_out and not (name == "score_output" and spec.kind != "ssd_anchors"):
                raise InputError(f"decoder.{name} {value} but the model has {n_out} outputs")
        if self._anchors is not None:
            rows = int(np.prod(meta.outputs[spec.box_output].shape[:-1]))
            if rows != self._anchors.shape[0]:
                raise InputError(
                    f"the box output has {rows} rows but the anchors give "
                    f"{self._anchors.shape[0]}; check decoder.anchors"
                )

    def __call__(
        self,
        outputs: Sequence[np.ndarray],
        specs: Sequence[TensorSpec],
        threshold: float,
        geometry: Letterbox | None,
    ) -> Decoded:
        spec, meta = self.spec, self.meta
        # The model's own minimum score; the config's output.score_threshold can only raise it.
        limit = threshold if spec.threshold is None else max(spec.threshold, threshold)
        if spec.task == "segmentation":
            body = decode_segmentation(
                outputs, specs, spec, labels=meta.labels, scores=meta.scores, geometry=geometry
            )
            top = body["segments"][0] if body["segments"] else None
            return body, top["label"] if top else None, top["share"] if top else None
        if spec.task == "landmarks":
            body = decode_landmarks(
                outputs, specs, spec, input_hw=self.input_hw, scores=meta.scores, geometry=geometry
            )
            score = body["landmarks"].get("score")
            present = score is None or score >= limit
            return (
                body,
                (meta.labels[0] if meta.labels else "landmarks") if present else None,
                score,
            )
        return self._detections(self._detect(outputs, specs, limit, geometry))

    def _detect(
        self,
        outputs: Sequence[np.ndarray],
        specs: Sequence[TensorSpec],
        limit: float,
        geometry: Letterbox | None,
    ) -> list[Detection]:
        spec, meta = self.spec, self.meta
        if spec.kind == "ssd_postprocess":
            return detect_postprocessed(
                outputs, specs, meta.labels, threshold=limit, geometry=geometry
            )[: spec.max_detections]
        if spec.kind in ("yolov5", "yolov8"):
            return decode_yolo(
                outputs,
                specs,
                spec,
                input_hw=self.input_hw,
                labels=meta.labels,
                scores=meta.scores,
                threshold=limit,
                geometry=geometry,
            )
        assert self._anchors is not None
        return decode_anchored(
            outputs,
            specs,
            spec,
            self._anchors,
            labels=meta.labels,
            scores=meta.scores,
            threshold=limit,
            geometry=geometry,
        )

    @staticmethod
    def _detections(found: list[Detection]) -> Decoded:
        labels = ",".join(sorted({d.label for d in found}))
        best = max((d.score for d in found), default=None)
        return {"detections": [d.to_dict() for d in found]}, labels, best


def decoder_for(meta: ModelMetadata) -> OutputDecoder | None:
    """The decoder of a model, or ``None`` for classification and raw models."""
    if meta.decoder is not None:
        return OutputDecoder(meta, meta.decoder)
    if meta.task == "detection":
        return OutputDecoder(meta, DecoderSpec("ssd_postprocess"))
    return None
