"""Model chains of tensor stages (pure apart from the ``invoke`` callables it is given).

A chain is a list of stages, each a model with its own rate. Stage 0 takes audio samples: a
window of ``window`` samples every ``hop`` samples. Stage ``k > 0`` takes rows of stage
``k-1``'s output (an output tensor is read as rows of its last dimension): a ring buffer holds
the last ``window`` rows, and the stage runs once the ring is full and ``hop`` new rows have
arrived since it last ran. Every stage's input is ``x * scale + offset`` reshaped to the model's
input shape. What the last stage returns is the chain's output, with the span of audio (sample
indices) that fed it.

openWakeWord, for example: mel-spectrogram (1760 samples every 1280, ``scale`` 32768 since it
takes int16-scaled floats) -> 8 rows of 32 mel bins each; embedding (76 mel rows every 8, ``scale``
0.1 and ``offset`` 2 as openWakeWord transforms them) -> one row of 96; the wake-word classifier
(the last 16 embeddings, every one) -> a score.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.errors import InputError
from agent.pipeline.audio import AudioWindower
from agent.schema.stages import StageSpec

Invoke = Callable[[np.ndarray], np.ndarray]


@dataclass
class StageStats:
    """Invocations and time spent in one stage (for status)."""

    invocations: int = 0
    total_s: float = 0.0
    last_s: float = 0.0

    def to_obj(self) -> dict[str, float | int]:
        mean_ms = 1000.0 * self.total_s / self.invocations if self.invocations else 0.0
        return {
            "invocations": self.invocations,
            "mean_ms": round(mean_ms, 3),
            "last_ms": round(1000.0 * self.last_s, 3),
        }


@dataclass(frozen=True)
class ChainOutput:
    """The last stage's output and the audio span (sample indices at the model rate) behind it."""

    output: np.ndarray
    start: int
    end: int


@dataclass
class _Ring:
    rows: deque[np.ndarray]
    spans: deque[tuple[int, int]]
    fresh: int = 0


@dataclass
class Stage:
    spec: StageSpec
    invoke: Invoke
    shape: tuple[int, ...]
    stats: StageStats = field(default_factory=StageStats)

    def run(self, x: np.ndarray, clock: Callable[[], float]) -> np.ndarray:
        size = math.prod(self.shape)
        if x.size != size:
            raise InputError(
                f"stage {self.spec.name!r} needs {size} values {list(self.shape)}, got {x.size}"
            )
        tensor = x.astype(np.float32) * np.float32(self.spec.scale) + np.float32(self.spec.offset)
        started = clock()
        out = self.invoke(tensor.reshape(self.shape))
        self.stats.last_s = clock() - started
        self.stats.total_s += self.stats.last_s
        self.stats.invocations += 1
        return out


class Chain:
    """Runs the stages on a stream of samples at the first stage's rate."""

    def __init__(self, stages: Sequence[Stage], rate: int, clock: Callable[[], float]) -> None:
        if not stages:
            raise InputError("a chain needs at least one stage")
        self.stages = list(stages)
        self.rate = rate
        self._clock = clock
        first = stages[0].spec
        self._windower = AudioWindower(rate, first.window, first.hop)
        self._stream: object = None
        self._rings = [
            _Ring(deque(maxlen=s.spec.window), deque(maxlen=s.spec.window)) for s in stages[1:]
        ]

    def stats(self) -> dict[str, dict[str, float | int]]:
        return {s.spec.name: s.stats.to_obj() for s in self.stages}

    def reset(self) -> None:
        self._windower.reset()
        for ring in self._rings:
            ring.rows.clear()
            ring.spans.clear()
            ring.fresh = 0

    def feed(self, samples: np.ndarray, offset: int, stream: object) -> list[ChainOutput]:
        """Samples at the chain's rate starting at ``offset``; the last stage's new outputs."""
        gaps = self._windower.gaps
        if stream != self._stream:
            self._stream = stream
            self.reset()
        outputs: list[ChainOutput] = []
        window = self._windower.push(samples, offset, stream)
        if self._windower.gaps != gaps:  # missing samples: later stages restart too
            for ring in self._rings:
                ring.rows.clear()
                ring.spans.clear()
        while window is not None:
            out = self.stages[0].run(window.samples, self._clock)
            outputs += self._cascade(1, out, (window.start, window.end))
            nothing = np.zeros(0, np.float32)
            window = self._windower.push(nothing, self._windower.position, stream)
        return outputs

    def _cascade(self, index: int, out: np.ndarray, span: tuple[int, int]) -> list[ChainOutput]:
        if index == len(self.stages):
            return [ChainOutput(out, span[0], span[1])]
        stage, ring = self.stages[index], self._rings[index - 1]
        rows = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out.reshape(-1, 1)
        results: list[ChainOutput] = []
        for row in rows:
            ring.rows.append(row)
            ring.spans.append(span)
            ring.fresh += 1
            if len(ring.rows) == stage.spec.window and ring.fresh >= stage.spec.hop:
                ring.fresh = 0
                x = np.stack(list(ring.rows))
                covered = (ring.spans[0][0], ring.spans[-1][1])
                results += self._cascade(index + 1, stage.run(x, self._clock), covered)
        return results
