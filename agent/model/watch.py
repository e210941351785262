"""The watch window after a swap: is the new model behaving? Pure; the service feeds it.

Every inference after the swap is observed. The first NaN/Inf output means ``nan_output``;
``max_errors`` inference errors mean ``errors``; a p50 latency (once ``min_latency_samples``
results are in) above ``latency_factor`` x the old model's p50 means ``latency``. The window
passes once it has seen ``results`` results and lasted ``seconds``; with too few results it still
ends after ``10 x seconds`` so an idle source cannot hold the previous model loaded forever.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from agent.reasons import Reason

PASSED = "passed"
MIN_LATENCY_SAMPLES = 5
MAX_ERRORS = 3


@dataclass
class Watch:
    started: float
    results: int
    seconds: float
    baseline_p50_s: float | None
    latency_factor: float
    max_errors: int = MAX_ERRORS
    observed: int = 0
    errors: int = 0
    _latencies: list[float] = field(default_factory=list)

    def observe_result(self, total_s: float, finite: bool) -> str | None:
        """One result of the new model; a rollback reason or ``None``."""
        self.observed += 1
        if not finite:
            return Reason.NAN_OUTPUT
        self._latencies.append(total_s)
        if self.baseline_p50_s is not None and len(self._latencies) >= MIN_LATENCY_SAMPLES:
            p50 = statistics.median(self._latencies)
            if p50 > self.latency_factor * self.baseline_p50_s:
                return Reason.LATENCY
        return None

    def observe_error(self) -> str | None:
        """One failed inference (backend error) of the new model."""
        self.errors += 1
        return Reason.ERRORS if self.errors >= self.max_errors else None

    def done(self, now: float) -> bool:
        """Whether the window is over (the new model stays; the previous can be released)."""
        elapsed = now - self.started
        if elapsed >= 10 * self.seconds and elapsed > 0:
            return True
        return elapsed >= self.seconds and self.observed >= self.results

    @property
    def p50_s(self) -> float | None:
        return statistics.median(self._latencies) if self._latencies else None
