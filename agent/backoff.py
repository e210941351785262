"""Exponential backoff with "equal jitter", shared by every retry loop in the agent.

Delay ``n`` is uniform in ``[c/2, c]`` with ``c = min(max_delay, base * factor**n)``: never zero,
so a peer that refuses again and again is not hammered, and the jitter spreads a fleet's retries
after an outage. Pure: it computes delays; the caller waits. ``reset()`` after a success.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.max_delay or self.factor < 1:
            raise ValueError("backoff needs 0 < base <= max_delay and factor >= 1")

    def next_delay(self) -> float:
        ceiling = min(self.max_delay, self.base * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return self.rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        self.attempts = 0
