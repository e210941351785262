"""The agent against the physical limit: the bare ``Interpreter.invoke`` loop on the same model.

For the sample digits model and a MobileNetV2-shaped model (int8, converted by our converter,
bundled, signed and encrypted), the real agent runs as its own process on a video file with a
private mosquitto, and an independent paho subscriber measures:

* results/s (video read unthrottled) ÷ bare invoke loop/s, same model, same threads;
* p99 frame→publish latency (subscriber receipt − capture time, video paced at its fps)
  minus the bare invoke p50;
* agent RSS − bare-interpreter-process RSS;
* cold start: process spawn → first result at the subscriber.

Medians of ``--runs`` runs. ``python -m bench.bench_agent [--runs 3] [--models digits,mobilenet]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from agent.bundle import RecipientKey, Release, build_bundle
from agent.bundle.keys import encode_private, encode_release_public
from agent.schema.meta import ModelMetadata
from bench.report import BenchResult, Measure, Plot, Target, plot_path, report
from convert.api import ConvertOptions, convert_keras
from convert.samples import digit_frames, write_video
from tests.support.broker import MosquittoBroker

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2
DEVICE = "bench-1"

_BARE = r"""
import json, sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
model = open(sys.argv[1], "rb").read()
n, threads = int(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model_content=model, num_threads=threads)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
for _ in range(10):
    it.invoke()
times = []
start = time.perf_counter()
for _ in range(n):
    t = time.perf_counter(); it.invoke(); times.append(time.perf_counter() - t)
