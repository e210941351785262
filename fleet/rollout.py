"""Staged rollout: the plan and every decision, as pure functions of device outcomes and time.

A rollout of one bundle to a group goes canary stage first (``canary`` devices), then batches
of ``batch`` devices. A stage is complete when each of its devices installed the bundle or
failed (rejected, rolled back, or no answer within the stage timeout). Any failure in the canary
stage aborts; after that the rollout aborts when the failures so far exceed ``max_failures``.
An abort rolls back every device of this rollout that installed the bundle and sends nothing to
the stages not started. The CLI (:mod:`fleet.commands.rollout`) only observes statuses,
asks :func:`decide` and carries the decision out.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.errors import InputError


class Outcome(enum.Enum):
    PENDING = "pending"
    INSTALLED = "installed"
    FAILED = "failed"


@dataclass(frozen=True)
class DeviceOutcome:
    outcome: Outcome
    reason: str = ""


PENDING = DeviceOutcome(Outcome.PENDING)


@dataclass(frozen=True)
class Stage:
    name: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class RolloutPlan:
    stages: tuple[Stage, ...]
    max_failures: int

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(d for stage in self.stages for d in stage.devices)


def plan_rollout(
    devices: Sequence[str], *, canary: int, batch: int, max_failures: int
) -> RolloutPlan:
    """Canary devices first (the first ``canary`` in sorted order), then batches of ``batch``."""
    ordered = sorted(set(devices))
    if not ordered:
        raise InputError("the group has no devices (none publish it in their status)")
    if canary < 1:
        raise InputError("--canary must be at least 1")
    if batch < 1:
        raise InputError("--batch must be at least 1")
    if max_failures < 0:
        raise InputError("--max-failures must be 0 or more")
    stages = [Stage("canary", tuple(ordered[:canary]))]
    rest = ordered[canary:]
    for number, start in enumerate(range(0, len(rest), batch), start=1):
        stages.append(Stage(f"batch {number}", tuple(rest[start : start + batch])))
    return RolloutPlan(tuple(stages), max_failures)


class Action(enum.Enum):
    WAIT = "wait"
    NEXT_STAGE = "next_stage"
    DONE = "done"
    ABORT = "abort"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    roll_back: tuple[str, ...] = ()
    timed_out: tuple[str, ...] = ()


def decide(
    plan: RolloutPlan,
    stage: int,
    outcomes: Mapping[str, DeviceOutcome],
    *,
    stage_elapsed_s: float,
    stage_timeout_s: float,
) -> Decision:
    """What to do now, with stage ``stage`` started ``stage_elapsed_s`` ago.

    ``outcomes`` holds every device of the stages started so far (missing = pending). Devices
    of the current stage still pending after the timeout count as failed (``timed_out``).
    """
    current = plan.stages[stage]
    timed_out: tuple[str, ...] = ()
    if stage_elapsed_s >= stage_timeout_s:
        timed_out = tuple(
            d for d in current.devices if outcomes.get(d, PENDING).outcome is Outcome.PENDING
        )
    started = [d for s in plan.stages[: stage + 1] for d in s.devices]
    failed = [
        d for d in started if outcomes.get(d, PENDING).outcome is Outcome.FAILED or d in timed_out
    ]
    installed = tuple(d for d in started if outcomes.get(d, PENDING).outcome is Outcome.INSTALLED)
    limit = 0 if stage == 0 else plan.max_failures
    if len(failed) > limit:
        return Decision(
            Action.ABORT,
            _abort_reason(current, failed, outcomes, timed_out, limit),
            roll_back=installed,
            timed_out=timed_out,
        )
    pending = [
        d
        for d in current.devices
        if outcomes.get(d, PENDING).outcome is Outcome.PENDING and d not in timed_out
    ]
    if pending:
        return Decision(Action.WAIT)
    if stage + 1 == len(plan.stages):
        return Decision(Action.DONE, timed_out=timed_out)
    return Decision(Action.NEXT_STAGE, timed_out=timed_out)


def _abort_reason(
    stage: Stage,
    failed: Sequence[str],
    outcomes: Mapping[str, DeviceOutcome],
    timed_out: Sequence[str],
    limit: int,
) -> str:
    def why(device: str) -> str:
        if device in timed_out:
            return f"{device} (no result before the stage timeout)"
        return f"{device} ({outcomes[device].reason or 'failed'})"

    listed = ", ".join(why(d) for d in failed[:5]) + (" ..." if len(failed) > 5 else "")
    if stage.name == "canary":
        return f"canary failed: {listed}"
    return f"{len(failed)} failure(s), more than --max-failures {limit}: {listed}"
