"""Which results are published: every, on change, above a threshold, with a rate limit."""

from __future__ import annotations

from agent.config import OutputConfig
from agent.store.policy import PublishPolicy, Summary


def _run(policy: PublishPolicy, items: list[tuple[str, float, float]]) -> list[bool]:
    return [policy.admit(Summary(key, score), now) for key, score, now in items]


def test_every_publishes_everything() -> None:
    policy = PublishPolicy(OutputConfig(policy="every"))
    assert _run(policy, [("a", 0.1, 0.0), ("a", 0.1, 0.0)]) == [True, True]


def test_on_change_publishes_first_and_each_change_only() -> None:
    policy = PublishPolicy(OutputConfig(policy="on_change"))
    items = [("3", 0.9, 0.0), ("3", 0.8, 1.0), ("7", 0.9, 2.0), ("7", 0.9, 3.0), ("3", 0.5, 4.0)]
    assert _run(policy, items) == [True, False, True, False, True]
    assert policy.suppressed == 2


def test_threshold_publishes_confident_results_only() -> None:
    policy = PublishPolicy(OutputConfig(policy="threshold", threshold=0.6))
    assert _run(policy, [("a", 0.59, 0.0), ("a", 0.6, 1.0), ("b", 0.0, 2.0)]) == [
        False,
        True,
        False,
    ]


def test_rate_limit_holds_back_results_inside_the_interval() -> None:
    policy = PublishPolicy(OutputConfig(policy="every", min_interval_s=1.0))
    items = [("a", 1.0, 0.0), ("a", 1.0, 0.5), ("a", 1.0, 1.0), ("a", 1.0, 1.9), ("a", 1.0, 2.1)]
    assert _run(policy, items) == [True, False, True, False, True]


def test_on_change_suppressed_by_rate_limit_is_published_when_it_still_differs() -> None:
    policy = PublishPolicy(OutputConfig(policy="on_change", min_interval_s=1.0))
    assert _run(policy, [("a", 1.0, 0.0), ("b", 1.0, 0.5), ("b", 1.0, 1.5)]) == [True, False, True]
