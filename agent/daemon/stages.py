"""The inference stages between the source and the results: prepare, then interpret.

::

    capture ─LatestSlot─► prepare ─TensorRing─► interpreter ─outcomes─► loop (results)
    decode                pre-process into      set_tensor, invoke,     post-process, publish
                          a reused buffer       copy the outputs        policy, events, outbox

- **prepare** (:meth:`Stages.open`, one thread per source): takes items from the source, paced
  by ``source.fps``; a frame for a staged model (:attr:`Pipeline.staged`) is pre-processed into
  its ring slot's buffer by the pipeline that is live at that moment, and the slot is tagged with
  that pipeline. Bad input (``InputError``) goes to the loop as a failure, counted ``bad_input``.
- **interpret** (a job on the live model's own :class:`~agent.runtime.worker.ModelThread`, so the
  interpreter is only ever called by its thread): takes the oldest ready slot; a frame prepared
  for a pipeline that is no longer live is prepared again by the live one (counted
  :attr:`TensorRing.stale`), so a swap never feeds a wrong-shaped tensor; invokes, and hands the
  copied outputs, the geometry and the timings to the loop. Other items (readings, audio, crop
  chains) run the pipeline's whole ``process`` here. A swap changes which thread serves: the old
  model's job ends after its item in flight, and the new one starts once it has handed that item
  over, so results stay in order across a swap.
- **results** (the service loop, :meth:`Stages.next`): post-processing, publishing and the rest.

Back-pressure: the outcomes queue holds :data:`OUTCOMES` items; when the loop falls behind the
interpreter stage waits, the ring fills, and then a live source drops its oldest ready frame
(counted) while a blocking source waits (nothing lost). See :mod:`agent.daemon.ring`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.daemon.ring import Slot, TensorRing
from agent.errors import BackendError, EdgeError, InputError
from agent.model.pipeline import InferenceResult, Pipeline
from agent.model.swap import ServedModel
from agent.pipeline.geometry import Letterbox
from agent.sources.audio import AudioBlock
from agent.sources.base import Frame, Reading
from agent.sources.factory import InputSource

log = logging.getLogger(__name__)

POLL_S = 0.02
#: Hand-offs (a frame's outcome, or a burst's outcomes) waiting for the loop before the
#: interpreter stage waits.
OUTCOMES = 4
#: Sensor readings taken from the source in one go when they are already waiting: a burst
#: crosses each thread once, not once per reading (a fast sensor gives thousands a second).
BURST = 64
Item = Frame | Reading | AudioBlock


@dataclass(frozen=True)
class Raw:
    """The interpreter's outputs of a prepared frame, for :meth:`Pipeline.finish`."""

    outputs: list[np.ndarray]
    geometry: Letterbox | None
    prepare_s: float
    invoke_s: float


@dataclass(frozen=True)
class Outcome:
    """One item's outcome for the loop: a result, raw outputs to finish, or a failure."""

    pipeline: Pipeline
    item: Item
    result: InferenceResult | None = None
    raw: Raw | None = None
    #: ``(kind, error)``: ``bad_input`` or ``backend``.
    failure: tuple[str, EdgeError] | None = None

    def finish(self) -> InferenceResult | None:
        """The result (post-processing raw outputs here, on the caller's thread)."""
        if self.raw is None or not isinstance(self.item, Frame):
            return self.result
        raw = self.raw
        return self.pipeline.finish(
            self.item, raw.outputs, raw.geometry, prepare_s=raw.prepare_s, invoke_s=raw.invoke_s
        )


