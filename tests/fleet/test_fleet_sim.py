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
    """At rate 0.5 the seeded draw fails dev-00002 and passes dev-00000 and dev-00001: each of
    those either installed and is rolled back, or was still fetching and cancels when the abort
    withdraws its desired command."""
    result = simulate(parse_args([*SMALL, "--canary", "3"]), 0.5, 2, 0)
    assert result["aborted"] is True
    assert result["reason"].startswith("canary failed: dev-00002 (rejected:canary_mismatch")
    assert len(result["stage_done_s"]) == 1
    assert result["rolled_back"] + result["withdrawn"] == 2
    assert result["still_installed"] == []
    assert result["installed"] == 0


def test_a_rollout_with_offline_devices_completes_on_the_online_ones() -> None:
    """dev-00002, -05 and -08 are offline all along: skipped, never failures."""
    result = simulate(
        parse_args([*SMALL, "--offline", "3", "--come-back", "100000", "--stage-timeout", "300"]),
        0.0,
        2,
        0,
    )
    assert result["decision"] == "done"
    assert result["skipped_offline"] == 3
    assert result["installed"] == 9
    assert result["view"]["complete"] is True


def test_devices_that_come_back_after_an_abort_install_nothing_of_the_aborted_release() -> None:
    """At rate 0.3 dev-00003 fails in batch 1 and aborts; dev-00002 and dev-00005 (batch 1)
    were offline with --offline wait, so they had a retained desired command until the abort
    withdrew it. Once back they still run release 1 and report no update."""
    args = [*SMALL, "--offline", "3", "--offline-policy", "wait", "--wait-offline", "600"]
    result = simulate(parse_args([*args, "--stage-timeout", "300"]), 0.3, 2, 0)
    assert result["aborted"] is True
    assert result["reason"].startswith("1 failure(s), more than --max-failures 0: dev-00003")
    assert result["came_back"] == dict.fromkeys(("dev-00002", "dev-00005", "dev-00008"), "1 -")
    assert result["still_installed"] == []


@pytest.mark.heavy
def test_10000_simulated_agents_with_offline_flapping_and_failing_ones_complete_the_rollout() -> (
    None
):
    """The full-size run (``make heavy``; figures in docs/fleet.md): 100 offline, 50 flapping,
    0.2 % failing their canary, a 1 MB model, canaries then two batches of 50 %."""
    args = ["--agents", "10000", "--workers", "4", "--model-mb", "1", "--canary", "10",
            "--batch", "50%", "--offline", "100", "--flapping", "50",
            "--stage-timeout", "1200"]  # fmt: skip
    result = simulate(parse_args(args), 0.002, 2, 100)
    assert result["view"]["complete"] is True
    assert result["decision"] == "done"
    assert result["skipped_offline"] == 100
    assert result["rejected"] == result["expected_failures"]
    assert result["installed"] == 10000 - 100 - result["expected_failures"]
