"""The agent against the bare interpreter and against the script a user would write (issue 14).

For the Coral COCO SSD (uint8 300×300), the MediaPipe selfie segmenter (float 256×256) and a
random-weight int8 MobileNetV2, on 640×480 MJPEG video, three processes run back to back in each
run (the order rotated per run), with the same ``.tflite`` and the same interpreter threads:

* ``bare``: the ``Interpreter.invoke`` loop on one all-zero tensor (the limit);
* ``script``: ``bench/user_script.py`` (cv2 decode + resize + invoke + paho QoS 1, one loop);
* ``agent``: ``edge-agent run`` on a bundle made by ``edge-convert bundle`` (docs/byom.md).

Results/s of script and agent are counted at an independent paho subscriber. Reported: the
median of the per-run ratios agent ÷ bare and agent ÷ script; at the first thread count also
p99 frame→publish − invoke p50 (paced video) beside the host's own p99 lateness, RSS over the
bare process, cold start; and the device install with and without video (``install_size``).

    python -m bench.bench_agent [--runs 3] [--models coco_ssd,selfie,mobilenet] [--threads 1,2]
        [--video avi|mjpeg] [--source video] [--scale 1.0] [--no-install-size] [--video-extra video]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import agent_runs
from bench.agent_cases import MODELS, VIDEO_FORMATS, Case, prepare, write_video
from bench.agent_models import photo_frames
from bench.interleave import Row, order, per_run_ratios, ratio_table
from bench.report import BenchResult, Measure, Plot, Target, plot_path, report

#: (agent ÷ bare, agent ÷ script) at the first thread count; at more threads agent ≥ script.
TARGETS: dict[str, tuple[float | None, float | None]] = {
    "coco_ssd": (0.95, 1.05),
    "selfie": (0.9, 1.4),
    "mobilenet": (None, None),
}
#: Frames of the unthrottled video per model: a few seconds of each at 1 thread on this host.
FRAMES = {"coco_ssd": 300, "selfie": 900, "mobilenet": 600}
PACED_FRAMES, FPS = 150, 15.0
Runs = dict[str, list[dict[str, Any]]]

NOTES = """
(written below)
"""


def _side(side: str, case: Case, work: Path, threads: int, source: str) -> dict[str, Any]:
    if side == "bare":
        return agent_runs.bare(case, threads)
    if side == "script":
        return agent_runs.script(case, work, threads)
    return agent_runs.agent(case, work, threads, realtime=False, source=source)


def _interleaved(case: Case, work: Path, threads: int, runs: int, source: str) -> Runs:
    """Every side once per run, back to back, in :func:`bench.interleave.order`."""
    out: Runs = {"bare": [], "script": [], "agent": []}
    for r in range(runs):
        for side in order(r):
            out[side].append(_side(side, case, work / f"t{threads}-r{r}-{side}", threads, source))
        rates = {side: out[side][-1]["per_s"] for side in out}
        print(
            f"{case.name} threads={threads} run {r}: "
            + ", ".join(f"{side} {rate:.1f}/s" for side, rate in rates.items())
            + f"; agent÷bare {rates['agent'] / rates['bare']:.3f}"
            + f", agent÷script {rates['agent'] / rates['script']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    return out


def _paced(case: Case, work: Path, threads: int, runs: int, source: str) -> list[dict[str, Any]]:
    paced = []
    for r in range(runs):
        run = agent_runs.agent(case, work / f"paced-r{r}", threads, realtime=True, source=source)
        run["host_p99_ms"] = agent_runs.host_jitter_ms()
        paced.append(run)
    return paced


def _values(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs]


def _ratio_measures(
    label: str, got: Runs, targets: tuple[float | None, float | None]
) -> list[Measure]:
    agent = _values(got["agent"], "per_s")
    measures = []
    for side, bound in zip(("bare", "script"), targets, strict=True):
        name = "bare invoke loop" if side == "bare" else "user script"
        measures.append(
            Measure(
                f"{label}: agent ÷ {name} results/s (per-run ratios)",
                "",
                per_run_ratios(agent, _values(got[side], "per_s")),
                target=None if bound is None else Target(bound, on_ratio=False),
                digits=2,
            )
        )
    return measures


def _detail_measures(name: str, got: Runs, paced: list[dict[str, Any]]) -> list[Measure]:
    bare_p50 = statistics.median(_values(got["bare"], "p50_ms"))
    bare_rss = statistics.median(_values(got["bare"], "rss"))
    agents = got["agent"] + paced
    measures = [
        Measure(f"{name}: bare invoke p50", "ms", _values(got["bare"], "p50_ms"), digits=3),
        *(
            Measure(
                f"{name}: {side} CPU time per result (all threads)",
                "ms",
                _values(got[side], "cpu_ms"),
                _values(got["bare"], "cpu_ms"),
                "bare per invoke",
                digits=2,
            )
            for side in ("script", "agent")
        ),
        Measure(
            f"{name}: agent RSS − bare RSS",
            "MB",
            [(rss - bare_rss) / 1e6 for rss in _values(agents, "rss")],
            target=Target(40.0, at_least=False, on_ratio=False),
        ),
        Measure(
            f"{name}: user script RSS − bare RSS",
            "MB",
            [(rss - bare_rss) / 1e6 for rss in _values(got["script"], "rss")],
        ),
        Measure(
            f"{name}: agent cold start → first result",
            "s",
            _values(agents, "cold_start_s"),
            target=Target(1.0, at_least=False, on_ratio=False),
            digits=2,
        ),
        Measure(
            f"{name}: user script cold start → first result",
            "s",
            _values(got["script"], "cold_start_s"),
            digits=2,
        ),
    ]
    if paced:
        measures += [
            Measure(
                f"{name}: p99 frame→publish − invoke p50 (paced at {FPS:g} fps)",
                "ms",
                [p99 - bare_p50 for p99 in _values(paced, "p99_ms")],
                target=Target(3.0, at_least=False, on_ratio=False),
                digits=2,
            ),
            Measure(
                f"{name}: host p99 lateness of a 1 ms sleep, right after each paced run",
                "ms",
                _values(paced, "host_p99_ms"),
                digits=2,
            ),
            Measure(
                f"{name}: share of the paced video's frames published (newest-frame slot)",
                "",
                _values(paced, "published_share"),
                digits=3,
            ),
        ]
    return measures


def _install_measures(base: str, video_extra: str) -> tuple[list[Measure], str]:
    """The two device installs' sizes, or none and why (pip could not reach PyPI, say)."""
    from bench.install_size import measure

    try:
        sizes = measure(base, video_extra)
    except RuntimeError as exc:
        print(f"install size not measured: {exc}", file=sys.stderr, flush=True)
        return [], f"Device install size not measured: {str(exc).splitlines()[0]}"
    (without, without_bytes), (with_, with_bytes) = sizes.items()
    return [
        Measure(f"device install {without} (venv on disk)", "MB", [without_bytes / 1e6]),
        Measure(f"device install {with_} (venv on disk)", "MB", [with_bytes / 1e6]),
        Measure("device install: video costs", "MB", [(with_bytes - without_bytes) / 1e6]),
    ], ""


