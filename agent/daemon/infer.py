"""The results stage, on the loop thread: one item's outcome from the interpreter stage
(:mod:`agent.daemon.stages`) to figures, health, the watch window, events and the outbox. Bad
input is counted, logged once per kind per minute and never stops the loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.daemon.metrics import RollingStats
from agent.daemon.results import Results
from agent.daemon.stages import Outcome
from agent.daemon.status import Health
from agent.daemon.systemd import Systemd
from agent.errors import BackendError, InputError
from agent.events.publisher import EventPublisher
from agent.model.active import ActiveModel
from agent.model.pipeline import InferenceResult
from agent.model.swap import ServedModel
from agent.mqtt.messages import MessageError
from agent.sources.audio import AudioBlock
from agent.sources.base import Frame, Reading
from agent.store.outbox import OutboxError
from agent.store.policy import PublishPolicy

log = logging.getLogger(__name__)


class InferenceStep:
    def __init__(
        self,
        model: ServedModel,
        results: Results,
        health: Health,
        stats: RollingStats,
        *,
        systemd: Systemd,
        policy: PublishPolicy,
        clock: Callable[[], float],
        on_first_result: Callable[[], None],
        events: EventPublisher | None = None,
    ) -> None:
        """``on_first_result``: called on the first finite result before ``READY=1`` was sent;
        ``events`` sees every result, before the publish policy."""
        self.model = model
        self.results = results
        self.health = health
        self.stats = stats
        self.systemd = systemd
        self.policy = policy
        self.clock = clock
        self._on_first_result = on_first_result
        self.events = events

    def __call__(self, item: Frame | Reading | AudioBlock) -> None:
        """Run ``item`` through the live pipeline here (its invokes run on the model's own
        thread), then as :meth:`deliver`."""
        pipeline = self.model.pipeline
        assert pipeline is not None
        try:
            outcome = Outcome(pipeline, item, result=pipeline.process(item))
        except InputError as exc:
            outcome = Outcome(pipeline, item, failure=("bad_input", exc))
        except BackendError as exc:
            outcome = Outcome(pipeline, item, failure=("backend", exc))
        self.deliver(outcome)

    def deliver(self, outcome: Outcome) -> None:
        """One outcome: post-process it (a staged frame), count it, judge it, publish it.

        Only the live model's results feed its watch window; a model swapped out still has its
        item in flight published (no sequence gap), unless the watch window rejected it."""
        live = outcome.pipeline is self.model.pipeline
        result = self._result(outcome, live)
        active = outcome.pipeline.active
        if result is None or (not live and active is self.model.rejected):
            return
        now = self.clock()
        self.systemd.inferred(now)
        if not self.systemd.ready_sent and result.finite:
            self._on_first_result()
        self.stats.add(result.total_s, now)
        if not result.finite:
            self.bad("non_finite_output", InputError("model produced NaN or Inf"))
        if live and self.model.observe_result(result.total_s, result.finite):
            return  # the result came from the model just rolled back; it is not published
        if self.events is not None:
            self.events.on_result(result, now, active, getattr(outcome.item, "image", None))
        if self.policy.admit(result.summary, now):
            self._enqueue(result, now, active)

    def _result(self, outcome: Outcome, live: bool) -> InferenceResult | None:
        """The outcome's result; a failure counted (a backend one judged by the watch window)."""
        if outcome.failure is not None:
            kind, exc = outcome.failure
            self.bad(kind, exc)
            if kind == "backend" and live:
                self.model.observe_error()
            return None
        try:
            return outcome.finish()
        except InputError as exc:
            self.bad("bad_input", exc)
            return None

    def _enqueue(self, result: InferenceResult, now: float, active: ActiveModel) -> None:
        if result.truncated:
            self.bad("result_truncated", InputError("result cut to fit the size limit"))
        try:
            self.results.enqueue(result, now, active)
        except OutboxError as exc:
            self.bad("outbox_write", exc)
        except MessageError as exc:  # never fatal: the pipeline fits bodies, this is a backstop
            self.bad("result_too_large", exc)

    def bad(self, kind: str, exc: Exception) -> None:
        if self.health.errors.record(kind, self.clock()):
            log.warning("%s: %s (logged once per minute per kind)", kind, exc)
        self.health.fail(kind, str(exc))
