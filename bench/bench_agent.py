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
import os
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
#: What the agent must publish for each model (its decoder's output), checked on every run.
OUTPUTS = {"coco_ssd": "detections", "selfie": "mask", "mobilenet": "classes"}
#: Frames of the unthrottled video per model: a few seconds of each at 1 thread on this host.
FRAMES = {"coco_ssd": 300, "selfie": 900, "mobilenet": 600}
PACED_FRAMES, FPS = 150, 15.0
Runs = dict[str, list[dict[str, Any]]]

NOTES = """
What is measured. For each model and interpreter thread count, three processes run back to
back in every run, the order rotated from run to run (`bench/interleave.py`), all on the same
`.tflite` with the same `num_threads`:

- **bare**: `Interpreter.invoke` in a loop for 3 s on one all-zero tensor, timed in-process. It
  decodes nothing, pre-processes nothing and publishes nothing: the limit.
- **user script**: `bench/user_script.py`, what a user writes instead of the agent:
  `cv2.VideoCapture` on the video, `cv2.resize` + `cvtColor` + normalise/quantize,
  `set_tensor`/`invoke`/`get_tensor`, a small JSON (SSD boxes ≥ 0.5, the mask's person share,
  top-1), paho `publish(qos=1)`. One loop, no capture thread, no store.
- **agent**: `edge-agent run` with a config naming a bundle made the BYOM way (docs/byom.md):
  `edge-convert bundle` on the file as fetched (the SSD with `--labels coco_labels.txt`, the
  segmenter with its own NormalizationOptions and label file; MobileNetV2 with our converter's
  `metadata.json`). It publishes the SSD's labelled detections and the segmenter's 32×32 bit
  mask with its segments, each result through its SQLite outbox at QoS 1 (every run checks
  that `detections`, `mask` or `classes` arrived, so a wrong decoder fails the bench). The
  bench reads nothing inside the agent: config in, messages out.

Script and agent publish to a private mosquitto; an independent paho subscriber counts what
arrives. Results/s is (n − 1) ÷ (last − first arrival), so start-up is not in it. Every ratio
is taken within one run, and the median of the per-run ratios is reported (the table lists each
run's). CPU time per result is the process's user + system time over the same span ÷ results:
it moves much less with the host's load than results/s, so read it when the rates are noisy.

Targets (issue 14): at 1 interpreter thread (a core left free, as with 3 threads on a 4-core
Pi), agent ÷ bare ≥ 0.95 (SSD), ≥ 0.9 (segmenter); agent ÷ script ≥ 1.05 (SSD), ≥ 1.4
(segmenter); with threads = cores (2), agent ≥ script. MobileNetV2 is shown without a target.
Digits is gone from this section: its invoke takes µs, so any per-result cost dominates and
the ratio says nothing (`python -m bench.frame_work --model digits` still counts its work).

How to read the misses:
- **Host noise first.** The host is a 2-core VM shared with other jobs: the bare SSD loop ran at
  29-68 /s within one run set, and ratios above 1 (agent faster than the bare loop) happen when
  the load changed between the two. A miss in one run only is noise; a miss in every run, with
  the agent's CPU per result well above the script's, is the agent.
- **agent ÷ bare at 1 thread.** The second core is free for the capture thread's decode, so the
  ceiling is what stays on the inference thread: pre-processing (resize, colour, quantize),
  output decoding, JSON, the outbox insert and delete, the hand-off to paho. That is about
  0.5-1 ms against an invoke of ≈ 17 ms (SSD) and ≈ 3.3 ms (segmenter), so 0.95 is reachable
  for the SSD while the segmenter's 0.9 leaves ≈ 0.35 ms per frame, which the float 256×256
  normalise and the mask packing alone nearly spend.
- **agent ÷ script at 1 thread.** The script decodes on its only thread, so the agent can gain
  at most that decode (FFmpeg MJPG 640×480 ≈ 1.75 ms; the agent decodes the JPEG at the smallest
  scale covering the model input, ≈ 0.8-1 ms) plus the script's own resize, less what the outbox
  costs: about (17 + 2.3) ÷ 17 ≈ 1.13 for the SSD, and for the segmenter (3.3 + 2.3) ÷ 3.3 ≈
  1.7 only if the agent's loop adds nothing to the invoke. Below 1 means the agent's inference
  thread does more per frame than the whole script does (the `staged` work moves stages off it).
- **Where the agent's inference thread goes** (py-spy, 1 thread, 600 frames, 2026-12-01, share
  of the main thread's busy samples): SSD — `invoke` 81 %, `_resize` (agent/pipeline/
  preprocess.py) 7 %, paho publish 1.4 %, JSON 1.1 %, outbox 0.9 %; segmenter — `invoke` 41 %,
  `_resize` 23 %, the segmentation decoder (`class_map` + `segments`) 11 %, the normalisation
  LUT 5 %. 640×480 → 300×300 or 256×256 takes `_resize`'s 2×1 `INTER_AREA` decimation
  (640→320 wide, 480 kept high) and then a linear pass: on this thread that costs more than the
  script's single `INTER_LINEAR` resize, and the JPEG is decoded at full size because half size
  (320×240) does not cover 300 or 256 rows. Single-threaded on this host, 640×480 → 300×300:
  `_resize` 1.5 ms, `cv2.resize` `INTER_LINEAR` 0.16 ms; → 256×256: 1.1 ms against 0.21 ms;
  → 224×224 (an exact 2× decimation): 0.17 ms against 0.10 ms — which is why MobileNetV2 does
  not show the gap. (Since measured: unequal factors now halve by `INTER_LINEAR` — the same
  block mean — and 640×480 → 256×256 / 300×300 takes 0.43 / 0.42 ms.) CPU per result (same
  runs): SSD bare 16.9 ms, script 18.7 ms, agent 21.2 ms.
- **2 threads.** Both sides' interpreters hold both cores; the agent's capture thread then
  competes with them, so agent ≥ script is the target there, not more.
- **Latency p99.** Beyond the invoke: pre-processing, the outbox, and the MQTT hop (agent's paho
  thread, mosquitto, the subscriber's paho thread: three context switches), plus scheduling
  delay. The "host p99 lateness" row is the floor this VM puts under any p99 (a plain 1 ms sleep
  loop run right after each paced run); while it is several ms the ≤ 3 ms target cannot be
  judged here (a quiet host measured 2.72 ms in an earlier session).
- **RSS.** Over the bare process the agent carries OpenCV's libraries (≈ 55 MB of mapped,
  touched pages: cv2 34 MB, libavcodec 10 MB, libavformat 2.7 MB, its own OpenBLAS and
  OpenSSL), cryptography ≈ 12 MB, paho/sqlite/agent modules and heap ≈ 17 MB; the user
  script has OpenCV and paho but no cryptography or store. ≤ 40 MB needs frames decoded without
  OpenCV: the agent's own MJPEG readers (`agent/sources/mjpeg_file.py`: a `video` source whose
  path is `.mjpeg`/`.mjpg`, or `.avi` when OpenCV is not installed; `mjpeg_http` for HTTP) on
  a device install without the `video` extra (docs/inference.md, "Without OpenCV"); in the dev
  venv `EDGE_AGENT_OPENCV=off python -m bench.bench_agent --video mjpeg` runs the agent that
  way (it then never imports cv2). Measured so (2026-12-01, `--runs 1 --models
  mobilenet,selfie --threads 2 --scale 0.5 --no-paced`, load 3-5): MobileNetV2 35.4 MB over
  the bare process, selfie 39.8 MB; cold start 0.49 / 0.37 s.
- **Install size.** A fresh venv with the device wheel (`scripts/device_wheel.py`) and the given
  extras, on disk; "video costs" is the difference: `[device]` against `[device,video]` (OpenCV
  is the `video` extra; `--video-extra ''` measures an extras set that holds OpenCV by
  uninstalling it again). Takes ≈ 30 s with a warm pip cache
  (it needs PyPI); `--no-install-size` skips it.
- **Cold start** is process spawn → first result at the subscriber: interpreter start, imports,
  bundle verification and decryption, model load, first frame.

Full run: `python -m bench agent` (`make bench BENCH=agent`): 3 runs, 3 models, threads 1 and
2, full-length videos, the install sizes; ≈ 10 min on this 2-core host (9.3 min measured at
load 2-5, plus ≈ 30 s for the two venvs). `--scale 0.5` halves the videos (≈ 5 min quiet,
estimated; it took 9.7 min at load 11). With the OpenCV-free MJPEG source: `--video mjpeg
--source TYPE`.
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
        _check_outputs(case.name, out["agent"][-1])
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


def _check_outputs(name: str, run: dict[str, Any]) -> None:
    """The agent decoded the model as it should (not raw tensors, not nothing)."""
    if OUTPUTS[name] not in run["outputs"]:
        raise RuntimeError(
            f"edge-agent published {run['outputs']} for {name}, not {OUTPUTS[name]!r}: "
            "the bundle's decoder is not the one this model needs"
        )


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
    agents = got["agent"]
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
    parser.add_argument(
        "--video-extra",
        default="video",
        help="the extra that adds OpenCV ('' when the base extras hold it: then it is removed)",
    )
    return parser


def _load_caveat() -> str:
    """A warning in the section when other work was running: the rates are then noisy."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load < 0.5 * cores:
        return ""
    return (
        f" **The host was busy (load average {load:.1f} on {cores} cores at the end):** rates "
        "and ratios here are noisy; the CPU time per result rows are the steadier figures."
    )


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
            "go back to back, the order rotated per run." + _load_caveat(),
            measures=measures,
            plots=out.plots,
            extra="\n\n".join(filter(None, [ratio_table(out.rows), install_note])),
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
