"""One inference step: an input item in, a JSON-able result out (no sockets, no files).

:class:`Pipeline` binds a loaded model to its metadata once (pre-processing tables, label list,
task) so the per-frame path is: pre-process, invoke, post-process, summarise for the publish
policy. Sensor readings go through a :class:`~agent.pipeline.windowing.Windower` first.

OpenCV, when installed (the ``video`` extra), is imported only for image models (it costs
~35-55 MB of RSS), so a sensor-only agent never loads it; without it the pixel work is numpy's
(:mod:`agent.pipeline.imageops`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.config import OutputConfig
from agent.errors import InputError
from agent.model.active import ActiveModel
from agent.model.audio_input import AudioInput
from agent.model.chain_input import ChainInput
from agent.mqtt.messages import MAX_RESULT_BYTES, ModelRef, Origin, ResultMessage
from agent.pipeline.decoders import decoder_for
from agent.pipeline.fit import ENVELOPE_BYTES, MAX_FLOAT_CHARS, fit_outputs
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import classify, raw_outputs
from agent.pipeline.tensors import window_to_input
from agent.pipeline.windowing import Windower
from agent.schema.meta import ModelMetadata, TensorSpec
from agent.sources.audio import AudioBlock
from agent.sources.base import Frame, FrameNeed, Reading
from agent.store.policy import Summary

if TYPE_CHECKING:
    from agent.model.crop_chain import CropChain
    from agent.pipeline.preprocess import Preprocessor


@dataclass(frozen=True)
class InferenceResult:
    """What one inference produced. ``outputs`` is the ``outputs`` field of a result message."""

    outputs: dict[str, Any]
    summary: Summary
    invoke_s: float
    total_s: float
    captured_t: float
    finite: bool
    #: The body was cut to fit the result size limit (flagged in it, counted in status).
    truncated: bool = False
    source: str = ""
    frame_seq: int | None = None
    file: str = ""

    def to_message(self, seq: int, captured_wall: float, model: ModelRef) -> ResultMessage:
        """The result message, ``ts`` and ``origin.captured`` the wall-clock capture time."""
        ts = round(captured_wall, 6)
        return ResultMessage(
            seq=seq,
            ts=ts,
            model=model,
            latency_ms=round(self.total_s * 1000.0, 3),
            outputs=self.outputs,
            origin=Origin(self.source, self.frame_seq, ts, self.file or None),
        )


def _image_preprocessor(meta: ModelMetadata) -> Preprocessor:
    from agent.pipeline.preprocess import Preprocessor  # OpenCV, if any, only for image models

    return Preprocessor(meta)


def _crop_chain(active: ActiveModel, clock: Callable[[], float]) -> CropChain | None:
    if not any(s.crop is not None for s in active.metadata.stages):
        return None
    from agent.model.crop_chain import CropChain

    return CropChain(active, clock)


class Pipeline:
    """Pre-process, invoke and post-process for one model.

    :meth:`process` (and the windowing state behind it) belongs to one thread, the model's
    interpreter stage; :meth:`prepare` may run on another (it only reads the tables).
    """

    def __init__(
        self, active: ActiveModel, output: OutputConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.active = active
        self.output = output
        self._clock = clock
        meta = active.metadata
        self._decoder = decoder_for(meta)
        self.max_result_bytes = MAX_RESULT_BYTES - ENVELOPE_BYTES
        self._input_spec = active.model.inputs[0]
        self._image_input = len(self._input_spec.shape) == 4
        self._preprocess = _image_preprocessor(meta) if self._image_input else None
        self._windower: Windower | None = None
        self._audio: AudioInput | None = None
        self._crops = _crop_chain(active, clock)
        self._chain = ChainInput(active, clock) if meta.stages and not self._crops else None
        if not self._image_input:
            shape = self._input_spec.shape
            features = shape[-1]
            length = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
            self._windower = Windower(length, features)
        pre = self._preprocess
        #: The smallest camera frame this model can use (None for sensor models).
        self.frame_need = (
            None
            if pre is None or self._crops is not None  # crops are cut from the full frame
            else FrameNeed(pre.width, pre.height, gray=pre.color == "gray", letterbox=pre.letterbox)
        )

    def configure_window(self, hop: int) -> None:
        """Set the hop between sensor windows (the window length comes from the model)."""
        if self._windower is not None:
            self._windower = Windower(self._windower.length, self._windower.features, hop)

    def stage_stats(self) -> dict[str, dict[str, float]]:
        """Per-stage invocations and latency of a model chain (empty for a single model)."""
        if self._crops is not None:
            return self._crops.stats()
        return {} if self._chain is None else self._chain.stats()

    def configure_audio(self, window_s: float | None, hop_s: float | None) -> None:
        """Audio windows (:mod:`agent.model.audio_input`); length defaults to the model's."""
        if not self._image_input:
            rate = self.active.metadata.sample_rate
            self._audio = AudioInput(self._input_spec, rate, window_s, hop_s)

    def process(self, item: Frame | Reading | AudioBlock) -> InferenceResult | None:
        """Run the model on a frame, or on a reading or audio once a whole window has arrived."""
        started = self._clock()
        window: dict[str, Any] | None = None
        tensor: np.ndarray | None
        geometry: Letterbox | None
        if isinstance(item, AudioBlock) and self._chain is not None:
            return self._chain_result(item, started)
        if isinstance(item, Frame) and self._crops is not None:
            return self._crop_result(item, started)
        if isinstance(item, AudioBlock):
            fed = self._audio_input().feed(item)
            tensor, geometry, window = (None, None, None) if fed is None else (fed[0], None, fed[1])
        else:
            tensor, geometry = self._to_input(item)
        if tensor is None:
            return None
        invoke_start = self._clock()
        outputs = self.active.model.invoke([tensor])
        invoke_s = self._clock() - invoke_start
        finite = all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
        body, summary = self._postprocess(outputs, geometry)
        if window is not None:
            body["window"] = window
        total = self._clock() - started
        return self._result(item, body, summary, invoke_s=invoke_s, total_s=total, finite=finite)

    # -- the staged split of a frame (agent.daemon.stages): prepare, invoke, finish ----------

    @property
    def staged(self) -> bool:
        """Whether frames run split: :meth:`prepare` off the interpreter thread, then
        :meth:`invoke_prepared` on it, then :meth:`finish` on the results stage (an image model
        without crops; everything else runs :meth:`process` whole on the interpreter thread)."""
        return self._preprocess is not None and self._crops is None

    @property
    def input_spec(self) -> TensorSpec:
        return self._input_spec

    def prepare(self, image: np.ndarray, out: np.ndarray) -> Letterbox:
        """Pre-process ``image`` into ``out`` (a reused buffer of the input's shape and dtype);
        the geometry that maps boxes back. Safe on any thread: the tables are read-only."""
        assert self._preprocess is not None, "prepare() is for staged image models"
        tensor, geometry = self._preprocess(image)
        np.copyto(out, tensor)
        return geometry

    def invoke_prepared(self, tensor: np.ndarray) -> tuple[list[np.ndarray], float]:
        """Invoke on a prepared tensor (the interpreter's thread); the outputs and the time."""
        started = self._clock()
        outputs = self.active.model.invoke([tensor])
        return outputs, self._clock() - started

    def finish(
        self,
        item: Frame,
        outputs: list[np.ndarray],
        geometry: Letterbox | None,
        *,
        prepare_s: float,
        invoke_s: float,
    ) -> InferenceResult:
        """Post-process the outputs of :meth:`invoke_prepared` into the result of ``item``;
        ``total_s`` is the work of the three stages, not the time spent waiting between them."""
        started = self._clock()
        finite = all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
        body, summary = self._postprocess(outputs, geometry)
        total = prepare_s + invoke_s + (self._clock() - started)
        return self._result(item, body, summary, invoke_s=invoke_s, total_s=total, finite=finite)

    def _chain_result(self, item: AudioBlock, started: float) -> InferenceResult | None:
        """A model chain ran its stages (the last is ``active.model``) on the block."""
        assert self._chain is not None
        fed = self._chain.feed(item)
        if fed is None:
            return None
        output, window = fed
        finite = bool(np.isfinite(output).all()) if output.dtype.kind == "f" else True
        body, summary = self._postprocess([output], None)
        body["window"] = window
        total = self._clock() - started
        return self._result(item, body, summary, invoke_s=total, total_s=total, finite=finite)

    def _crop_result(self, item: Frame, started: float) -> InferenceResult:
        """A detector and a crop stage ran on the frame (:mod:`agent.model.crop_chain`)."""
        assert self._crops is not None
        body, (label, score) = self._crops.run(item.image, self.output.score_threshold)
        total = self._clock() - started
        return self._result(item, body, Summary(label, score), invoke_s=total, total_s=total,
                            finite=True)  # fmt: skip

    def _result(
        self,
        item: Frame | Reading | AudioBlock,
        body: dict[str, Any],
        summary: Summary,
        *,
        invoke_s: float,
        total_s: float,
        finite: bool,
    ) -> InferenceResult:
        """The result of ``item``: its body cut to the size limit, with the item's origin."""
        body, cut = fit_outputs(body, self.max_result_bytes)
        truncated = cut or body.get("truncated") is True
        return InferenceResult(
            body,
            summary,
            invoke_s,
            total_s,
            item.t,
            finite,
            truncated,
            item.source,
            item.seq,
            "" if isinstance(item, Reading) else item.file,
        )

    def _audio_input(self) -> AudioInput:
        if self._image_input:
            raise InputError("this model takes images, not audio")
        if self._audio is None:
            self.configure_audio(None, None)
        assert self._audio is not None
        return self._audio

    def _to_input(self, item: Frame | Reading) -> tuple[np.ndarray | None, Letterbox | None]:
        if isinstance(item, Frame):
            if self._preprocess is None:
                raise InputError("this model takes sensor windows, not camera frames")
            tensor, geometry = self._preprocess(item.image)
            return tensor, geometry
        if self._windower is None:
            raise InputError("this model takes images, not sensor readings")
        window = self._windower.push(item.values)
        if window is None:
            return None, None
        return window_to_input(window, self._input_spec), None

    def _postprocess(
        self, outputs: list[np.ndarray], geometry: Letterbox | None
    ) -> tuple[dict[str, Any], Summary]:
        meta = self.active.metadata
        specs = self.active.model.outputs
        out = self.output
        if meta.task == "classification":
            classes = classify(
                outputs[0],
                specs[0],
                meta.labels,
                top_k=out.top_k,
                threshold=out.score_threshold,
                scores=meta.scores,
            )
            top = classes[0] if classes else None
            return {"classes": [c.to_dict() for c in classes]}, Summary(
                top.label if top else None, top.score if top else None
            )
        if self._decoder is not None:
            decoded, label, score = self._decoder(outputs, specs, out.score_threshold, geometry)
            return decoded, Summary(label, score)
        # A value costs up to MAX_FLOAT_CHARS bytes: cap before building a body that cannot fit.
        budget = max(1, self.max_result_bytes // MAX_FLOAT_CHARS // max(1, len(outputs)))
        tensors = raw_outputs(outputs, specs, max_values=min(out.max_raw_values, budget))
        body: dict[str, Any] = {"tensors": [t.to_dict() for t in tensors]}
        if out.max_raw_values > budget and any(o.size > budget for o in outputs):
            body["truncated"] = True  # cut below max_raw_values to fit the result limit
        return body, Summary(None, None)
