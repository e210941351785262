"""``make demo``: the whole path on the bundled sample model, step by step, in about a minute.

1. convert the digits Keras model to full-integer int8 with real calibration data, check it
   against Keras on held-out digits, and print the report;
2. make the keys (release signing key, device key) and a signed, encrypted bundle with the same
   commands an operator uses (``edge-convert keygen``, ``edge-agent keygen``,
   ``edge-convert bundle``);
3. write a sample video of real handwritten digits (scikit-learn's digits data set);
4. start a broker on a free local port: mosquitto when installed, else amqtt (pure Python);
5. run ``edge-agent run`` as its own process on that video and print its results as an
   independent MQTT subscriber receives them;
6. stop the agent with SIGTERM (as systemd does), show its retained ``offline`` availability,
   and stop the broker.

Run from the repository root: ``.venv/bin/python -m agent.demo [--out DIR] [--results N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.demobroker import DemoBroker
from agent.fsutil import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "models" / "digits"
DEVICE_ID = "demo-pi"
PREFIX = "edge"
VIDEO_FPS = 10.0
AGENT_START_S = 60.0
STOP_S = 20.0


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def convert_step(out: Path) -> Path:
    """Convert the sample model to int8 in ``out``; print the report; return the .tflite path."""
    # The converter is a workstation tool; import it only when the demo runs (never on a device).
    from convert.api import ConvertOptions, check_accuracy, convert_keras
    from convert.report import format_table

    options = ConvertOptions(
        quantize="int8",
        representative=DIGITS / "calibration.npz",
        validate=DIGITS / "heldout.npz",
        max_accuracy_drop=1.0,
        labels=tuple((DIGITS / "labels.txt").read_text().split()),
        progress=lambda message: _say(f"  {message}"),
    )
    _say("step 1: convert models/digits/digits.keras to int8 and validate it against Keras")
    result = convert_keras(DIGITS / "digits.keras", out / "digits_int8.tflite", options)
    atomic_write(out / "digits_int8.json", result.metadata.to_json())
    if result.canary is not None:
        atomic_write(out / "digits_int8_canary.npz", result.canary.to_npz())
    print(format_table(result.report))
    check_accuracy(result.validation, options.max_accuracy_drop)
    _say(f"step 1 done: {result.tflite_path} ({result.report['size_ratio']:.2f}x float32)")
    return result.tflite_path


def _tool(module: str, *args: str) -> str:
    """Run one of our CLIs exactly as an operator would; show the command and its output."""
    shown = {"convert.cli": "edge-convert", "agent.cli": "edge-agent"}[module]
    _say(f"  $ {shown} {' '.join(args)}")
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, check=False
    )
    for line in (done.stdout + done.stderr).splitlines():
        _say(f"    {line}")
    if done.returncode != 0:
        raise SystemExit(f"demo: {shown} {args[0]} failed with exit code {done.returncode}")
    return done.stdout


def bundle_step(out: Path, tflite: Path) -> Path:
    """Release key, device key, and the signed + encrypted bundle (release counter 1)."""
    _say("step 2: keys and a signed, encrypted model bundle")
    keys = out / "keys"
    _tool("convert.cli", "keygen", "--out", str(keys), "--name", "release")
    _tool("agent.cli", "keygen", "--out", str(keys), "--device-id", DEVICE_ID, "--name", "device")
    bundle = out / "digits-1.edgepkg"
    _tool(
        "convert.cli", "bundle", str(tflite), "--name", "digits", "--version", "1",
        "--signing-key", str(keys / "release.key"), "--recipient", str(keys / "device.pub"),
        "--metadata", str(out / "digits_int8.json"),
        "--canary", str(out / "digits_int8_canary.npz"),
        "--labels", str(DIGITS / "labels.txt"), "-o", str(bundle),
    )  # fmt: skip
    _say(f"step 2 done: {bundle.name} is signed by release.key and readable only by {DEVICE_ID}")
    return bundle


def video_step(out: Path) -> Path:
    from convert.samples import digit_frames, write_video

    _say("step 3: a sample video of real handwritten digits (scikit-learn's digits data set)")
    frames, labels = digit_frames(60, side=64)
    video = write_video(out / "digits.avi", frames, VIDEO_FPS)
    _say(f"step 3 done: {video.name}, {len(frames)} frames at {VIDEO_FPS:g} fps, digits "
         f"{' '.join(str(int(d)) for d in labels[:12])} ...")  # fmt: skip
    return video


def write_config(out: Path, broker: DemoBroker, bundle: Path, video: Path) -> Path:
    keys = out / "keys"
    text = f"""# written by the demo; see docs/configuration.md
device_id = "{DEVICE_ID}"
state_dir = "{out / "state"}"

