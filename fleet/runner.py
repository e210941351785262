"""Carries a rollout's plan out over one session: the adapter around :func:`fleet.rollout.decide`.

It sends each stage's desired commands, observes statuses, asks ``decide`` and acts. Its state
(:class:`~fleet.rollout_state.RolloutState`) is saved through ``save`` after every event, so a
rollout paused on request (``pause``), interrupted (the process died) or cancelled can be
resumed or withdrawn from a fresh process. Offline devices are skipped (policy ``skip``: they
get nothing) or waited for (``wait``); an abort or a cancel withdraws everything it sent: the
retained desired commands are cleared and the bundle deleted, installed devices rolled back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet import rate
from fleet.bundles import PreparedBundle
from fleet.progress import install_outcome, update_for
from fleet.rollout import (
    PENDING,
    Action,
    Decision,
    DeviceOutcome,
    Outcome,
    RolloutPlan,
    decide,
)
from fleet.rollout_state import RolloutOptions, RolloutState
from fleet.session import FleetSession

SAVE_EVERY_S = 2.0
DECIDE_EVERY_S = 0.25  # a decision looks at every device of the stages so far: bounded rate
REREAD_QUIET_S = 10.0  # a pending online device silent this long has its status read again
CANCELLED = "cancelled by `edge-fleet rollout cancel`"


def log_line(line: str) -> None:
    """Progress for people, on stderr (results go to stdout)."""
    print(line, file=sys.stderr, flush=True)


def names(devices: tuple[str, ...] | list[str]) -> str:
    return ", ".join(devices[:8]) + (f" and {len(devices) - 8} more" if len(devices) > 8 else "")


class Rollout:
    """``state``: a stored rollout to carry on; without one, a fresh in-memory state."""

    def __init__(
        self,
        session: FleetSession,
        bundle: PreparedBundle | None,
        plan: RolloutPlan,
        signers: Sequence[Ed25519PrivateKey],
        *,
        options: RolloutOptions | None = None,
        state: RolloutState | None = None,
        save: Callable[[RolloutState], None] | None = None,
        requested: Callable[[], str | None] | None = None,
        log: Callable[[str], None] = log_line,
    ) -> None:
        self.log = log
        self.session = session
        self.bundle = bundle
        self.plan = plan
        self.signers = list(signers)
        if state is None:
            if bundle is None:
                raise ValueError("a new rollout needs its bundle")
            stages = [(s.name, list(s.devices)) for s in plan.stages]
            state = RolloutState(
                "unsaved", "", bundle.bid, "", stages, options or RolloutOptions(),
                blocks=bundle.offer.blocks,
            )  # fmt: skip
        self.state = state
        self.bid, self.blocks = state.bundle_id, state.blocks
        self.options = self.state.options
        self._save = save
        self._requested = requested or (lambda: None)
        self._saved_at = 0.0
        self.outcomes: dict[str, DeviceOutcome] = self.state.outcome_map()
        self.rolled_back: set[str] = set(self.state.rolled_back)
        self.stage_times: list[float] = []
        self._queue: list[str] = []  # devices of the stage the rate has not released yet
        self._last_send = 0.0
        self._stage_of = {d: i for i, s in enumerate(plan.stages) for d in s.devices}

    # -- persistence -------------------------------------------------------------------------

    def save(self, *, force: bool = True) -> None:
        now = time.monotonic()
        if self._save is None or (not force and now - self._saved_at < SAVE_EVERY_S):
            return
        self.state.outcomes = {d: (o.outcome.value, o.reason) for d, o in self.outcomes.items()}
        self.state.rolled_back = sorted(self.rolled_back)
        self._save(self.state)
        self._saved_at = now

    def _finish(self, phase: str, reason: str = "") -> None:
        self.state.phase, self.state.reason = phase, reason
        self.save()

    # -- the stages --------------------------------------------------------------------------

    def run(self) -> Decision:
        start = time.monotonic()
        first = self.state.stage
        self.session.accept_since(self.state.sent, self.state.stage_started)
        for index in range(first, len(self.plan.stages)):
            if index > first and self.options.soak_s:
                self._soak(index)
            request = self._requested()
            if request == "pause":
                return self._pause()
            if request == "cancel":
                return self._abort_now(index, CANCELLED)
            self.state.stage, self.state.stage_started = index, time.time()
            self._send_stage(index)
            decision = self._watch(index)
            self.stage_times.append(time.monotonic() - start)
            if decision.action is Action.PAUSED:
                return self._pause()
            if decision.action is Action.ABORT:
                self._abort(index, decision)
                self._finish(
                    "cancelled" if decision.reason == CANCELLED else "aborted", decision.reason
                )
                return decision
            self.state.left_offline += [
                d for d in decision.offline if d not in self.state.left_offline
            ]
            self.log(f"{self.plan.stages[index].name}: complete ({self._counts(index)})")
            self.save()
        self.state.stage = len(self.plan.stages) - 1
        self._finish("done")
        return Decision(Action.DONE)

    def _send_stage(self, index: int) -> None:
        stage = self.plan.stages[index]
        sent = set(self.state.sent)
        targets = [d for d in stage.devices if d not in sent and d not in self.outcomes]
        if self.options.offline == "skip":
            for device in [d for d in targets if not self.session.online(d)]:
                self.outcomes[device] = DeviceOutcome(Outcome.SKIPPED, "offline")
                targets.remove(device)
        skipped = sum(self.outcomes.get(d) == DeviceOutcome(Outcome.SKIPPED, "offline")
                      for d in stage.devices)  # fmt: skip
        note = f", {skipped} offline skipped" if skipped else ""
        if self.options.rate.limited:
            note += f", at {self.options.rate.describe()}"
        self.log(f"{stage.name}: {len(targets)} device(s){note}: {names(targets)}")
        self._queue = targets
        self._release()
        self.save()

    def _release(self) -> None:
        """Notify the next devices of the stage: all at once, or as many as the rate allows."""
        if not self._queue:
            return
        succeeded = 0
        if self.options.rate.increase_on == "succeeded":
            succeeded = sum(o.outcome is Outcome.INSTALLED for o in self.outcomes.values())
        count, self.state.rate = rate.take(
            self.options.rate, self.state.rate, time.time(), len(self._queue),
            notified=len(self.state.sent), succeeded=succeeded,
        )  # fmt: skip
        if count == 0:
            return
        if self.bundle is None:
            raise ValueError("sending a stage needs the bundle")
        batch, self._queue = self._queue[:count], self._queue[count:]
        self.session.send_desired(batch, self.bundle.offer, self.signers)
        self.state.sent += batch
        self._last_send = time.monotonic()
        self.save(force=False)

    def _counts(self, index: int) -> str:
        counts: dict[str, int] = {}
        for device in self.plan.stages[index].devices:
            outcome = self.outcomes.get(device, DeviceOutcome(Outcome.PENDING))
            key = "offline" if outcome.outcome is Outcome.PENDING else outcome.outcome.value
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

    def _soak(self, index: int) -> None:
        """Watch the stages so far for ``soak_s`` before stage ``index`` (a request ends it
        early; a resumed rollout soaks only what was left)."""
        if self.state.soak_until <= 0:
            self.state.soak_until = time.time() + self.options.soak_s
            self.save()
        left = self.state.soak_until - time.time()
        self.log(f"soaking {max(0.0, left):.0f} s before {self.plan.stages[index].name}")
        changed: set[str] | None = None
        while (left := self.state.soak_until - time.time()) > 0 and self._requested() is None:
            self._observe(index - 1, changed)
            changed = self.session.poll(min(1.0, left), at_least_s=min(DECIDE_EVERY_S, left))
        if left <= 0:
            self.state.soak_until = 0.0

    def _watch(self, index: int) -> Decision:
        started = time.monotonic()
        current = self.plan.stages[index].devices
        changed: set[str] | None = None  # None: look at every device once
        heard: dict[str, float] = {}
        next_reread = started + REREAD_QUIET_S
        while True:
            self._observe(index, changed)
            now = time.monotonic()
            heard.update(dict.fromkeys(changed or (), now))
            if now >= next_reread:
                next_reread = now + REREAD_QUIET_S
                self._reread_quiet(current, heard, now - REREAD_QUIET_S)
            request = self._requested()
            if request == "pause":
                return Decision(Action.PAUSED, "paused by `edge-fleet rollout pause`")
            if request == "cancel":
                return Decision(Action.ABORT, CANCELLED, roll_back=self._installed(index))
            self._release()
            decision = decide(
                self.plan,
                index,
                self.outcomes,
                stage_elapsed_s=time.monotonic() - max(started, self._last_send),
                unsent=set(self._queue),
                stage_timeout_s=self.options.stage_timeout_s,
                offline={d for d in current if not self.session.online(d)},
                wait_offline_s=self.options.wait_offline_s if self.options.offline == "wait" else 0,
            )
            if decision.action is not Action.WAIT:
                return decision
            self.save(force=False)
            changed = self.session.poll(1.0, at_least_s=DECIDE_EVERY_S)

    def _reread_quiet(
        self, devices: tuple[str, ...], heard: dict[str, float], before: float
    ) -> None:
        """Statuses can be lost on their way (a broker's full queue, a reconnect): read again the
        retained status of pending online devices not heard from since ``before``."""
        quiet = [
            d for d in devices
            if self.outcomes.get(d, PENDING).outcome is Outcome.PENDING
            and heard.get(d, 0.0) <= before and self.session.online(d)
        ]  # fmt: skip
        if quiet:
            self.session.reread(quiet, self.state.stage_started)
            heard.update(dict.fromkeys(quiet, before + REREAD_QUIET_S))

    def _installed(self, index: int) -> tuple[str, ...]:
        started = [d for s in self.plan.stages[: index + 1] for d in s.devices]
        return tuple(d for d in started if self.is_installed(d))

    def _observe(self, index: int, devices: set[str] | None = None) -> None:
        """Outcomes of the stages up to ``index`` from the live view: of ``devices`` (those whose
        live status changed since the last look) or, by default, of every device."""
        if devices is None:
            todo = [d for s in self.plan.stages[: index + 1] for d in s.devices]
        else:
            todo = sorted(d for d in devices if self._stage_of.get(d, index + 1) <= index)
        for device in todo:
            previous = self.outcomes.get(device)
            if previous is not None and previous.outcome is Outcome.SKIPPED:
                continue
            outcome = install_outcome(self.session.live.row(device), self.bid)
            if outcome != previous and (
                previous is not None or outcome.outcome is not Outcome.PENDING
            ):
                self.outcomes[device] = outcome
                if outcome.outcome is Outcome.FAILED:
                    self.log(f"  {device}: {outcome.reason}")

    def _pause(self) -> Decision:
        self.log(f"paused at {self.plan.stages[self.state.stage].name}; resume with "
                 f"`edge-fleet rollout resume {self.state.name}`")  # fmt: skip
        self._finish("paused", "paused by `edge-fleet rollout pause`")
        return Decision(Action.PAUSED, self.state.reason)

    # -- abort and cancel --------------------------------------------------------------------

    def _abort_now(self, index: int, reason: str) -> Decision:
        decision = Decision(Action.ABORT, reason, roll_back=self._installed(max(0, index - 1)))
        self._abort(max(0, index - 1), decision)
        self._finish("cancelled", reason)
        return decision

    def cancel(self) -> Decision:
        """Withdraw a rollout no process is running (paused or interrupted)."""
        index = self.state.stage
        self.session.accept_since(self.state.sent, self.state.stage_started)
        self._observe(index)
        installed = tuple(
            d for d in self.state.sent
            if self.is_installed(d) or self._known_installed(d)
        )  # fmt: skip
        decision = Decision(Action.ABORT, CANCELLED, roll_back=installed)
        self._abort(index, decision)
        self._finish("cancelled", CANCELLED)
        return decision

    def _known_installed(self, device: str) -> bool:
        known = install_outcome(self.session.known.row(device), self.bid)
        return known.outcome is Outcome.INSTALLED and device not in self.rolled_back

    def _abort(self, index: int, decision: Decision) -> None:
        """Withdraw what was sent, roll back what installed; devices of this stage that were
        still installing cancel (``rejected:withdrawn``) or are rolled back when they finish."""
        self.log(f"ABORT: {decision.reason}")
        self._queue = []  # never notified: nothing to withdraw
        self.log(
            f"withdrawing the desired command of {len(self.state.sent)} device(s) and the bundle"
        )
        self.session.clear_desired(self.state.sent)
        self.session.clear_bundle(self.bid, self.blocks)
        if decision.roll_back:
            self.log(
                f"rolling back {len(decision.roll_back)} device(s): {names(decision.roll_back)}"
            )
            self.session.send_rollback(decision.roll_back, self.signers)
            self.rolled_back.update(decision.roll_back)
        self.save()
        current = self.plan.stages[index].devices
        deadline = time.monotonic() + self.options.stage_timeout_s
        changed: set[str] | None = None
        while time.monotonic() < deadline:
            self._observe(index, changed)
            late = [d for d in current if self.is_installed(d) and d not in self.rolled_back]
            if late:
                self.log(f"rolling back late installs: {names(late)}")
                self.session.send_rollback(late, self.signers)
                self.rolled_back.update(late)
            pending = any(self._installing(d) for d in current)
            if not pending and not any(self.is_installed(d) for d in self.rolled_back):
                self.log(f"rolled back: {len(self.rolled_back)} device(s)")
                return
            changed = self.session.poll(1.0, at_least_s=DECIDE_EVERY_S)
        self.log("stage timeout while rolling back; check `edge-fleet status`")

    def _installing(self, device: str) -> bool:
        """Online and part-way through this bundle (a device that had not started yet heard
        the withdrawal and will not: nothing to wait for)."""
        pending = self.outcomes.get(device, DeviceOutcome(Outcome.PENDING))
        started = update_for(self.session.live.row(device), self.bid) is not None
        return pending.outcome is Outcome.PENDING and started and self.session.online(device)

    def is_installed(self, device: str) -> bool:
        outcome = self.outcomes.get(device)
        return outcome is not None and outcome.outcome is Outcome.INSTALLED
