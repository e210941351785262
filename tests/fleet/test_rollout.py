"""Staged rollout planning and decisions: pure, given device outcomes and elapsed time."""

from __future__ import annotations

import pytest

from agent.errors import InputError
from fleet.rollout import (
    AbortConfig,
    Action,
    Decision,
    DeviceOutcome,
    Outcome,
    Stage,
    batch_sizes,
    decide,
    parse_count,
    plan_rollout,
)

OK = DeviceOutcome(Outcome.INSTALLED)


def failed(reason: str) -> DeviceOutcome:
    return DeviceOutcome(Outcome.FAILED, reason)


DEVICES = [f"d{i:02d}" for i in range(7)]


def test_plan_puts_canaries_first_then_batches_of_the_rest_in_sorted_order() -> None:
    plan = plan_rollout(list(reversed(DEVICES)), canary=2, batch=3, max_failures=1)
    assert plan.stages == (
        Stage("canary", ("d00", "d01")),
        Stage("batch 1", ("d02", "d03", "d04")),
        Stage("batch 2", ("d05", "d06")),
    )
    assert plan.devices == tuple(DEVICES)


def test_plan_with_more_canaries_than_devices_is_one_stage() -> None:
    plan = plan_rollout(["b", "a", "a"], canary=5, batch=1, max_failures=0)
    assert plan.stages == (Stage("canary", ("a", "b")),)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary": 0, "batch": 1, "max_failures": 0}, "--canary"),
        ({"canary": 1, "batch": 0, "max_failures": 0}, "--batch"),
        ({"canary": 1, "batch": 1, "max_failures": -1}, "--max-failures"),
    ],
)
def test_plan_rejects_nonsense_sizes(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        plan_rollout(DEVICES, **kwargs)


def test_plan_of_an_empty_group_names_the_cause() -> None:
    with pytest.raises(InputError, match="no devices"):
        plan_rollout([], canary=1, batch=1, max_failures=0)


def _decide(outcomes: dict[str, DeviceOutcome], stage: int, elapsed: float = 1.0) -> Decision:
    plan = plan_rollout(DEVICES, canary=2, batch=3, max_failures=1)
    return decide(plan, stage, outcomes, stage_elapsed_s=elapsed, stage_timeout_s=60.0)


def test_canary_stage_waits_while_a_canary_is_pending() -> None:
    decision = _decide({"d00": OK}, 0)
    assert decision.action is Action.WAIT


def test_canary_stage_moves_on_when_all_canaries_installed() -> None:
    decision = _decide({"d00": OK, "d01": OK}, 0)
    assert decision.action is Action.NEXT_STAGE


def test_one_failing_canary_aborts_even_below_max_failures_and_rolls_back_installed() -> None:
    plan = plan_rollout(DEVICES, canary=2, batch=3, max_failures=3)
    decision = decide(
        plan,
        0,
        {"d00": OK, "d01": failed("rejected:canary_mismatch")},
        stage_elapsed_s=1.0,
        stage_timeout_s=60.0,
    )
    assert decision.action is Action.ABORT
    assert decision.roll_back == ("d00",)
    assert decision.reason == "canary failed: d01 (rejected:canary_mismatch)"


def test_a_failing_canary_aborts_without_waiting_for_the_other_canaries() -> None:
    decision = _decide({"d01": failed("rolled_back:nan_outputs")}, 0)
    assert decision.action is Action.ABORT
    assert decision.roll_back == ()


def test_batch_failures_up_to_the_limit_continue() -> None:
    outcomes = {"d00": OK, "d01": OK, "d02": failed("rejected:no_space"), "d03": OK, "d04": OK}
    decision = _decide(outcomes, 1)
    assert decision.action is Action.NEXT_STAGE


def test_batch_failures_above_the_limit_abort_and_roll_back_every_installed_device() -> None:
    outcomes = {
        "d00": OK,
        "d01": OK,
        "d02": failed("rejected:no_space"),
        "d03": failed("rolled_back:latency"),
    }
    decision = _decide(outcomes, 1)
    assert decision.action is Action.ABORT
    assert decision.roll_back == ("d00", "d01")
    assert decision.reason == (
        "2 failure(s), more than --max-failures 1: d02 (rejected:no_space), "
        "d03 (rolled_back:latency)"
    )


def test_devices_silent_past_the_stage_timeout_count_as_failures() -> None:
    decision = _decide({"d00": OK}, 0, elapsed=60.0)
    assert decision.action is Action.ABORT
    assert decision.timed_out == ("d01",)
    assert "d01 (no result before the stage timeout)" in decision.reason


def test_last_stage_complete_is_done() -> None:
    outcomes = dict.fromkeys(DEVICES, OK)
    decision = _decide(outcomes, 2)
    assert decision.action is Action.DONE


SKIP = DeviceOutcome(Outcome.SKIPPED, "offline")


def test_batches_by_percentage_of_the_group() -> None:
    devices = [f"d{i:03d}" for i in range(100)]
    plan = plan_rollout(devices, canary="2%", batch="25%", max_failures=0)
    assert [len(s.devices) for s in plan.stages] == [2, 25, 25, 25, 23]


def test_exponential_growth_doubles_each_batch_until_the_group_is_used_up() -> None:
    assert batch_sizes(100, 5, 2.0) == [5, 10, 20, 40, 25]
    assert batch_sizes(7, 3, 1.0) == [3, 3, 1]


@pytest.mark.parametrize("text", ["0", "-1", "0%", "150%", "ten", "5.5"])
def test_counts_that_are_neither_positive_counts_nor_percentages_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--batch"):
        parse_count(text, 100, "--batch")


def test_an_offline_device_is_not_a_failure_and_does_not_hold_the_stage_after_its_wait() -> None:
    plan = plan_rollout(DEVICES, canary=2, batch=3, max_failures=0)
    outcomes = {"d00": OK, "d01": OK, "d02": OK, "d03": OK}
    waiting = decide(
        plan, 1, outcomes, stage_elapsed_s=5.0, stage_timeout_s=60.0,
        offline={"d04"}, wait_offline_s=30.0,
    )  # fmt: skip
    assert waiting.action is Action.WAIT
    done = decide(
        plan, 1, outcomes, stage_elapsed_s=30.0, stage_timeout_s=60.0,
        offline={"d04"}, wait_offline_s=30.0,
    )  # fmt: skip
    assert (done.action, done.offline, done.timed_out) == (Action.NEXT_STAGE, ("d04",), ())


def test_the_stage_timeout_counts_only_devices_that_are_online() -> None:
    plan = plan_rollout(DEVICES, canary=2, batch=3, max_failures=5)
    outcomes = {"d00": OK, "d01": OK, "d02": OK}
    decision = decide(
        plan, 1, outcomes, stage_elapsed_s=60.0, stage_timeout_s=60.0, offline={"d04"}
    )
    assert (decision.action, decision.timed_out, decision.offline) == (
        Action.NEXT_STAGE,
        ("d03",),
        ("d04",),
    )


def test_skipped_devices_neither_wait_nor_fail() -> None:
    plan = plan_rollout(DEVICES, canary=2, batch=3, max_failures=0)
    outcomes = {"d00": OK, "d01": OK, "d02": OK, "d03": SKIP, "d04": SKIP}
    assert decide(plan, 1, outcomes, stage_elapsed_s=1.0, stage_timeout_s=60.0).action is (
        Action.NEXT_STAGE
    )


def test_a_failure_percentage_applies_only_after_the_minimum_of_finished_devices() -> None:
    devices = [f"d{i:02d}" for i in range(30)]
    abort = AbortConfig(max_failures=None, max_failure_pct=10.0, min_executed=10)
    plan = plan_rollout(devices, canary=1, batch=29, abort=abort)
    few = {"d00": OK, "d01": failed("rejected:no_space"), "d02": OK}
    assert decide(plan, 1, few, stage_elapsed_s=1.0, stage_timeout_s=60.0).action is Action.WAIT
    many = dict.fromkeys(devices[:18], OK) | {d: failed("x") for d in ("d20", "d21", "d22")}
    decision = decide(plan, 1, many, stage_elapsed_s=1.0, stage_timeout_s=60.0)
    assert decision.action is Action.ABORT
    assert decision.reason.startswith(
        "3 failure(s), 14.3 % of 21 finished, more than --max-failure-pct 10: d20 (x), d21 (x)"
    )
    two = dict.fromkeys(devices[:18], OK) | {"d20": failed("x"), "d21": failed("x")}
    assert decide(plan, 1, two, stage_elapsed_s=1.0, stage_timeout_s=60.0).action is Action.WAIT
