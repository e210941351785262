"""Audio blocks to model input tensors: windows at the source's rate, resampled to the model's.

The model's rate is ``metadata.sample_rate`` (when the metadata has none, audio is fed at the
source's rate, unresampled). The window length is ``source.window_s`` or, by default, what the
model takes (input samples / model rate); the hop is ``source.hop_s`` or the window (no overlap).
Each window is cut at the source's rate, so the same audio gives the same windows whatever its
rate, then resampled (soxr) to exactly the model's input length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import InputError
from agent.pipeline.audio import AudioWindow, AudioWindower, resample
from agent.pipeline.tensors import quantize
from agent.schema.meta import TensorSpec
from agent.sources.audio import AudioBlock


class AudioInput:
    """Feeds one model from audio blocks; not thread-safe (the loop's)."""

    def __init__(
        self,
        spec: TensorSpec,
        model_rate: int,
        window_s: float | None = None,
        hop_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.samples = int(np.prod(spec.shape))
        self.model_rate = model_rate
        self.window_s = window_s
        self.hop_s = hop_s
        self._windower: AudioWindower | None = None

    @property
    def skipped(self) -> int:
        return 0 if self._windower is None else self._windower.skipped

    def _windower_for(self, rate: int) -> AudioWindower:
        if self._windower is not None and self._windower.rate == rate:
            return self._windower
        model_rate = self.model_rate or rate
        model_window_s = self.samples / model_rate
        window_s = self.window_s or model_window_s
        if abs(window_s * model_rate - self.samples) > max(1.0, self.samples / 100):
            raise InputError(
                f"source.window_s = {window_s:g} s is {round(window_s * model_rate)} samples at "
                f"the model's {model_rate} Hz; the model takes {self.samples} "
                f"({model_window_s:g} s)"
            )
        hop_s = min(self.hop_s or window_s, window_s)
        self._windower = AudioWindower(rate, round(window_s * rate), max(1, round(hop_s * rate)))
        return self._windower

    def feed(self, block: AudioBlock) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The input tensor and the window's times once a window is complete."""
        window = self._windower_for(block.rate).push(block.samples, block.offset, block.stream)
        if window is None:
            return None
        model_rate = self.model_rate or block.rate
        samples = resample(window.samples, block.rate, model_rate, self.samples)
        tensor = quantize(samples.reshape(self.spec.shape), self.spec)
        return tensor, window_times(window, block)


def window_times(window: AudioWindow, block: AudioBlock) -> dict[str, Any]:
    """Where a window lies: seconds into its stream and wall-clock times (and its file)."""
    times: dict[str, Any] = {
        "start_s": round(window.start_s, 6),
        "end_s": round(window.end_s, 6),
        "start_ts": round(block.stream_wall + window.start_s, 6),
        "end_ts": round(block.stream_wall + window.end_s, 6),
    }
    if block.file:
        times["file"] = block.file
    return times