total = time.perf_counter() - start
rss = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
ms = [round(t * 1000, 4) for t in times]
print(json.dumps({"per_s": n / total, "p50_ms": float(np.median(ms)), "rss": rss, "times_ms": ms}))
"""


@dataclass
class Case:
    name: str
    tflite: bytes
    metadata: ModelMetadata
    video: Path
    frames: int
    fps: float


def _convert_digits(work: Path) -> tuple[bytes, ModelMetadata]:
    models = ROOT / "models" / "digits"
    result = convert_keras(
        models / "digits.keras",
        work / "digits.tflite",
        ConvertOptions(
            quantize="int8",
            representative=models / "calibration.npz",
            color="gray",
            mean=(0.0,),
            std=(255.0,),
            labels=tuple((models / "labels.txt").read_text().split()),
        ),
    )
    return result.tflite_path.read_bytes(), result.metadata


def _convert_mobilenet(work: Path) -> tuple[bytes, ModelMetadata]:
    from bench.bench_convert import _calibration_images, _mobilenet

    source = _mobilenet(work)
    images = _calibration_images(work)
    result = convert_keras(
        source,
        work / "mobilenet.tflite",
        ConvertOptions(
            quantize="int8",
            representative=images,
            color="rgb",
            mean=(127.5,),
            std=(127.5,),
        ),
    )
    return result.tflite_path.read_bytes(), result.metadata


def _photo_frames(count: int) -> list[np.ndarray]:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    frames = []
    for i in range(count):
        rgb = photos[i % len(photos)]
        frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480))
        frames.append(np.roll(frame, i * 3, axis=1))
    return frames


def _case(name: str, work: Path) -> Case:
    work.mkdir(parents=True, exist_ok=True)
    if name == "digits":
        tflite, meta = _convert_digits(work)
        images, _ = digit_frames(600, side=64)
        return Case(name, tflite, meta, write_video(work / "digits.avi", images, 30.0), 600, 30.0)
    tflite, meta = _convert_mobilenet(work)
    images = _photo_frames(300)
    return Case(name, tflite, meta, write_video(work / "photos.avi", images, 15.0), 300, 15.0)


def _bare(case: Case, work: Path) -> dict[str, Any]:
    path = work / f"{case.name}.bare.tflite"
    path.write_bytes(case.tflite)
    count = 20000 if case.name == "digits" else 400
    out = subprocess.run(
        [sys.executable, "-c", _BARE, str(path), str(count), str(THREADS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class _Watcher:
    def __init__(self, broker: MosquittoBroker) -> None:
        self.received: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self._client.on_connect = lambda c, *_: c.subscribe(f"edge/{DEVICE}/results", qos=1)
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        time.sleep(0.3)

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((time.time(), bytes(msg.payload)))

    def wait(self, count: int, timeout: float, idle_s: float = 3.0) -> None:
        """Until ``count`` results, or some and nothing new for ``idle_s``.

        A paced camera source keeps only the newest frame, so frames are dropped (and counted
        in status) when the loop, or the host under it, stalls for longer than a frame; how
        many were published is reported, not hidden.
        """
        deadline = time.monotonic() + timeout
        last_len, last_change = 0, time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                got = len(self.received)
            if got >= count:
                return
            now = time.monotonic()
            if got != last_len:
                last_len, last_change = got, now
            elif got and now - last_change > idle_s:
                return
            time.sleep(0.01)
        raise RuntimeError(f"only {len(self.received)} of {count} results arrived")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _device_files(case: Case, work: Path, broker: MosquittoBroker, realtime: bool) -> Path:
    release, device = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    (work / "release.pub").write_bytes(encode_release_public(release.public_key()))
    (work / "device.key").write_bytes(encode_private(device))
    (work / "device.key").chmod(0o600)
    files = {"model.tflite": case.tflite, "metadata.json": case.metadata.to_json()}
    bundle = build_bundle(
        Release(case.name, 1, int(time.time()) - 60, metadata=case.metadata),
        files,
        [release],
        [RecipientKey(DEVICE, device.public_key())],
    )
    (work / "model.edgepkg").write_bytes(bundle)
    config = work / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\nstate_dir = "{work / "state"}"\n'
        f'[mqtt]\nurl = "{broker.url}"\n'
        '[keys]\ntrusted_keys = ["release.pub"]\ndevice_key = "device.key"\n'
        f'[model]\nbundle = "model.edgepkg"\nthreads = {THREADS}\n'
        f'[source]\ntype = "video"\npath = "{case.video}"\n'
        f"realtime = {'true' if realtime else 'false'}\n"
        "[output]\ntop_k = 1\n[status]\ninterval_s = 1.0\n"
    )
    return config


def _peak_rss(pid: int, stop: threading.Event, out: list[int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) * 1024)
        except OSError:
            return
        stop.wait(0.05)


def _host_jitter_ms(seconds: float = 3.0, nap_s: float = 0.001) -> float:
    """p99 of how late a 1 ms sleep wakes up on this host: the scheduling floor under any p99."""
    late: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        time.sleep(nap_s)
        late.append((time.perf_counter() - start - nap_s) * 1000)
    return float(np.percentile(late, 99))


def _agent_run(case: Case, work: Path, *, realtime: bool) -> dict[str, Any]:
    work.mkdir(parents=True)
    broker = MosquittoBroker(work / "broker").start()
    watcher = _Watcher(broker)
    config = _device_files(case, work, broker, realtime)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    spawned = time.time()
    with open(work / "agent.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            env=env,
        )
    stop, rss = threading.Event(), []
    sampler = threading.Thread(target=_peak_rss, args=(process.pid, stop, rss))
    sampler.start()
    try:
        watcher.wait(case.frames, timeout=300)
    finally:
        stop.set()
        sampler.join()
        process.terminate()
        process.wait(30)
        watcher.close()
        broker.close()
    arrivals = [t for t, _ in watcher.received]
    results = [json.loads(p) for _, p in watcher.received]
    latencies = [(t - r["ts"]) * 1000 for t, r in zip(arrivals, results, strict=True)]
    span = arrivals[-1] - arrivals[0]
    return {
        "per_s": (len(arrivals) - 1) / span,
        "p99_ms": float(np.percentile(latencies, 99)),
        "rss": float(max(rss)),
        "cold_start_s": arrivals[0] - spawned,
        "published_share": len(arrivals) / case.frames,
        "latencies_ms": latencies,
    }


NOTES = """
The real `edge-agent run` runs as a process on a video file with a private mosquitto; results
are measured at an independent paho subscriber. The limit is the bare `Interpreter.invoke` loop
on the same int8 model with the same threads, in its own process, feeding the same all-zero
tensor every time: it decodes nothing, pre-processes nothing and stores nothing.

