"""The watch window after a swap: NaN, errors, latency regression, and when it ends."""

from __future__ import annotations

from agent.model.watch import Watch


def _watch(baseline: float | None = 0.010) -> Watch:
    return Watch(started=100.0, results=5, seconds=2.0, baseline_p50_s=baseline, latency_factor=3)


def test_a_nan_output_fails_the_window_at_once() -> None:
    watch = _watch()
    assert watch.observe_result(0.01, finite=True) is None
    assert watch.observe_result(0.01, finite=False) == "nan_output"


def test_three_inference_errors_fail_the_window() -> None:
    watch = _watch()
    assert watch.observe_error() is None
    assert watch.observe_error() is None
    assert watch.observe_error() == "errors"


def test_a_p50_latency_above_the_budget_fails_once_enough_samples_are_in() -> None:
    watch = _watch(baseline=0.010)
    verdicts = [watch.observe_result(0.050, finite=True) for _ in range(5)]
    assert verdicts == [None, None, None, None, "latency"]


def test_without_a_baseline_latency_is_not_judged() -> None:
    watch = _watch(baseline=None)
    assert all(watch.observe_result(1.0, finite=True) is None for _ in range(10))


def test_the_window_ends_after_enough_results_and_enough_time() -> None:
    watch = _watch()
    for _ in range(5):
        watch.observe_result(0.01, finite=True)
    assert not watch.done(101.0)
    assert watch.done(102.0)


def test_an_idle_window_still_ends_after_ten_times_its_length() -> None:
    watch = _watch()
    assert not watch.done(110.0)
    assert watch.done(120.0)
