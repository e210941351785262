"""The fleet simulation as a ``make bench`` section: a staged rollout to 1,000 simulated agents.

Runs :mod:`bench.fleet_sim` (one rollout at the normal failure rate, one whose canaries fail)
and reports it in ``docs/benchmarks.md``; ``docs/fleet.md`` explains what is real and what is
simulated. ``python -m bench.bench_fleet [--agents 1000] [--workers 4] ...`` takes the options
of ``bench.fleet_sim``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.fleet_sim import parse_args, simulate
from bench.report import BenchResult, Measure, Target, report

NOTES = """What bounds the time to all is the simulated agents (Python paho, a SHA-256 per block
and a decrypt per device, several agent processes sharing the host's cores), not the broker:
compare its CPU share. Real devices each bring their own CPU, so a stage is then bound by the
broker's fan-out and each device's link. See `docs/fleet.md` for what is simulated and for how
the design scales past one broker."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rollout = simulate(args, args.fail_rate, 2, args.max_failures)
    abort = simulate(args, args.abort_fail_rate, 2, args.max_failures)
    bundle_mb = rollout["bundle_bytes"] / 1e6
    delivered = rollout["installed"] + rollout["rejected"]
    return report(
        BenchResult(
            key="fleet",
            title=f"Fleet: staged rollout of a {args.model_mb} MB model to {args.agents} agents",
            command=f"python -m bench.bench_fleet --agents {args.agents} --workers "
            f"{args.workers} --canary {args.canary} --batch {args.batch} --max-failures "
            f"{args.max_failures} --fail-rate {args.fail_rate} --abort-fail-rate "
            f"{args.abort_fail_rate}",
            setup=f"One mosquitto; {args.agents} simulated agents in {args.workers} processes "
            "running the device's command, verification, transfer and partial-file code; the "
            f"real `edge-fleet rollout` logic; a {bundle_mb:.1f} MB bundle of "
            f"{rollout['blocks']} blocks encrypted once to a group key. Rollout: "
            f"{rollout['installed']} installed, {rollout['rejected']} rejected "
            f"({rollout['expected_failures']} injected), decision {rollout['decision']}. Abort "
            f"run: {abort['reason']}; {abort['rolled_back']} installed canaries rolled back.",
            measures=[
                Measure(
                    "time to canary (upload + canary stage)", "s", [rollout["time_to_canary_s"]]
                ),
                Measure("time to all", "s", [rollout["time_to_end_s"]]),
                Measure(
                    "bundle bytes delivered to devices per second, whole rollout",
                    "MB/s",
                    [delivered * bundle_mb / rollout["time_to_end_s"]],
                ),
                Measure(
                    "broker CPU during the rollout", "% of one core", [rollout["broker_cpu_pct"]]
                ),
                Measure(
                    "broker peak RSS during the rollout", "MB", [rollout["broker_peak_rss_mb"]]
                ),
                Measure(
                    "broker RSS with every agent connected, before the rollout",
                    "MB",
                    [rollout["broker_rss_connected_mb"]],
                ),
                Measure(
                    "abort path: upload → abort decided → rollbacks confirmed",
                    "s",
                    [abort["time_to_end_s"]],
                    digits=2,
                ),
                Measure(
                    "abort path: devices left on the aborted release",
                    "",
                    [len(abort["still_installed"]) + abort["installed"]],
                    target=Target(0, at_least=False, on_ratio=False),
                    digits=0,
                ),
            ],
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