Wall-clock figures on a shared 2-core VM move by 2-10x with the other jobs' load (the bare
MobileNetV2 loop measured 787/s quiet and 76-122/s while four other test suites ran). For a
load-independent view of the work per frame, `python -m bench.frame_work` counts instructions
with callgrind (1 interpreter thread, 40 frames): bare invoke 101 M instructions per frame; the
agent's whole per-frame path (capture-thread decode, resize, colour, quantize table, invoke,
top-k, JSON, SQLite insert + delete) 113 M before this round and 110 M after it (work ratio
0.89 -> 0.915). Caveat: under valgrind XNNPACK runs its AVX2 kernels; natively this CPU uses
AVX-512 VNNI, which makes the invoke several times cheaper per frame while decode and Python
gain little, so the native ratio is lower than the instruction ratio. Thread CPU time per frame
(native): MJPG decode 640×480 by FFmpeg 1.75 ms → 320×240 by libjpeg-turbo 0.8-1.0 ms;
pre-processing 0.44 → 0.28 ms; outbox insert + delete 0.054 → 0.035 ms (4 ms → 0.016 ms with a
20 000-row outage backlog).

How to read the misses:
- **digits ratio.** Each published result costs a fixed amount of time: a video decode, a
  SQLite insert and delete, and an MQTT publish plus PUBACK, well under a millisecond in all.
  The digits model invokes in a few µs, so no durable agent can come near 0.95 on it: the ratio
  is physically meaningless there and only says something for models whose invoke time
  dominates.
- **MobileNetV2 ratio.** On 2 cores held by 2 interpreter threads the capture thread's decode
  cannot overlap the invoke, so the ceiling is interpreter CPU ÷ (interpreter CPU + decode +
  pre-processing + publish): about 2.5 / (2.5 + 0.9 + 0.3 + 0.3) ≈ 0.6 with decode at the
  model's size (it was ≈ 0.45 with full-size decode). ≥ 0.95 needs a core the interpreter does
  not use (e.g. 3 threads on a 4-core Pi with the capture on the fourth), a camera delivering
  frames at the model size, or the Edge TPU (which leaves the CPU to decoding).
