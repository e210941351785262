"""``edge-fleet rollout BUNDLE --group G --canary N --batch M --max-failures F``.

The bundle is published once; each stage gets its desired commands only when the stage before
it completed. The decisions are :func:`fleet.rollout.decide`; this module carries them out.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.bundles import PreparedBundle
from fleet.commands.common import add_connection_arguments, settings_from
from fleet.commands.push import fleet_signers, load_bundle, upload
from fleet.connection import connect
from fleet.progress import install_outcome
from fleet.publish import DEFAULT_WINDOW
from fleet.rollout import (
    Action,
    Decision,
    DeviceOutcome,
    Outcome,
    RolloutPlan,
    decide,
    plan_rollout,
)
from fleet.session import FleetSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help=".edgepkg from `edge-convert bundle`")
    parser.add_argument("--group", required=True, help="devices whose status lists this group")
    parser.add_argument("--canary", type=int, default=1, help="devices in the first stage")
    parser.add_argument("--batch", type=int, default=10, help="devices per later stage")
    parser.add_argument(
        "--max-failures", type=int, default=0, help="abort when more devices than this fail"
    )
    parser.add_argument(
        "--stage-timeout", type=float, default=600.0, help="seconds a stage may take (600)"
    )
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=argparse.SUPPRESS)
    add_connection_arguments(parser)


def print_line(line: str) -> None:
    print(line, flush=True)


class Rollout:
    """Carries a plan out over one session; ``log`` receives one line per event."""

    def __init__(
        self,
        session: FleetSession,
        bundle: PreparedBundle,
        plan: RolloutPlan,
        signers: list[Ed25519PrivateKey],
        *,
        stage_timeout_s: float,
        log: Callable[[str], None] = print_line,
    ) -> None:
        self.log = log
        self.session = session
        self.bundle = bundle
        self.plan = plan
        self.signers = signers
        self.stage_timeout_s = stage_timeout_s
        self.outcomes: dict[str, DeviceOutcome] = {}
        self.rolled_back: set[str] = set()
        self.stage_times: list[float] = []

    def run(self) -> Decision:
        start = time.monotonic()
        for index, stage in enumerate(self.plan.stages):
            self.log(f"{stage.name}: {len(stage.devices)} device(s): {_names(stage.devices)}")
            self.session.send_desired(stage.devices, self.bundle.offer, self.signers)
            decision = self._watch(index)
            self.stage_times.append(time.monotonic() - start)
            if decision.action is Action.ABORT:
                self._abort(index, decision)
                return decision
            self.log(f"{stage.name}: complete")
        return Decision(Action.DONE)

    def _watch(self, index: int) -> Decision:
        started = time.monotonic()
        while True:
            self._observe(index)
            decision = decide(
                self.plan,
                index,
                self.outcomes,
                stage_elapsed_s=time.monotonic() - started,
                stage_timeout_s=self.stage_timeout_s,
            )
            if decision.action is not Action.WAIT:
                return decision
            self.session.poll(1.0)

    def _observe(self, index: int) -> None:
        for stage in self.plan.stages[: index + 1]:
            for device in stage.devices:
                outcome = install_outcome(self.session.live.row(device), self.bundle.bid)
                if outcome != self.outcomes.get(device):
                    self.outcomes[device] = outcome
                    if outcome.outcome is not Outcome.PENDING:
                        self.log(f"  {device}: {outcome.reason or outcome.outcome.value}")

    def _abort(self, index: int, decision: Decision) -> None:
        """Roll back what installed; devices of this stage still installing are rolled back
        when they finish. Returns once every one of them settled (or the stage timeout)."""
        self.log(f"ABORT: {decision.reason}")
        if decision.roll_back:
            self.log(
                f"rolling back {len(decision.roll_back)} device(s): {_names(decision.roll_back)}"
            )
            self.session.send_rollback(decision.roll_back, self.signers)
            self.rolled_back.update(decision.roll_back)
        current = self.plan.stages[index].devices
        deadline = time.monotonic() + self.stage_timeout_s
        while time.monotonic() < deadline:
            self._observe(index)
            late = [d for d in current if self.is_installed(d) and d not in self.rolled_back]
            if late:
                self.log(f"rolling back late installs: {_names(late)}")
                self.session.send_rollback(late, self.signers)
                self.rolled_back.update(late)
            pending = any(self.outcomes[d].outcome is Outcome.PENDING for d in current)
            if not pending and not any(self.is_installed(d) for d in self.rolled_back):
                self.log(f"rolled back: {len(self.rolled_back)} device(s)")
                return
            self.session.poll(1.0)
        self.log("stage timeout while rolling back; check `edge-fleet status`")

    def is_installed(self, device: str) -> bool:
        return self.outcomes[device].outcome is Outcome.INSTALLED


def _names(devices: tuple[str, ...] | list[str]) -> str:
    return ", ".join(devices[:8]) + (f" and {len(devices) - 8} more" if len(devices) > 8 else "")


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    bundle = load_bundle(args.bundle)
    with connect(settings) as client:
        session = FleetSession(client, settings.topic_prefix)
        plan = plan_rollout(
            session.group(args.group),
            canary=args.canary,
            batch=args.batch,
            max_failures=args.max_failures,
        )
        upload(session, bundle, args.window)
        decision = Rollout(session, bundle, plan, signers, stage_timeout_s=args.stage_timeout).run()
    if decision.action is Action.ABORT:
        return 1
    print_line(f"rollout complete: {len(plan.devices)} device(s)")
    return 0
