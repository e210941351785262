"""The Home Assistant result state changes at most once per interval, with a heartbeat."""

from __future__ import annotations

import itertools

from agent.hass.throttle import StateThrottle


def _publish(throttle: StateThrottle, now: float) -> bytes | None:
    payload = throttle.due(now)
    if payload is not None:
        throttle.sent(payload, now)
    return payload


def test_results_faster_than_the_interval_publish_the_newest_once_per_interval() -> None:
    throttle = StateThrottle(min_interval_s=1.0, heartbeat_s=30.0)
    published = []
    for tick in range(100):  # 10 results per second for 10 s
        now = tick / 10
        throttle.offer(f"r{tick}".encode())
        payload = _publish(throttle, now)
        if payload is not None:
            published.append((now, payload))
    assert [p for _, p in published] == [f"r{t}".encode() for t in range(0, 100, 10)]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(published)]
    assert min(gaps) >= 1.0 - 1e-9
    assert throttle.suppressed == 89  # r99 is still pending: it goes out at 10.0 s
    assert _publish(throttle, 10.0) == b"r99"


def test_the_last_result_is_not_lost_when_results_stop() -> None:
    throttle = StateThrottle(min_interval_s=1.0, heartbeat_s=30.0)
    throttle.offer(b"a")
    assert _publish(throttle, 0.0) == b"a"
    throttle.offer(b"b")
    assert _publish(throttle, 0.5) is None
    assert _publish(throttle, 1.0) == b"b"


def test_an_unchanged_state_is_repeated_only_as_a_heartbeat() -> None:
    throttle = StateThrottle(min_interval_s=1.0, heartbeat_s=30.0)
    throttle.offer(b"same")
    assert _publish(throttle, 0.0) == b"same"
    throttle.offer(b"same")
    assert _publish(throttle, 5.0) is None
    assert _publish(throttle, 29.0) is None
    assert _publish(throttle, 30.0) == b"same"
    assert _publish(throttle, 31.0) is None


def test_nothing_before_the_first_result() -> None:
    assert StateThrottle(1.0, 30.0).due(100.0) is None
