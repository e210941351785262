"""Run a converted model with the real LiteRT interpreter: outputs for validation, and latency.

The model comes from bytes. Inputs are given as float32 and quantized here with the input
tensor's own scale and zero point; outputs come back dequantized to float32.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import BackendError
from agent.pipeline.tensors import dequantize, quantize
from agent.runtime.model import tensor_spec as _spec

Float32Array = npt.NDArray[np.float32]


class LiteRTModel:
    """One interpreter over model bytes; not thread-safe (use one per thread)."""

    def __init__(self, model: bytes, threads: int = 2, xnnpack: bool = True) -> None:
        """``xnnpack=False``: LiteRT's built-in kernels only (no default XNNPACK delegate)."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = (
            OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        try:
            self._interpreter = Interpreter(
                model_content=model, num_threads=threads, experimental_op_resolver_type=resolver
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"LiteRT cannot load the model: {exc}") from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_spec = _spec(self._input)
        self.output_spec = _spec(self._output)

    def invoke_raw(self, tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run one already-quantized input tensor; return the raw output tensor."""
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        out: npt.NDArray[Any] = self._interpreter.get_tensor(self._output["index"]).copy()
        return out

    def predict(
        self, x: Float32Array, on_sample: Callable[[int], None] | None = None
    ) -> Float32Array:
        """Dequantized outputs for float samples ``x`` of shape ``(N, *input)``, one at a time;
        ``on_sample(done)`` after each."""
        outputs = []
        for done, sample in enumerate(x, 1):
            raw = self.invoke_raw(quantize(sample[None, ...], self.input_spec))
            outputs.append(dequantize(raw, self.output_spec))
            if on_sample is not None:
                on_sample(done)
        return np.concatenate(outputs, axis=0)

    def median_latency_ms(self, runs: int = 20, warmup: int = 3) -> float:
        """Median wall time of ``invoke()`` in milliseconds on a fixed input."""
        tensor = np.zeros(self.input_spec.shape, dtype=self.input_spec.dtype)
        self._interpreter.set_tensor(self._input["index"], tensor)
        for _ in range(warmup):
            self._interpreter.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self._interpreter.invoke()
            times.append((time.perf_counter() - start) * 1000.0)
        return statistics.median(times)


def interleaved_latency_ms(
    runtimes: dict[str, LiteRTModel], runs: int, rounds: int = 5
) -> dict[str, float]:
    """Median over ``rounds`` of each model's median invoke time; rounds interleave the models
    so that load on a shared host falls on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(rounds):
        for name, runtime in runtimes.items():
            samples[name].append(runtime.median_latency_ms(runs))
    return {name: statistics.median(values) for name, values in samples.items()}