class Stages:
    """The prepare thread, the ring, the interpreter stage's routing and the outcomes queue."""

    def __init__(self, served: ServedModel, clock: Callable[[], float]) -> None:
        self._served = served
        self._clock = clock
        self.ring = TensorRing()
        self._outcomes: queue.Queue[list[Outcome]] = queue.Queue(OUTCOMES)
        self._taken: deque[Outcome] = deque()  # the rest of a burst the loop has begun
        self._prepare: threading.Thread | None = None
        self._prepare_stop = threading.Event()
        self._routed: Pipeline | None = None
        self._serving = threading.Event()
        self._serving.set()  # "the previous interpreter job is done": there was none
        self._draining = False
        self._abandoned = False
        self._busy_since: float | None = None

    # -- the loop thread ------------------------------------------------------------------------

    def open(self, source: InputSource, *, live: bool, min_period_s: float) -> None:
        """Start the prepare stage on ``source`` (the previous one must be closed)."""
        assert self._prepare is None, "close_source() first"
        self.ring.live = live
        self.ring.reopen()
        stop = self._prepare_stop = threading.Event()
        self._prepare = threading.Thread(
            target=self._prepare_loop,
            args=(source, stop, min_period_s),
            name="prepare",
            daemon=True,
        )
        self._prepare.start()

    def close_source(self, timeout: float = 5.0) -> None:
        """Stop the prepare stage (call after closing its source, which unblocks it)."""
        thread, self._prepare = self._prepare, None
        if thread is None:
            return
        self._prepare_stop.set()  # seen within a poll interval, also while waiting for a slot
        thread.join(timeout)

    def route(self) -> None:
        """Once per loop turn: the live pipeline's interpreter thread serves the ring."""
        pipeline = self._served.pipeline
        if pipeline is self._routed or self._draining:
            return
        self._routed = pipeline
        if pipeline is None:
            return
        previous, done = self._serving, threading.Event()
        self._serving = done
        try:
            pipeline.active.model.owner.submit(lambda: self._serve(pipeline, previous, done))
        except BackendError as exc:
            done.set()
            log.error("the live model's interpreter thread has stopped: %s", exc)

    def next(self, timeout: float) -> Outcome | None:
        if not self._taken:
            try:
                burst = self._outcomes.get(timeout=timeout) if timeout > 0 else (
                    self._outcomes.get_nowait())  # fmt: skip
            except queue.Empty:
                return None
            self._taken.extend(burst)
        return self._taken.popleft() if self._taken else None

    def busy_s(self, now: float) -> float:
        """How long the interpreter stage has been on its current item (0 when waiting)."""
        since = self._busy_since
        return 0.0 if since is None else max(0.0, now - since)

    def stop(self, deliver: Callable[[Outcome], None], timeout: float = 5.0) -> None:
        """Shut down in order: no new items, the ring drained through the interpreter, every
        outcome delivered (bounded by ``timeout``)."""
        self.close_source(timeout)
        self._draining = True
        self.ring.close()
        deadline = self._clock() + timeout
        while not self._serving.is_set() and self._clock() < deadline:
            outcome = self.next(POLL_S)
            if outcome is not None:
                deliver(outcome)
        if not self._serving.is_set():
            self._abandoned = True
            log.error("the interpreter stage did not finish within %.1f s", timeout)
        while (outcome := self.next(0)) is not None:
            deliver(outcome)

    # -- the prepare thread ---------------------------------------------------------------------

    def _prepare_loop(self, source: InputSource, stop: threading.Event, period: float) -> None:
        last = -1e9
        while not stop.is_set():
            pipeline = self._served.pipeline
            wait = period - (self._clock() - last)
            if pipeline is None or wait > 0:
                stop.wait(POLL_S if pipeline is None else min(wait, POLL_S))
                continue
            item = source.get(timeout=POLL_S)
            if item is None:
                if source.finished:  # a video that ended returns at once
                    stop.wait(POLL_S)
                continue
            last = self._clock()
            slot = self._acquire(stop)
            if slot is None:
                return
            slot.item = item
            if isinstance(item, Reading):
                slot.more = self._waiting(source)
            failure = self._fill(slot, pipeline) if self._staged(item, pipeline) else None
            if failure is not None:
                self.ring.release(slot)
                self._hand([Outcome(pipeline, item, failure=failure)], stop)
            else:
                self.ring.publish(slot)

    @staticmethod
    def _waiting(source: InputSource) -> list[Reading]:
        """The readings already waiting behind the one just taken (up to a burst). Audio blocks
        go one by one: audio rates do not need bursts, and bursts of blocks broke the PCM-FIFO
        agent test (tests/model/test_audio_agent.py) for a reason not yet found."""
        more: list[Reading] = []
        while len(more) < BURST - 1:
            item = source.get(timeout=0)
            if item is None:
                break
            assert isinstance(item, Reading)  # a source yields one kind of item
            more.append(item)
        return more

    def _acquire(self, stop: threading.Event) -> Slot | None:
        while not stop.is_set():
            slot = self.ring.acquire(POLL_S)
            if slot is not None:
                return slot
        return None

    # -- the interpreter stage (a job on the live model's own thread) ----------------------------

    def _serve(self, pipeline: Pipeline, previous: threading.Event, done: threading.Event) -> None:
        try:
            while not previous.wait(POLL_S):  # the model before hands over its last item first
                if not self._serves(pipeline):
                    return
            while self._serves(pipeline):
                slot = self.ring.take(0 if self._draining else POLL_S)
                if slot is None:
                    if self._draining:
                        return
                    continue
                self._busy_since = self._clock()
                try:
                    outcomes = self._run_slot(pipeline, slot)
                finally:
                    self._busy_since = None
                    self.ring.release(slot)
                if outcomes:
                    self._hand(outcomes, None)
        finally:
            done.set()

    def _serves(self, pipeline: Pipeline) -> bool:
        return self._served.pipeline is pipeline and (self._routed is pipeline or self._draining)

    def _run_slot(self, pipeline: Pipeline, slot: Slot) -> list[Outcome]:
        """The outcomes of the slot's item and of the burst behind it, in order."""
        outcomes = [self._run(pipeline, slot, slot.item)]
        outcomes += [self._run(pipeline, slot, item) for item in slot.more]
        return [o for o in outcomes if o is not None]

    def _run(self, pipeline: Pipeline, slot: Slot, item: Item | None) -> Outcome | None:
        assert item is not None
        try:
            if not self._staged(item, pipeline):
                result = pipeline.process(item)
                return None if result is None else Outcome(pipeline, item, result=result)
            if slot.prepared_for is not pipeline:
                if slot.prepared_for is not None:
                    self.ring.stale += 1
                failure = self._fill(slot, pipeline)
                if failure is not None:
                    return Outcome(pipeline, item, failure=failure)
            assert slot.buffer is not None
            outputs, invoke_s = pipeline.invoke_prepared(slot.buffer)
            raw = Raw(outputs, slot.geometry, slot.prepare_s, invoke_s)
            return Outcome(pipeline, item, raw=raw)
        except InputError as exc:
            return Outcome(pipeline, item, failure=("bad_input", exc))
        except BackendError as exc:
            return Outcome(pipeline, item, failure=("backend", exc))
        except Exception as exc:  # a bug must not end the interpreter stage
            log.exception("inference failed unexpectedly")
            return Outcome(pipeline, item, failure=("backend", BackendError(str(exc))))

    # -- both -----------------------------------------------------------------------------------

    @staticmethod
    def _staged(item: Item, pipeline: Pipeline) -> bool:
        return isinstance(item, Frame) and pipeline.staged

    def _fill(self, slot: Slot, pipeline: Pipeline) -> tuple[str, EdgeError] | None:
        """Pre-process the slot's frame with ``pipeline`` into the slot's buffer."""
        assert isinstance(slot.item, Frame)
        started = self._clock()
        spec = pipeline.input_spec
        buffer = slot.buffer_for(spec.shape, np.dtype(spec.dtype))
        try:
            slot.geometry = pipeline.prepare(slot.item.image, buffer)
        except InputError as exc:
            return ("bad_input", exc)
        slot.prepared_for = pipeline
        slot.prepare_s = self._clock() - started
        return None

    def _hand(self, outcomes: list[Outcome], stop: threading.Event | None) -> None:
        """To the loop; waits while the queue is full (back-pressure) unless stopping."""
        while True:
            try:
                self._outcomes.put(outcomes, timeout=POLL_S)
                return
            except queue.Full:
                if (stop is not None and stop.is_set()) or self._abandoned:
                    log.warning(
                        "shutting down: %d result(s) dropped (the loop is not taking them)",
                        len(outcomes),
                    )
                    return
