"""The fleet simulation itself, small: a rollout completes and the abort path rolls back."""

from __future__ import annotations

import pytest

from bench.fleet_sim import parse_args, simulate

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SMALL = ["--agents", "12", "--workers", "2", "--model-mb", "1", "--canary", "2", "--batch", "5"]


def test_a_rollout_reaches_every_simulated_agent_and_counts_the_injected_failures() -> None:
    result = simulate(parse_args([*SMALL, "--max-failures", "12"]), 0.2, 2, 12)
    assert result["devices_seen"] == 12
    assert result["decision"] == "done"
    assert result["rejected"] == result["expected_failures"]
    assert result["installed"] == 12 - result["expected_failures"]


def test_a_failing_canary_aborts_and_every_installed_canary_is_rolled_back() -> None:
    """At rate 0.5 the seeded draw fails dev-00002 and passes dev-00000 and dev-00001."""
    result = simulate(parse_args([*SMALL, "--canary", "3"]), 0.5, 2, 0)
    assert result["aborted"] is True
    assert result["reason"].startswith("canary failed: dev-00002 (rejected:canary_mismatch")
    assert len(result["stage_done_s"]) == 1
    assert result["rolled_back"] == 2
    assert result["still_installed"] == []
    assert result["installed"] == 0
