"""Re-probing the Edge TPU after a fallback to the CPU, off the service loop's thread.

When the delegate library or the device was missing at load, the model runs on the CPU and the
service asks :meth:`AcceleratorReprobe.poll` once per loop turn. When the jittered backoff
(:class:`~agent.runtime.ReprobeSchedule`) says so, one short-lived thread tries to load the
model with the delegate; the loop never waits for it. A still-missing library costs one failed
``dlopen`` (tens of microseconds, no interpreter built); a present one builds the accelerated
interpreter on that thread while the CPU model keeps serving, and the loop swaps to it on the
next turn. Failures grow the delay up to the schedule's cap: never a busy or crash loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from agent.errors import BackendError
from agent.runtime import LoadedModel, ReprobeSchedule, open_on_edgetpu

log = logging.getLogger(__name__)

Probe = Callable[[], LoadedModel]


class AcceleratorReprobe:
    """Schedules probes and hands a successfully accelerated model to the loop."""

    def __init__(self, probe: Probe, schedule: ReprobeSchedule, now: float) -> None:
        self._probe = probe
        self._schedule = schedule
        self._next = now + schedule.next_delay()
        self._outcome: queue.SimpleQueue[LoadedModel | BackendError] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.attempts = 0

    @classmethod
    def for_model(
        cls,
        model: bytes,
        *,
        backend: str,
        threads: int,
        schedule: ReprobeSchedule,
        now: float,
    ) -> AcceleratorReprobe:
        def probe() -> LoadedModel:
            return open_on_edgetpu(model, backend=backend, threads=threads)

        return cls(probe, schedule, now)

    def poll(self, now: float) -> LoadedModel | str | None:
        """Collect a finished probe -- the accelerated model, or why it failed (and the next
        probe is scheduled) -- or start one when it is due (then None)."""
        if self._thread is not None:
            if self._thread.is_alive():
                return None
            self._thread = None
            outcome = self._outcome.get_nowait()
            if isinstance(outcome, LoadedModel):
                return outcome
            self._next = now + self._schedule.next_delay()
            return str(outcome)
        if now >= self._next:
            self.attempts += 1
            self._thread = threading.Thread(target=self._run, name="edgetpu-probe", daemon=True)
            self._thread.start()
        return None

    def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for a running probe and release a model nobody will use."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        while not self._outcome.empty():
            outcome = self._outcome.get_nowait()
            if isinstance(outcome, LoadedModel):
                outcome.close()

    def _run(self) -> None:
        try:
            self._outcome.put(self._probe())
        except BackendError as exc:
            self._outcome.put(exc)
        except Exception as exc:  # a delegate failing in an unforeseen way must not kill us
            log.exception("Edge TPU probe failed unexpectedly")
            self._outcome.put(BackendError(f"Edge TPU probe failed: {exc}"))
