"""A rollout as a persisted object: everything needed to resume or cancel it. Pure.

``edge-fleet rollout start`` writes this state after every event (atomically, see
:mod:`fleet.rollout_store`); ``status`` reads it, ``pause``/``cancel`` leave a request the
running rollout picks up, ``resume`` carries a paused (or interrupted) rollout on from its
current stage. The plan itself is stored, so a resumed rollout never re-plans a changed group.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.errors import ConfigError
from fleet.rate import RateConfig, RateState
from fleet.rollout import AbortConfig, DeviceOutcome, Outcome, RolloutPlan, Stage

STATE_VERSION = 1
PHASES = ("running", "paused", "done", "aborted", "cancelled")
FINAL = ("done", "aborted", "cancelled")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class RolloutOptions:
    stage_timeout_s: float = 600.0
    offline: str = "skip"
    wait_offline_s: float = 300.0
    soak_s: float = 0.0
    max_failures: int | None = 0
    max_failure_pct: float | None = None
    min_executed: int = 1
    rate: RateConfig = field(default_factory=RateConfig)

    @property
    def abort(self) -> AbortConfig:
        return AbortConfig(self.max_failures, self.max_failure_pct, self.min_executed)


@dataclass
class RolloutState:
    name: str
    bundle_path: str
    bundle_id: str
    group: str
    stages: list[tuple[str, list[str]]]
    options: RolloutOptions
    blocks: int = 0
    phase: str = "running"
    stage: int = 0
    stage_started: float = 0.0  # wall clock; a stage's timeout restarts on resume
    soak_until: float = 0.0  # wall clock end of the soak in progress (a pause does not extend it)
    sent: list[str] = field(default_factory=list)
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    left_offline: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    rate: RateState = field(default_factory=RateState)
    reason: str = ""
    pid: int | None = None
    updated: float = 0.0

    @property
    def plan(self) -> RolloutPlan:
        stages = tuple(Stage(name, tuple(devices)) for name, devices in self.stages)
        return RolloutPlan(stages, self.options.abort)

    def outcome_map(self) -> dict[str, DeviceOutcome]:
        return {d: DeviceOutcome(Outcome(o), r) for d, (o, r) in self.outcomes.items()}

    def counts(self) -> dict[str, int]:
        """Devices by what happened to them so far: installed, failed, skipped, ..."""
        sent = set(self.sent)
        counts: dict[str, int] = {}
        for _name, devices in self.stages:
            for device in devices:
                outcome = self.outcomes.get(device, ("pending", ""))[0]
                if outcome == "pending":
                    outcome = "waiting" if device in sent else "not_sent"
                    if device in self.left_offline:
                        outcome = "offline"
                counts[outcome] = counts.get(outcome, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> bytes:
        obj = asdict(self)
        obj["version"] = STATE_VERSION
        return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> RolloutState:
        try:
            obj = json.loads(data)
            if not isinstance(obj, dict) or obj.pop("version", None) != STATE_VERSION:
                raise ValueError(f"not a version {STATE_VERSION} rollout state")
            options = dict(obj["options"])
            options["rate"] = RateConfig(**options.get("rate", {}))
            obj["options"] = RolloutOptions(**options)
            obj["rate"] = RateState(**obj.get("rate", {}))
            obj["stages"] = [(str(n), [str(d) for d in ds]) for n, ds in obj["stages"]]
            obj["outcomes"] = {str(d): (str(o), str(r)) for d, (o, r) in obj["outcomes"].items()}
            state = cls(**obj)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError("rollout", f"{where} is not a rollout state: {exc}") from None
        if state.phase not in PHASES:
            raise ConfigError("rollout", f"{where}: unknown phase {state.phase!r}")
        for _device, (outcome, _reason) in state.outcomes.items():
            Outcome(outcome)
        return state


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ConfigError("rollout", f"name {name!r}: letters, digits, '.', '_', '-', at most 64")
    return name


def status_lines(state: RolloutState) -> list[str]:
    """``rollout status`` for people."""
    total = sum(len(devices) for _n, devices in state.stages)
    stage_name = state.stages[state.stage][0] if state.stage < len(state.stages) else "-"
    lines = [
        f"rollout   {state.name}: {state.phase}" + (f" ({state.reason})" if state.reason else ""),
        f"bundle    {state.bundle_id} to group {state.group}: {total} device(s)",
        f"stage     {state.stage + 1} of {len(state.stages)} ({stage_name})",
        "devices   " + ", ".join(f"{k} {n}" for k, n in state.counts().items()),
    ]
    rate = state.options.rate
    if rate.limited:
        now = f"; now {state.rate.per_minute:g}/min" if state.rate.per_minute else ""
        lines.append(f"rate      {rate.describe()}{now}; {len(state.sent)} notified")
    failed = [(d, r) for d, (o, r) in sorted(state.outcomes.items()) if o == "failed"]
    if failed:
        lines.append(f"failures  {len(failed)}:")
        lines += [f"  {d}  {r}" for d, r in failed[:50]]
    return lines


def to_obj(state: RolloutState) -> dict[str, Any]:
    obj = json.loads(state.to_json())
    obj["counts"] = state.counts()
    return dict(obj)