[mqtt]
url = "{broker.url}"
topic_prefix = "{PREFIX}"
protocol = "{"5" if broker.kind == "mosquitto" else "3.1.1"}"
reconnect_min_s = 0.2
reconnect_max_s = 2.0

[keys]
trusted_keys = ["{keys / "release.pub"}"]
device_key = "{keys / "device.key"}"

[model]
bundle = "{bundle}"
threads = 1

[source]
type = "video"
path = "{video}"
loop = true

[output]
top_k = 2

[status]
interval_s = 2
"""
    path = out / "edge-agent.toml"
    path.write_text(text)
    return path


@dataclass
class Watcher:
    """An independent MQTT client that prints results and remembers what it saw."""

    broker: DemoBroker
    limit: int
    printed: int = 0
    availability: str = ""

    def __post_init__(self) -> None:
        self.enough = threading.Event()
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        topic = message.topic
        if topic.endswith("/availability"):
            self.availability = message.payload.decode(errors="replace")
            print(f"  [{topic}] {self.availability}", flush=True)
        elif topic.endswith("/results"):
            with self.lock:
                if self.printed >= self.limit:
                    self.enough.set()
                    return
                self.printed += 1
            print(f"  [{topic}] {_describe(bytes(message.payload))}", flush=True)

    def wait(self, timeout: float, agent_log: Path) -> None:
        if not self.enough.wait(timeout):
            raise SystemExit(f"demo: no results within {timeout:g} s; see {agent_log}")

    def wait_offline(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.availability != "offline":
            time.sleep(0.05)
        return self.availability == "offline"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _describe(payload: bytes) -> str:
    result = json.loads(payload)
    classes = result["outputs"].get("classes", [])
    top = ", ".join(f"{c['label']} ({c['score']:.2f})" for c in classes)
    model = result["model"]
    return (f"seq {result['seq']:>4}  {model['name']} v{model['version']}  "
            f"digit {top or '-'}  {result['latency_ms']:.1f} ms")  # fmt: skip


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    _say(f"  $ edge-agent run --config {config}   (log: {log})")
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def stop_agent(agent: subprocess.Popen[bytes]) -> int:
    if agent.poll() is not None:
        return agent.returncode
    agent.send_signal(signal.SIGTERM)
    try:
        return agent.wait(STOP_S)
    except subprocess.TimeoutExpired:
        agent.kill()
        return agent.wait(STOP_S)


def run_demo(out: Path, results: int, prefer_mosquitto: bool = True) -> int:
    tflite = convert_step(out)
    bundle = bundle_step(out, tflite)
    video = video_step(out)
    broker = DemoBroker(out / "broker", prefer_mosquitto=prefer_mosquitto)
    _say(f"step 4: start a local MQTT broker ({broker.kind})")
    cleanup: list[Callable[[], object]] = [broker.stop]
    try:
        broker.start()
        _say(f"step 4 done: {broker.kind} listening on {broker.url}")
        config = write_config(out, broker, bundle, video)
        return _serve(out, broker, config, results, cleanup)
    finally:
        for action in reversed(cleanup):
            action()


def _serve(
    out: Path, broker: DemoBroker, config: Path, results: int, cleanup: list[Callable[[], object]]
) -> int:
    _say(f"step 5: run the agent on the video; results as an MQTT subscriber sees them "
         f"on {PREFIX}/{DEVICE_ID}/results")  # fmt: skip
    watcher = Watcher(broker, limit=results)
    cleanup.append(watcher.close)
    log = out / "agent.log"
    agent = start_agent(config, log)
    cleanup.append(lambda: stop_agent(agent))
    watcher.wait(AGENT_START_S, log)
    _say(f"step 5 done: {watcher.printed} results received")
    _say("step 6: stop the agent with SIGTERM (what systemd sends) and the broker")
    code = stop_agent(agent)
    offline = watcher.wait_offline(10.0)
    _say(f"step 6 done: agent exit code {code}; availability {'offline' if offline else '?'}")
    if code != 0 or not offline:
        raise SystemExit(f"demo: the agent did not stop cleanly; see {log}")
    _say("all done: converted, signed, encrypted, served over MQTT, stopped cleanly")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.demo", description=__doc__)
    parser.add_argument("--out", type=Path, help="keep the outputs here (default: a temp dir)")
    parser.add_argument("--results", type=int, default=20, help="results to show (default 20)")
    parser.add_argument(
        "--broker", choices=("auto", "amqtt"), default="auto",
        help="auto: mosquitto when installed, else amqtt; amqtt: always the Python broker",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.monotonic()
    prefer_mosquitto = args.broker == "auto"
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        code = run_demo(args.out.resolve(), args.results, prefer_mosquitto)
    else:
        with tempfile.TemporaryDirectory(prefix="edge-demo-") as tmp:
            code = run_demo(Path(tmp), args.results, prefer_mosquitto)
    _say(f"finished in {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
