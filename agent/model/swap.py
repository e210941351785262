"""The model being served: the live model and pipeline, and the swap between two inferences.

:class:`ServedModel` belongs to the service loop, which decides what is live; every model runs
on its own interpreter thread (:mod:`agent.runtime.worker`), which the service's stages route
frames to (:mod:`agent.daemon.stages`). Another thread (the updater) asks for a new model off the
loop -- :meth:`ServedModel.load` builds the interpreter on the model's own new thread, and its
pipeline tables -- and hands it over with :meth:`ServedModel.offer`; the loop puts it live in
:meth:`ServedModel.pump`, between two inferences (pointers only). After an
install the previous model stays loaded for a watch window (:mod:`agent.model.watch`): the first
failure swaps it back at once, and the :class:`SwapFeedback` (the updater) makes that permanent.
After a fallback to the CPU the Edge TPU is re-probed with backoff (off the loop thread) and the
same release moves onto it when it appears.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from agent.bundle import DecryptedBundle
from agent.config import AgentConfig
from agent.model.active import ActiveModel, load_bundle
from agent.model.pipeline import Pipeline
from agent.model.watch import Watch
from agent.runtime import LoadedModel, ReprobeSchedule
from agent.runtime.reprobe import AcceleratorReprobe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swap:
    """A model loaded off the loop thread, for the loop to put live between two inferences.

    ``watch``: start a watch window (an install), or not (a rollback).
    """

    active: ActiveModel
    pipeline: Pipeline
    kind: str
    bundle: str | None
    watch: bool


class SwapFeedback(Protocol):
    """Who hears what the loop did with a swap (the updater, which owns the slots)."""

    def retire(self, model: ActiveModel) -> None:
        """Close a model the loop no longer uses (off the loop; each interpreter is released on
        its own thread in any case)."""
        ...

    def watch_failed(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        """The loop swapped back to the previous model; make that permanent."""
        ...


@dataclass(frozen=True)
class _Held:
    """The model before the swap, kept loaded while the watch window runs."""

    active: ActiveModel
    pipeline: Pipeline
    bundle: str | None


class ServedModel:
    """The live model + pipeline; the held previous one during a watch window."""

    def __init__(self, config: AgentConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.active: ActiveModel | None = None
        self.pipeline: Pipeline | None = None
        self.feedback: SwapFeedback | None = None
        self.watch: Watch | None = None
        self._held: _Held | None = None
        #: The model the watch window just rolled back (its late results are not published).
        self.rejected: ActiveModel | None = None
        self._offered: queue.Queue[Swap] = queue.Queue()
        self._reprobe: AcceleratorReprobe | None = None
        self._reprobe_for: ActiveModel | None = None

    # -- any thread -----------------------------------------------------------------------------

    def make_pipeline(self, active: ActiveModel) -> Pipeline:
        pipeline = Pipeline(active, self.config.output, self.clock)
        pipeline.configure_window(self.config.source.hop)
        pipeline.configure_audio(self.config.source.window_s, self.config.source.hop_s)
        return pipeline

    def load(self, bundle: DecryptedBundle) -> tuple[ActiveModel, Pipeline]:
        """Runs on the updater thread: the tables are built here, off the loop; the interpreter
        on the model's own new thread (:func:`~agent.model.active.load_bundle`)."""
        active = load_bundle(bundle, self.config)
        return active, self.make_pipeline(active)

    def offer(self, swap: Swap) -> None:
        """Hand a loaded model to the loop, which puts it live on its next turn."""
        self._offered.put(swap)

    # -- the loop thread ------------------------------------------------------------------------

    def serve(self, active: ActiveModel) -> None:
        """Serve ``active`` (a start or a config reload), closing the model it replaces."""
        if self.active is not None:
            self.active.close()
        self.active = active
        self.pipeline = self.make_pipeline(active)

    def reconfigure(self, config: AgentConfig) -> None:
        """Apply new output and window settings to the live model's pipeline."""
        self.config = config
        if self.active is not None and self.pipeline is not None:
            self.pipeline = self.make_pipeline(self.active)

    def pump(self, baseline_p50_ms: float | None) -> Swap | None:
        """Once per loop turn: put an offered model live (returned), or end a watch window."""
        try:
            swap = self._offered.get_nowait()
        except queue.Empty:
            swap = None
        if swap is not None:
            self._swap_in(swap, baseline_p50_ms)
            return swap
        if self.watch is not None and self.watch.done(self.clock()):
            self._release_held()
            self.watch = None
            log.info("watch window passed; the previous model is released")
        return None

    def observe_result(self, total_s: float, finite: bool) -> bool:
        """One result of the live model; whether it failed its watch window (rolled back)."""
        if self.watch is None:
            return False
        return self._judge(self.watch.observe_result(total_s, finite))

    def observe_error(self) -> bool:
        """One failed inference of the live model; whether it was rolled back."""
        if self.watch is None:
            return False
        return self._judge(self.watch.observe_error())

    def poll_accelerator(self) -> str | bool:
        """After a fallback to CPU, re-probe the Edge TPU; ``True`` once the model moved onto it,
        the reason it is still unavailable, or ``False`` (nothing new)."""
        if self.active is not self._reprobe_for:  # a load, an update or a rollback swapped it
            self._watch_accelerator(self.active)
        if self._reprobe is None:
            return False
        outcome = self._reprobe.poll(self.clock())
        if isinstance(outcome, str):
            return outcome
        if outcome is None:
            return False
        self._accelerate(outcome)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Close the live and the held model and wait (bounded) for their threads to end."""
        self._stop_reprobe()
        held = self._held.active if self._held is not None else None
        models = [m for m in (self.active, held) if m is not None]
        for model in models:
            model.close()
        for model in models:
            for loaded in (*model.stages, model.model):
                loaded.owner.join(timeout)

    def _swap_in(self, swap: Swap, baseline_p50_ms: float | None) -> None:
        """Between two inferences: the next frame goes to the new model (pointers only)."""
        old_active, old_pipeline = self.active, self.pipeline
        self.active, self.pipeline = swap.active, swap.pipeline
        self._release_held()
        self.watch = None
        if swap.watch and old_active is not None and old_pipeline is not None:
            update = self.config.update
            self.watch = Watch(
                self.clock(),
                update.watch_results,
                update.watch_s,
                None if baseline_p50_ms is None else baseline_p50_ms / 1000.0,
                update.latency_budget_factor,
            )
            self._held = _Held(old_active, old_pipeline, swap.bundle)
        elif old_active is not None:
            self._retire(old_active)
        log.info("now serving %s version %s (%s)", swap.active.name, swap.active.version, swap.kind)

    def _judge(self, verdict: str | None) -> bool:
        """Roll back at once when the watch window saw a failure; whether it did."""
        if verdict is None or self._held is None or self.feedback is None:
            return False
        failed = self.active
        held, self._held = self._held, None
        self.active, self.pipeline = held.active, held.pipeline
        self.watch = None
        assert failed is not None
        self.rejected = failed  # what it still has in flight is not published
        log.warning("new model failed its watch window (%s); rolled back", verdict)
        self.feedback.watch_failed(held.bundle, verdict, failed)
        return True

    def _release_held(self) -> None:
        if self._held is not None:
            self._retire(self._held.active)
            self._held = None

    def _retire(self, model: ActiveModel) -> None:
        if self.feedback is not None:
            self.feedback.retire(model)
        else:
            model.close()

    def _watch_accelerator(self, active: ActiveModel | None) -> None:
        self._stop_reprobe()
        self._reprobe_for = active
        if active is None or active.accelerated is None:
            return
        settings = self.config.model
        self._reprobe = AcceleratorReprobe.for_model(
            active.accelerated,
            backend=settings.backend,
            threads=active.model.threads,
            schedule=ReprobeSchedule(base=settings.reprobe_min_s, max_delay=settings.reprobe_max_s),
            now=self.clock(),
        )

    def _accelerate(self, model: LoadedModel) -> None:
        """Serve the same release on the accelerator that has just appeared."""
        assert self.active is not None
        old = self.active
        self._reprobe = None
        self.active = self._reprobe_for = replace(old, model=model, accelerated=None)
        self.pipeline = self.make_pipeline(self.active)
        old.model.close()
        log.info("Edge TPU available: %s version %s now runs on it", old.name, old.version)

    def _stop_reprobe(self) -> None:
        if self._reprobe is not None:
            self._reprobe.close()
            self._reprobe = None
