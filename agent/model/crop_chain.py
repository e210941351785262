"""Camera frames through a detector and a crop stage (``metadata.stages``: detector, crop).

Stage 1 (``stage_1.tflite``) is the detector, described by its stage's ``model`` metadata; the
last stage (``model.tflite``, the bundle's own metadata) runs on crops of its detections
(:mod:`agent.pipeline.crop_stage`). The result is the detector's ``detections``, each carrying
the crop stage's output under the stage's name, in frame coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.model.active import ActiveModel
from agent.pipeline.chain import StageStats
from agent.pipeline.crop_stage import CropStage
from agent.pipeline.decoders import OutputDecoder, decoder_for
from agent.pipeline.preprocess import Preprocessor
from agent.schema.meta import ModelMetadata

Summary = tuple[str | None, float | None]


class CropChain:
    def __init__(self, active: ActiveModel, clock: Callable[[], float]) -> None:
        specs = active.metadata.stages
        if len(specs) != 2 or specs[1].crop is None or specs[0].model is None:
            raise InputError(
                "a crop chain is two stages: a detector with its own 'model' metadata, then "
                "the crop stage (model.tflite)"
            )
        detector_meta = ModelMetadata.from_dict(specs[0].model)
        decoder = decoder_for(detector_meta)
        if decoder is None or decoder.spec.task != "detection":
            raise InputError(f"stage {specs[0].name!r} must be a detector (metadata decoder)")
        self._detector, self._decoder = active.stages[0], decoder
        self._detector_meta = detector_meta
        self._preprocess = Preprocessor(detector_meta)
        self._name = specs[0].name
        self._stats = StageStats()
        self._clock = clock
        final = active.model
        self.crop = CropStage(specs[1], active.metadata, lambda x: final.invoke([x]), clock)

    def stats(self) -> dict[str, dict[str, float | int]]:
        return {self._name: self._stats.to_obj(), self.crop.spec.name: self.crop.stats.to_obj()}

    def run(self, frame: np.ndarray, threshold: float) -> tuple[dict[str, Any], Summary]:
        tensor, geometry = self._preprocess(frame)
        started = self._clock()
        outputs = self._detector.invoke([tensor])
        self._stats.last_s = self._clock() - started
        self._stats.total_s += self._stats.last_s
        self._stats.invocations += 1
        decoder: OutputDecoder = self._decoder
        body, label, score = decoder(outputs, self._detector.outputs, threshold, geometry)
        self.crop(frame, body["detections"])
        return body, (label, score)