def _latency_plot(name: str, got: Runs, paced: list[dict[str, Any]]) -> Plot:
    from bench.plots import latency_distribution

    path = latency_distribution(
        plot_path(f"agent-latency-{name}.png"),
        {
            "bare Interpreter.invoke": [t for run in got["bare"] for t in run["times_ms"]],
            "agent frame→publish (paced)": [t for run in paced for t in run["latencies_ms"]],
        },
        f"{name}: agent frame→publish latency vs bare invoke",
    )
    return Plot(path, f"{name}: latency distribution, agent vs bare interpreter")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default="1,2", help="interpreter threads, first one detailed")
    parser.add_argument("--video", choices=VIDEO_FORMATS, default="avi")
    parser.add_argument("--source", default="video", help="the agent's [source] type")
    parser.add_argument("--scale", type=float, default=1.0, help="video length factor")
    parser.add_argument("--no-paced", action="store_true", help="skip the latency runs")
    parser.add_argument(
        "--no-install-size", action="store_true", help="skip the two device venvs (~30 s, PyPI)"
    )
    parser.add_argument("--base-extras", default="device")
    parser.add_argument("--video-extra", default="", help="e.g. video, once that extra exists")
    return parser


def _command(argv: Sequence[str]) -> str:
    return " ".join(["python -m bench.bench_agent", *argv])


@dataclasses.dataclass
class _Section:
    measures: list[Measure] = dataclasses.field(default_factory=list)
    rows: list[Row] = dataclasses.field(default_factory=list)
    plots: list[Plot] = dataclasses.field(default_factory=list)


def _video(root: Path, stem: str, frames: int, fmt: str) -> Path:
    return write_video(root / f"{stem}.{fmt}", photo_frames(frames), FPS, fmt)


def _model_section(name: str, root: Path, args: argparse.Namespace, out: _Section) -> None:
    """One model at every thread count; latency, RSS and cold start at the first."""
    print(f"preparing {name} ...", file=sys.stderr, flush=True)
    frames = max(30, int(FRAMES[name] * args.scale))
    case = prepare(name, root / name, _video(root, name, frames, args.video), frames, FPS)
    for i, threads in enumerate(int(t) for t in args.threads.split(",")):
        got = _interleaved(case, root / name, threads, args.runs, args.source)
        vs_bare, vs_script = TARGETS[name] if i == 0 else (None, 1.0)
        label = f"{name}, {threads} thread{'s' if threads > 1 else ''}"
        rates = {side: _values(runs, "per_s") for side, runs in got.items()}
        out.rows.append(
            Row(name, threads, rates["bare"], rates["script"], rates["agent"], vs_bare, vs_script)
        )
        out.measures += _ratio_measures(label, got, (vs_bare, vs_script))
        if i:
            continue
        paced: list[dict[str, Any]] = []
        if not args.no_paced:
            count = max(30, int(PACED_FRAMES * args.scale))
            video = _video(root, f"{name}-paced", count, args.video)
            paced_case = dataclasses.replace(case, video=video, frames=count)
            paced = _paced(paced_case, root / name, threads, args.runs, args.source)
            out.plots.append(_latency_plot(name, got, paced))
        out.measures += _detail_measures(label, got, paced)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    out = _Section()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        for name in args.models.split(","):
            _model_section(name, Path(tmp), args, out)
    measures = out.measures
    install_note = ""
    if not args.no_install_size:
        sizes, install_note = _install_measures(args.base_extras, args.video_extra)
        measures += sizes
    return report(
        BenchResult(
            key="agent",
            title="Agent: the service against the bare interpreter and a user's script",
            command=_command(argv),
            setup=f"Video: 640×480 scikit-image photos, {args.video.upper()} "
            f"(agent source `{args.source}`), read unthrottled for results/s "
            f"({', '.join(f'{m} {FRAMES[m]}' for m in MODELS)} frames × {args.scale:g}); "
            f"latency on {PACED_FRAMES} × {args.scale:g} frames paced at {FPS:g} fps. "
            f"Threads {args.threads} (the first detailed). In each run bare, script and agent "
            "go back to back, the order rotated per run.",
            measures=measures,
            plots=out.plots,
            extra="\n\n".join(filter(None, [ratio_table(out.rows), install_note])),
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
