"""``edge-fleet rollout start|status|pause|resume|cancel``: staged rollouts as stored objects.

``start BUNDLE --group G`` publishes the bundle once and sends each stage its desired commands
only when the stage before it completed (:func:`fleet.rollout.decide`, carried out by
:class:`fleet.runner.Rollout`). Its state is saved after every event under ``--state-dir``;
``pause NAME`` and ``cancel NAME`` ask the running rollout to stop (or act themselves when no
process runs it), ``resume NAME`` carries a paused or interrupted rollout on. The old form
``edge-fleet rollout BUNDLE --group G ...`` means ``start``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from agent.errors import InputError
from agent.mqtt.ports import EventConnection
from fleet.commands.common import (
    add_connection_arguments,
    add_view_arguments,
    open_session,
    require_complete,
    settings_from,
)
from fleet.commands.push import fleet_signers, load_bundle, upload
from fleet.connection import connect
from fleet.publish import DEFAULT_WINDOW
from fleet.rate import CRITERIA, RateConfig
from fleet.registry import Registry
from fleet.rollout import Action, Decision, plan_rollout
from fleet.rollout_state import FINAL, RolloutOptions, RolloutState, status_lines, to_obj
from fleet.rollout_store import RolloutStore, default_state_dir, process_alive
from fleet.runner import Rollout, log_line
from fleet.session import FleetSession

VERBS = ("start", "status", "pause", "resume", "cancel")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = sub.add_parser("start", help="plan and run a staged rollout")
    add_start_arguments(start)
    status = sub.add_parser("status", help="one rollout's state, or every stored rollout")
    status.add_argument("name", nargs="?")
    status.add_argument("--json", action="store_true")
    _state_dir(status)
    for verb, text in (
        ("pause", "stop sending stages (the current stage's devices carry on)"),
        ("resume", "carry a paused or interrupted rollout on"),
        ("cancel", "withdraw the rollout: clear its commands and bundle, roll back installs"),
    ):
        child = sub.add_parser(verb, help=text)
        child.add_argument("name")
        child.add_argument("--json", action="store_true")
        _state_dir(child)
        if verb != "pause":
            add_connection_arguments(child)


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", type=Path, help="where rollouts are stored (~/.local/state/edge-fleet)"
    )


def add_start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help=".edgepkg from `edge-convert bundle`")
    parser.add_argument("--group", required=True, help="devices registered in or publishing G")
    parser.add_argument("--name", help="rollout name (default NAME-COUNTER-GROUP of the bundle)")
    parser.add_argument("--canary", default="1", help="devices in the first stage (N or P%%)")
    parser.add_argument("--batch", default="10", help="devices in the first batch (N or P%%)")
    parser.add_argument(
        "--growth", type=float, default=1.0, help="each batch GROWTH x the one before (1)"
    )
    parser.add_argument("--soak", type=float, default=0.0, help="seconds between stages (0)")
    parser.add_argument(
        "--max-failures", type=int, default=None, help="abort when more devices than this fail"
    )
    parser.add_argument(
        "--max-failure-pct", type=float, default=None, help="abort above this failure share"
    )
    parser.add_argument(
        "--min-executed",
        type=int,
        default=10,
        help="devices that must finish before --max-failure-pct applies (10)",
    )
    parser.add_argument(
        "--stage-timeout", type=float, default=600.0, help="seconds an online device may take"
    )
    parser.add_argument(
        "--offline",
        choices=("skip", "wait"),
        default="skip",
        help="devices offline when their stage starts: skip (send nothing) or wait for them",
    )
    parser.add_argument(
        "--wait-offline", type=float, default=300.0, help="seconds --offline wait waits (300)"
    )
    add_rate_arguments(parser)
    parser.add_argument("--json", action="store_true", help="the result as one JSON document")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=argparse.SUPPRESS)
    _state_dir(parser)
    add_view_arguments(parser)
    add_connection_arguments(parser)


def add_rate_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "rate", "how fast each stage notifies its devices (as AWS IoT Jobs' rollout config)"
    )
    group.add_argument("--max-per-minute", type=float, help="at most N devices a minute")
    group.add_argument(
        "--base-per-minute", type=float, help="exponential: start at N devices a minute"
    )
    group.add_argument(
        "--increment-factor", type=float, default=2.0, help="exponential: multiply by F (2)"
    )
    group.add_argument(
        "--increase-after", type=int, default=0, help="exponential: every N devices ..."
    )
    group.add_argument(
        "--increase-on",
        choices=CRITERIA,
        default="notified",
        help="... notified or succeeded since the last increase (notified)",
    )


def rate_of(args: argparse.Namespace) -> RateConfig:
    return RateConfig(
        max_per_minute=args.max_per_minute,
        base_per_minute=args.base_per_minute,
        increment_factor=args.increment_factor,
        increase_every=args.increase_after,
        increase_on=args.increase_on,
    )


def store_of(args: argparse.Namespace) -> RolloutStore:
    return RolloutStore(args.state_dir or default_state_dir(os.environ, Path.home()))


def options_of(args: argparse.Namespace) -> RolloutOptions:
    count = args.max_failures
    if count is None and args.max_failure_pct is None:
        count = 0
    return RolloutOptions(
        stage_timeout_s=args.stage_timeout,
        offline=args.offline,
        wait_offline_s=args.wait_offline,
        soak_s=args.soak,
        max_failures=count,
        max_failure_pct=args.max_failure_pct,
        min_executed=args.min_executed,
        rate=rate_of(args),
    )


def run(args: argparse.Namespace) -> int:
    verb = args.verb
    if verb == "start":
        return start(args)
    if verb == "status":
        return status(args)
    if verb == "pause":
        return pause(args)
    if verb == "resume":
        return resume(args)
    return cancel(args)


def start(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    bundle = load_bundle(args.bundle)
    store = store_of(args)
    name = args.name or f"{bundle.manifest.name}-{bundle.manifest.counter}-{args.group}"
    if store.exists(name) and (old := store.load(name)).phase not in FINAL:
        raise InputError(
            f"rollout {name!r} is {old.phase}: resume or cancel it, or pick another --name"
        )
    options = options_of(args)
    with connect(settings) as client:
        session = open_session(client, settings, args)
        require_complete(session, args)
        plan = plan_rollout(
            session.group(args.group),
            canary=args.canary,
            batch=args.batch,
            growth=args.growth,
            abort=options.abort,
        )
        state = RolloutState(
            name, str(args.bundle.resolve()), bundle.bid, args.group,
            [(s.name, list(s.devices)) for s in plan.stages], options,
            blocks=bundle.offer.blocks, pid=os.getpid(), stage_started=time.time(),
        )  # fmt: skip
        store.request(name, None)
        store.save(state)
        log_line(f"rollout {name}: {len(plan.devices)} device(s) in {len(plan.stages)} stage(s)")
        upload(session, bundle, args.window)
        runner = Rollout(
            session, bundle, plan, signers, state=state, save=store.save,
            requested=lambda: store.requested(name),
        )  # fmt: skip
        decision = runner.run()
    return report(runner.state, decision, args.json)


def report(state: RolloutState, decision: Decision, as_json: bool) -> int:
    if as_json:
        print(json.dumps(to_obj(state), indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(state)))
    return 1 if decision.action is Action.ABORT else 0


def status(args: argparse.Namespace) -> int:
    store = store_of(args)
    if args.name is None:
        states = [store.load(n) for n in store.names()]
        if args.json:
            print(json.dumps([to_obj(s) for s in states], indent=2, sort_keys=True))
        for state in [] if args.json else states:
            counts = ", ".join(f"{k} {n}" for k, n in state.counts().items())
            where = f"stage {state.stage + 1}/{len(state.stages)}"
            print(f"{state.name}  {state.phase}  {where}  {counts}")
        return 0
    state = store.load(args.name)
    if args.json:
        print(json.dumps(to_obj(state), indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(state)))
    return 0


def _running(state: RolloutState) -> bool:
    return state.phase == "running" and process_alive(state.pid) and state.pid != os.getpid()


def _wait_for(
    store: RolloutStore, name: str, phases: tuple[str, ...], timeout_s: float
) -> RolloutState:
    deadline = time.monotonic() + timeout_s
    state = store.load(name)
    while state.phase not in phases and time.monotonic() < deadline and process_alive(state.pid):
        time.sleep(0.5)
        state = store.load(name)
    return state


def pause(args: argparse.Namespace) -> int:
    store = store_of(args)
    state = store.load(args.name)
    if state.phase != "running":
        raise InputError(f"rollout {args.name!r} is {state.phase}, not running")
    if not _running(state):
        state.phase, state.reason = "paused", "paused while no process ran it"
        store.save(state)
    else:
        store.request(args.name, "pause")
        state = _wait_for(store, args.name, ("paused", *FINAL), 60.0)
    print("\n".join(status_lines(state)))
    return 0 if state.phase == "paused" else 1


def resume(args: argparse.Namespace) -> int:
    store = store_of(args)
    state = store.load(args.name)
    if state.phase in FINAL:
        raise InputError(f"rollout {args.name!r} is {state.phase}; nothing to resume")
    if _running(state):
        raise InputError(f"rollout {args.name!r} is running in process {state.pid}")
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    bundle = load_bundle(Path(state.bundle_path))
    if bundle.bid != state.bundle_id:
        raise InputError(f"{state.bundle_path} is no longer bundle {state.bundle_id}")
    store.request(args.name, None)
    state.phase, state.reason, state.pid = "running", "", os.getpid()
    store.save(state)
    with connect(settings) as client:
        session = _session_for(client, settings.topic_prefix, state)
        upload(session, bundle, DEFAULT_WINDOW)  # idempotent; a broker may have lost it
        runner = Rollout(
            session, bundle, state.plan, signers, state=state, save=store.save,
            requested=lambda: store.requested(args.name),
        )  # fmt: skip
        decision = runner.run()
    return report(runner.state, decision, args.json)


def cancel(args: argparse.Namespace) -> int:
    store = store_of(args)
    state = store.load(args.name)
    if state.phase in FINAL:
        raise InputError(f"rollout {args.name!r} is already {state.phase}")
    if _running(state):
        store.request(args.name, "cancel")
        state = _wait_for(store, args.name, FINAL, state.options.stage_timeout_s + 60)
        print("\n".join(status_lines(state)))
        return 0 if state.phase == "cancelled" else 1
    settings = settings_from(args)
    signers = fleet_signers(settings, args.co_sign)
    with connect(settings) as client:
        session = _session_for(client, settings.topic_prefix, state)
        runner = Rollout(session, None, state.plan, signers, state=state, save=store.save)
        decision = runner.cancel()
    report(runner.state, decision, args.json)
    return 0


def _session_for(client: EventConnection, prefix: str, state: RolloutState) -> FleetSession:
    devices = [d for _n, stage in state.stages for d in stage]
    registry = Registry().with_devices(dict.fromkeys(devices, ()))
    return FleetSession(client, prefix, registry=registry, read="exact")