- **Latency p99.** The per-frame path adds about 0.3 ms of pre-processing and 0.05 ms of SQLite
  to the invoke; the rest of the p99 is the MQTT hop (agent's paho thread, mosquitto, the
  subscriber's paho thread: three context switches) and, on a shared VM, scheduling delay.
  Full garbage-collector passes (~20 ms each) no longer land on frames: the service freezes its
  start-up objects. The "host p99 lateness" row is the floor this VM puts under any p99: a plain
  `time.sleep(0.001)` loop, run right after each paced run, wakes up that late at its p99
  (2026-11-21: 18 ms p99 and 85 ms max with nothing else running). Per result the agent logged
  stalls of 50-180 ms scattered through the run, the same size as the host's own; while the host
  is this noisy the ≤ 3 ms target cannot be judged here (session 1 measured 2.72 ms on a quieter
  host). It needs a rerun on a quiet machine or a Pi.
- **RSS.** `/proc/PID/smaps` of the agent serving MobileNetV2 from a video: OpenCV's libraries
  are ≈ 55 MB of the difference (cv2.abi3.so 34 MB, libavcodec 10 MB, libavformat 2.7 MB, its
  own OpenBLAS 3.2 MB and OpenSSL 2.6 MB — mostly relocated code and data pages touched at load),
  cryptography ≈ 12 MB (its Rust module and libcrypto), paho/sqlite/agent modules and heap
  ≈ 17 MB. So ≤ 40 MB cannot be met while frames are decoded with OpenCV; a sensor-only agent
  no longer loads OpenCV at all (≈ 35-55 MB less). Decoding MJPEG with Pillow (2.2 MB) and an own
  AVI/MJPEG demuxer would meet it for files and MJPEG streams, but not for V4L2 or H.264.
"""


def _runs(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs]


def _measures(
    case: Case,
    bare: list[dict[str, Any]],
    fast: list[dict[str, Any]],
    paced: list[dict[str, Any]],
) -> list[Measure]:
    bare_p50 = statistics.median(_runs(bare, "p50_ms"))
    bare_rss = statistics.median(_runs(bare, "rss"))
    return [
        Measure(
            f"{case.name}: agent results/s (unthrottled video)",
            "/s",
            _runs(fast, "per_s"),
            _runs(bare, "per_s"),
            "bare invoke loop",
            Target(0.95),
            digits=0,
        ),
        Measure(f"{case.name}: bare invoke p50", "ms", _runs(bare, "p50_ms"), digits=3),
        Measure(
            f"{case.name}: p99 frame→publish − invoke p50 (at {case.fps:g} fps)",
            "ms",
            [p99 - bare_p50 for p99 in _runs(paced, "p99_ms")],
            target=Target(3.0, at_least=False, on_ratio=False),
            digits=2,
        ),
        Measure(
            f"{case.name}: share of the paced video's frames published (newest-frame slot)",
            "",
            _runs(paced, "published_share"),
            digits=3,
        ),
        Measure(
            f"{case.name}: host p99 lateness of a 1 ms sleep, right after each paced run",
            "ms",
            _runs(paced, "host_p99_ms"),
            digits=2,
        ),
        Measure(
            f"{case.name}: agent RSS − bare RSS",
            "MB",
            [(rss - bare_rss) / 1e6 for rss in _runs(paced + fast, "rss")],
            target=Target(40.0, at_least=False, on_ratio=False),
        ),
        Measure(
            f"{case.name}: cold start → first result",
            "s",
            _runs(paced + fast, "cold_start_s"),
            target=Target(2.0, at_least=False, on_ratio=False),
            digits=2,
        ),
    ]


def _latency_plot(name: str, bare: list[dict[str, Any]], paced: list[dict[str, Any]]) -> Plot:
    from bench.plots import latency_distribution

    path = latency_distribution(
        plot_path(f"agent-latency-{name}.png"),
        {
            "bare Interpreter.invoke": [t for run in bare for t in run["times_ms"]],
            "agent frame→publish (paced)": [t for run in paced for t in run["latencies_ms"]],
        },
        f"{name}: agent frame→publish latency vs bare invoke",
    )
    return Plot(path, f"{name}: latency distribution, agent vs bare interpreter")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default="digits,mobilenet")
    args = parser.parse_args(argv)
    measures: list[Measure] = []
    plots: list[Plot] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        root = Path(tmp)
        for name in args.models.split(","):
            print(f"preparing {name} ...", file=sys.stderr, flush=True)
            case = _case(name, root / name)
            bare: list[dict[str, Any]] = []
            fast: list[dict[str, Any]] = []
            paced: list[dict[str, Any]] = []
            for i in range(args.runs):  # interleaved, so a change in load hits both sides
                bare.append(_bare(case, root / name))
                fast.append(_agent_run(case, root / name / f"fast{i}", realtime=False))
                paced.append(_agent_run(case, root / name / f"paced{i}", realtime=True))
                paced[-1]["host_p99_ms"] = _host_jitter_ms()
            measures += _measures(case, bare, fast, paced)
            plots.append(_latency_plot(name, bare, paced))
    return report(
        BenchResult(
            key="agent",
            title="Agent: the service against the bare interpreter",
            command=f"python -m bench.bench_agent --runs {args.runs} --models {args.models}",
            setup=f"threads={THREADS}. digits: 600 frames of 64×64, paced at 30 fps for latency. "
            "mobilenet: MobileNetV2 with `weights=None`, 300 frames of 640×480 scikit-image "
            "photos, paced at 15 fps. Results/s uses the same videos read unthrottled.",
            measures=measures,
            plots=plots,
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
