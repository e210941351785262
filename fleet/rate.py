"""A rollout's rate: how many more devices a stage may notify now. Pure (the clock is passed in).

Modelled on AWS IoT Jobs' ``jobExecutionsRolloutConfig``: ``maximumPerMinute`` caps the rate
(alone: a constant rate); an ``exponentialRate`` starts at ``baseRatePerMinute`` and multiplies
it by ``incrementFactor`` each time ``rateIncreaseCriteria`` more devices were notified
(``numberOfNotifiedThings``) or succeeded (``numberOfSucceededThings``) since the last increase,
never above the maximum. Devices are released from a credit that grows at the rate and holds at
most one second's worth (at least one device), so a rollout resumed after hours does not burst.
The state is plain data, saved with the rollout, so a resumed rollout keeps its rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.errors import ConfigError

CRITERIA = ("notified", "succeeded")


@dataclass(frozen=True)
class RateConfig:
    max_per_minute: float | None = None
    base_per_minute: float | None = None  # set: exponential
    increment_factor: float = 2.0
    increase_every: int = 0  # devices notified/succeeded since the last increase
    increase_on: str = "notified"

    def __post_init__(self) -> None:
        if self.max_per_minute is not None and self.max_per_minute <= 0:
            raise ConfigError("--max-per-minute", "must be above 0")
        if self.increase_on not in CRITERIA:
            raise ConfigError("--increase-on", f"must be one of {', '.join(CRITERIA)}")
        if self.base_per_minute is None:
            return
        if self.base_per_minute <= 0:
            raise ConfigError("--base-per-minute", "must be above 0")
        if self.max_per_minute is not None and self.base_per_minute > self.max_per_minute:
            raise ConfigError("--base-per-minute", "must not exceed --max-per-minute")
        if self.increment_factor <= 1:
            raise ConfigError("--increment-factor", "must be above 1")
        if self.increase_every < 1:
            raise ConfigError("--increase-after", "an exponential rate needs at least 1")

    @property
    def limited(self) -> bool:
        return self.max_per_minute is not None or self.base_per_minute is not None

    def describe(self) -> str:
        if self.base_per_minute is None:
            return "unlimited" if self.max_per_minute is None else f"{self.max_per_minute:g}/min"
        cap = "" if self.max_per_minute is None else f", at most {self.max_per_minute:g}/min"
        return (
            f"from {self.base_per_minute:g}/min x{self.increment_factor:g} every "
            f"{self.increase_every} {self.increase_on}{cap}"
        )


@dataclass(frozen=True)
class RateState:
    per_minute: float = 0.0  # the rate now (0 until started)
    credit: float = 1.0  # devices that may be notified now
    at: float | None = None  # when credit was last updated (wall clock, survives a restart)
    mark: int = 0  # the criterion's count at the last increase


def start(config: RateConfig) -> RateState:
    rate = config.base_per_minute or config.max_per_minute or 0.0
    return RateState(per_minute=rate)


def take(
    config: RateConfig,
    state: RateState,
    now: float,
    wanted: int,
    *,
    notified: int,
    succeeded: int,
) -> tuple[int, RateState]:
    """``(n, state)``: notify ``n`` (at most ``wanted``) devices now; ``notified`` and
    ``succeeded`` count the whole rollout so far (they drive an exponential rate)."""
    if not config.limited:
        return wanted, state
    if state.per_minute <= 0:
        state = replace(start(config), credit=state.credit, at=state.at, mark=state.mark)
    state = _increased(config, state, notified if config.increase_on == "notified" else succeeded)
    elapsed = 0.0 if state.at is None else max(0.0, now - state.at)
    cap = max(1.0, state.per_minute / 60.0)
    credit = min(cap, state.credit + state.per_minute * elapsed / 60.0)
    n = max(0, min(wanted, int(credit)))
    return n, replace(state, credit=credit - n, at=now)


def _increased(config: RateConfig, state: RateState, count: int) -> RateState:
    if config.base_per_minute is None:
        return state
    rate, mark = state.per_minute, state.mark
    ceiling = config.max_per_minute if config.max_per_minute is not None else float("inf")
    while count - mark >= config.increase_every and rate < ceiling:
        rate = min(ceiling, rate * config.increment_factor)
        mark += config.increase_every
    return replace(state, per_minute=rate, mark=mark)
