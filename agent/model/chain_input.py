"""Audio blocks through a model chain (``metadata.stages``) to the last stage's output.

The chain runs at the model's ``sample_rate``; a source at another rate is resampled as a stream
(soxr's streaming resampler, one per source stream, so block edges leave no artefacts). A block
may complete several last-stage outputs (openWakeWord: one every 80 ms, blocks are 100 ms): the
result is the highest-scoring of them, with the span of audio behind it as its window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.model.active import ActiveModel
from agent.pipeline.chain import Chain, ChainOutput, Stage
from agent.runtime import LoadedModel
from agent.sources.audio import AudioBlock


def _invoke(model: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: model.invoke([x])[0]


class ChainInput:
    def __init__(self, active: ActiveModel, clock: Callable[[], float]) -> None:
        specs = active.metadata.stages
        models = (*active.stages, active.model)
        if len(models) != len(specs):
            raise InputError(f"the chain declares {len(specs)} stages, {len(models)} are loaded")
        stages = [
            Stage(spec, _invoke(m), m.inputs[0].shape)
            for spec, m in zip(specs, models, strict=True)
        ]
        self.rate = active.metadata.sample_rate
        self.chain = Chain(stages, self.rate, clock) if self.rate else None
        self._stages = stages
        self._clock = clock
        self._stream: object = None
        self._resampler: Any = None
        self._position = 0

    def stats(self) -> dict[str, dict[str, float]]:
        return {s.spec.name: s.stats.to_obj() for s in self._stages}

    def feed(self, block: AudioBlock) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The best new last-stage output of this block and its window, if any."""
        if self.chain is None:  # no rate in the metadata: the chain runs at the source's
            self.rate = block.rate
            self.chain = Chain(self._stages, block.rate, self._clock)
        samples, offset = self._at_model_rate(block)
        outputs = self.chain.feed(samples, offset, block.stream)
        if not outputs:
            return None
        best: ChainOutput = max(outputs, key=lambda o: float(np.max(o.output)))
        start_s, end_s = best.start / self.rate, best.end / self.rate
        window: dict[str, Any] = {
            "start_s": round(start_s, 6),
            "end_s": round(end_s, 6),
            "start_ts": round(block.stream_wall + start_s, 6),
            "end_ts": round(block.stream_wall + end_s, 6),
        }
        if block.file:
            window["file"] = block.file
        return best.output, window

    def _at_model_rate(self, block: AudioBlock) -> tuple[np.ndarray, int]:
        if block.rate == self.rate:
            return block.samples, block.offset
        if block.stream != self._stream or self._resampler is None:
            import soxr  # the `audio` extra

            self._stream = block.stream
            self._resampler = soxr.ResampleStream(block.rate, self.rate, 1, dtype="float32")
            self._position = round(block.offset * self.rate / block.rate)
        out = np.asarray(self._resampler.resample_chunk(block.samples), dtype=np.float32)
        offset, self._position = self._position, self._position + len(out)
        return out, offset
