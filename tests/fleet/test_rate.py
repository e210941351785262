"""The rollout rate (fleet.rate) on a fake clock: constant, exponential, resumed, and the
decision that waits for devices the rate has not released yet."""

from __future__ import annotations

import pytest

from agent.errors import ConfigError
from fleet.rate import RateConfig, RateState, start, take
from fleet.rollout import Action, DeviceOutcome, Outcome, plan_rollout
from fleet.rollout import decide as decide_stage
from fleet.rollout_state import RolloutOptions, RolloutState, status_lines


def released_per_second(
    config: RateConfig, seconds: int, *, succeeded_too: bool = False
) -> list[int]:
    """Devices released in each second of a stage with plenty waiting (ticks of 0.25 s)."""
    state, notified, per_second = start(config), 0, []
    for second in range(seconds):
        count = 0
        for tick in range(4):
            now = 1000.0 + second + tick * 0.25
            n, state = take(config, state, now, 10_000, notified=notified,
                            succeeded=notified if succeeded_too else 0)  # fmt: skip
            notified += n
            count += n
        per_second.append(count)
    return per_second


def test_without_a_rate_every_device_is_released_at_once() -> None:
    assert take(RateConfig(), RateState(), 0.0, 500, notified=0, succeeded=0)[0] == 500


def test_a_constant_rate_releases_max_per_minute_evenly() -> None:
    per_second = released_per_second(RateConfig(max_per_minute=120), 60)
    assert per_second[0] == 2  # one at once, then two a second
    assert sum(per_second) in (120, 121)
    assert set(per_second[1:]) == {2}


def test_a_slow_rate_releases_one_device_every_few_seconds() -> None:
    assert released_per_second(RateConfig(max_per_minute=12), 15) == [1, 0, 0, 0, 0] * 3


def test_an_exponential_rate_multiplies_after_each_criterion_count_up_to_the_maximum() -> None:
    config = RateConfig(
        max_per_minute=480, base_per_minute=60, increment_factor=2.0, increase_every=10
    )
    state = start(config)
    _, state = take(config, state, 0.0, 1, notified=9, succeeded=0)
    assert state.per_minute == 60
    _, state = take(config, state, 1.0, 1, notified=10, succeeded=0)
    assert (state.per_minute, state.mark) == (120, 10)
    _, state = take(config, state, 2.0, 1, notified=35, succeeded=0)  # 20 and 30 passed
    assert (state.per_minute, state.mark) == (480, 30)
    _, state = take(config, state, 3.0, 1, notified=1000, succeeded=0)
    assert state.per_minute == 480  # never above the maximum


def test_an_exponential_rate_on_succeeded_devices_ignores_devices_only_notified() -> None:
    config = RateConfig(base_per_minute=60, increase_every=5, increase_on="succeeded")
    _, state = take(config, start(config), 0.0, 1, notified=500, succeeded=4)
    assert state.per_minute == 60
    _, state = take(config, state, 1.0, 1, notified=500, succeeded=5)
    assert state.per_minute == 120


def test_a_rollout_resumed_hours_later_does_not_burst() -> None:
    config = RateConfig(max_per_minute=600)
    _, state = take(config, start(config), 0.0, 10_000, notified=0, succeeded=0)
    saved = RateState(**vars(state))  # what the state file keeps
    count, _ = take(config, saved, 7200.0, 10_000, notified=1, succeeded=0)
    assert count == 10  # one second's worth


@pytest.mark.parametrize(
    ("fields", "flag"),
    [
        ({"max_per_minute": 0}, "--max-per-minute"),
        ({"base_per_minute": 100, "max_per_minute": 50}, "--base-per-minute"),
        (
            {"base_per_minute": 10, "increase_every": 5, "increment_factor": 1.0},
            "--increment-factor",
        ),
        ({"base_per_minute": 10}, "--increase-after"),
        ({"increase_on": "installed"}, "--increase-on"),
    ],
)
def test_a_rate_that_cannot_work_is_refused_by_its_flag(
    fields: dict[str, object], flag: str
) -> None:
    with pytest.raises(ConfigError, match=flag):
        RateConfig(**fields)  # type: ignore[arg-type]


def test_a_stage_waits_for_devices_the_rate_has_not_released_and_never_times_them_out() -> None:
    plan = plan_rollout([f"d{i}" for i in range(5)], canary=1, batch=4)
    done = {"d0": DeviceOutcome(Outcome.INSTALLED), "d1": DeviceOutcome(Outcome.INSTALLED)}
    waiting = decide_stage(plan, 1, done, stage_elapsed_s=10_000, stage_timeout_s=60,
                           unsent={"d2", "d3", "d4"})  # fmt: skip
    assert (waiting.action, waiting.timed_out) == (Action.WAIT, ())
    late = decide_stage(plan, 1, done, stage_elapsed_s=10_000, stage_timeout_s=60,
                        unsent={"d3", "d4"})  # fmt: skip
    assert late.timed_out == ("d2",)


def test_the_rate_and_its_progress_are_saved_with_the_rollout_and_shown() -> None:
    rate = RateConfig(max_per_minute=300, base_per_minute=30, increase_every=20)
    state = RolloutState("r", "b.edgepkg", "ab" * 16, "lab", [("canary", ["d0"])],
                         RolloutOptions(rate=rate), sent=["d0"])  # fmt: skip
    state.rate = RateState(per_minute=60.0, credit=0.5, at=12.0, mark=20)
    again = RolloutState.from_json(state.to_json(), "r.json")
    assert (again.options.rate, again.rate) == (rate, state.rate)
    assert (
        "rate      from 30/min x2 every 20 notified, at most 300/min; now 60/min; 1 notified"
        in (status_lines(again))
    )
