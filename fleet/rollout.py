"""Staged rollout: the plan and every decision, as pure functions of device outcomes and time.

A rollout of one bundle to a group goes canary stage first (``canary`` devices), then batches
of ``batch`` devices (a count or a share of the group, growing by ``growth`` per batch). A stage is
complete when each of its online devices installed the bundle or failed (rejected, rolled back,
or no answer within the stage timeout while online); offline devices are a state of their own,
waited for at most ``wait_offline_s``, never a failure. Any failure in the canary stage aborts;
after that :class:`AbortConfig` decides (a count, or a percentage once enough devices finished).
An abort rolls back every device of this rollout that installed the bundle and sends nothing to
the stages not started. The CLI (:mod:`fleet.commands.rollout`) only observes statuses,
asks :func:`decide` and carries the decision out.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agent.errors import InputError


class Outcome(enum.Enum):
    PENDING = "pending"
    INSTALLED = "installed"
    FAILED = "failed"
    SKIPPED = "skipped"  # offline when its stage started (policy skip): sent nothing


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
class AbortConfig:
    """When failures abort (after the canary stage, where any failure does).

    ``max_failures``: more failed devices than this aborts. ``max_failure_pct``: once at least
    ``min_executed`` devices finished (installed or failed), a failure share above this aborts
    (AWS IoT Jobs' ``abortConfig``: ``thresholdPercentage`` with ``minNumberOfExecutedThings``).
    """

    max_failures: int | None = 0
    max_failure_pct: float | None = None
    min_executed: int = 1

    def exceeded(self, failed: int, executed: int) -> str | None:
        if self.max_failures is not None and failed > self.max_failures:
            return f"more than --max-failures {self.max_failures}"
        pct = self.max_failure_pct
        if pct is not None and executed >= self.min_executed and 100 * failed > pct * executed:
            return (
                f"{100 * failed / executed:.1f} % of {executed} finished, more than "
                f"--max-failure-pct {pct:g}"
            )
        return None


@dataclass(frozen=True)
class RolloutPlan:
    stages: tuple[Stage, ...]
    abort: AbortConfig

    @property
    def max_failures(self) -> int | None:
        return self.abort.max_failures

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(d for stage in self.stages for d in stage.devices)


def batch_sizes(total: int, first: int, growth: float) -> list[int]:
    """Sizes of the batches after the canaries: ``first``, then each ``growth`` times the one
    before (1 = constant rate; 2 doubles, like AWS IoT Jobs' exponential rollout)."""
    sizes: list[int] = []
    size = float(first)
    while total > 0:
        take = min(total, max(1, int(size)))
        sizes.append(take)
        total -= take
        size *= growth
    return sizes


def parse_count(text: str, total: int, what: str) -> int:
    """``"250"`` or ``"25%"`` of ``total`` (at least 1)."""
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 < pct <= 100:
                raise ValueError
            return max(1, round(total * pct / 100))
        value = int(text)
    except ValueError:
        raise InputError(f"{what} must be a count or a percentage (25%); got {text!r}") from None
    if value < 1:
        raise InputError(f"{what} must be at least 1")
    return value


def plan_rollout(
    devices: Sequence[str],
    *,
    canary: int | str,
    batch: int | str,
    max_failures: int | None = 0,
    growth: float = 1.0,
    abort: AbortConfig | None = None,
) -> RolloutPlan:
    """Canary devices first (the first ``canary`` in sorted order), then batches: ``batch``
    devices (or a percentage of the group), growing by ``growth`` per batch."""
    ordered = sorted(set(devices))
    if not ordered:
        raise InputError("the group has no devices (none registered or publishing it)")
    canaries = parse_count(str(canary), len(ordered), "--canary")
    first = parse_count(str(batch), len(ordered), "--batch")
    if max_failures is not None and max_failures < 0:
        raise InputError("--max-failures must be 0 or more")
    if growth < 1:
        raise InputError("--growth must be 1 (constant) or more (exponential)")
    stages = [Stage("canary", tuple(ordered[:canaries]))]
    rest = ordered[canaries:]
    start = 0
    for number, size in enumerate(batch_sizes(len(rest), first, growth), start=1):
        stages.append(Stage(f"batch {number}", tuple(rest[start : start + size])))
        start += size
    return RolloutPlan(tuple(stages), abort or AbortConfig(max_failures))


class Action(enum.Enum):
    WAIT = "wait"
    NEXT_STAGE = "next_stage"
    DONE = "done"
    ABORT = "abort"
    PAUSED = "paused"  # on request (``edge-fleet rollout pause``); resumable


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    roll_back: tuple[str, ...] = ()
    timed_out: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()  # pending devices of the stage left offline (not failures)


def decide(
    plan: RolloutPlan,
    stage: int,
    outcomes: Mapping[str, DeviceOutcome],
    *,
    stage_elapsed_s: float,
    stage_timeout_s: float,
    offline: Collection[str] = frozenset(),
    wait_offline_s: float = 0.0,
    unsent: Collection[str] = frozenset(),
) -> Decision:
    """What to do now, with stage ``stage`` started ``stage_elapsed_s`` ago.

    ``outcomes`` holds every device of the stages started so far (missing = pending).
    ``offline``: devices offline now. Offline is a state, not a failure: a pending device that
    is offline is waited for ``wait_offline_s`` at most, then the stage goes on without it.
    Only online devices still pending after ``stage_timeout_s`` count as failed (``timed_out``).
    ``unsent``: devices of the stage a rate has not released yet: waited for, never timed out.
    """
    current = plan.stages[stage]

    def pending(device: str) -> bool:
        return outcomes.get(device, PENDING).outcome is Outcome.PENDING

    waiting = [d for d in current.devices if pending(d) and d not in offline]
    away = tuple(d for d in current.devices if pending(d) and d in offline)
    late = stage_elapsed_s >= stage_timeout_s
    timed_out = tuple(d for d in waiting if d not in unsent) if late else ()
    started = [d for s in plan.stages[: stage + 1] for d in s.devices]
    failed = [
        d for d in started if outcomes.get(d, PENDING).outcome is Outcome.FAILED or d in timed_out
    ]
    installed = tuple(d for d in started if outcomes.get(d, PENDING).outcome is Outcome.INSTALLED)
    why = (
        ("a canary failed" if failed else None)
        if stage == 0
        else plan.abort.exceeded(len(failed), len(failed) + len(installed))
    )
    if why is not None:
        return Decision(
            Action.ABORT,
            _abort_reason(current, failed, outcomes, timed_out, why),
            roll_back=installed,
            timed_out=timed_out,
        )
    if unsent or (waiting and not timed_out):
        return Decision(Action.WAIT)
    if away and stage_elapsed_s < min(wait_offline_s, stage_timeout_s):
        return Decision(Action.WAIT)
    action = Action.DONE if stage + 1 == len(plan.stages) else Action.NEXT_STAGE
    return Decision(action, timed_out=timed_out, offline=away)


def _abort_reason(
    stage: Stage,
    failed: Sequence[str],
    outcomes: Mapping[str, DeviceOutcome],
    timed_out: Sequence[str],
    why: str,
) -> str:
    def because(device: str) -> str:
        if device in timed_out:
            return f"{device} (no result before the stage timeout)"
        return f"{device} ({outcomes[device].reason or 'failed'})"

    listed = ", ".join(because(d) for d in failed[:5]) + (" ..." if len(failed) > 5 else "")
    if stage.name == "canary":
        return f"canary failed: {listed}"
    return f"{len(failed)} failure(s), {why}: {listed}"
