"""The one backoff every retry loop uses (MQTT reconnect, sources, Edge TPU re-probe)."""

from __future__ import annotations

import random

import pytest

from agent.backoff import Backoff
from agent.mqtt.policy import Backoff as MqttBackoff
from agent.runtime import ReprobeSchedule


def test_delays_follow_the_equal_jitter_ceilings() -> None:
    backoff = Backoff(base=1.0, factor=3.0, max_delay=10.0, rng=random.Random(3))
    for ceiling in (1.0, 3.0, 9.0, 10.0, 10.0):
        assert ceiling / 2 <= backoff.next_delay() <= ceiling


@pytest.mark.parametrize(
    ("base", "max_delay", "factor"), [(0.0, 1.0, 2.0), (2.0, 1.0, 2.0), (1.0, 2.0, 0.5)]
)
def test_impossible_bounds_are_refused(base: float, max_delay: float, factor: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base=base, max_delay=max_delay, factor=factor)


def test_the_three_retry_loops_share_it() -> None:
    assert isinstance(MqttBackoff(0.5, 30.0), Backoff)
    assert isinstance(ReprobeSchedule(), Backoff)
    assert (ReprobeSchedule().base, ReprobeSchedule().max_delay) == (5.0, 600.0)
