"""Publish policy (pure): which results go out, given the config and what went out before.

* ``every``      -- every result;
* ``on_change``  -- only when the top-1 label (or detected label set) differs from the last
  published result;
* ``threshold``  -- only when the top score is at least ``threshold``;

and in all cases at most one result per ``min_interval_s`` (a rate limit). Suppressed results are
counted so status can say how many were held back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config import OutputConfig


@dataclass(frozen=True)
class Summary:
    """What the policy needs to know about one result."""

    key: str | None
    score: float | None


@dataclass
class PublishPolicy:
    config: OutputConfig
    suppressed: int = 0
    _last_key: str | None = field(default=None, init=False)
    _last_time: float | None = field(default=None, init=False)

    def admit(self, summary: Summary, now: float) -> bool:
        """True when this result should be published; records it as published if so."""
        if not self._wanted(summary) or self._rate_limited(now):
            self.suppressed += 1
            return False
        self._last_key = summary.key
        self._last_time = now
        return True

    def _wanted(self, summary: Summary) -> bool:
        policy = self.config.policy
        if policy == "every":
            return True
        if policy == "on_change":
            return self._last_time is None or summary.key != self._last_key
        return summary.score is not None and summary.score >= self.config.threshold

    def _rate_limited(self, now: float) -> bool:
        interval = self.config.min_interval_s
        return interval > 0 and self._last_time is not None and now - self._last_time < interval
