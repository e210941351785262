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
6. push release 2 of the model mid-run with ``edge-fleet push`` (retained bundle blocks and a
   signed desired-state command over the same broker): the agent downloads, verifies, runs the
   canary in a separate process and hot-swaps between two inferences; the results switch from
   v1 to v2 with no gap in their sequence numbers;
7. stop the agent with SIGTERM (as systemd does), show its retained ``offline`` availability,
   and stop the broker.

Run from the repository root: ``.venv/bin/python -m demo.run [--out DIR] [--results N]``.
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
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.fsutil import atomic_write
from demo.broker import DemoBroker

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
DEVICE_ID = "demo-pi"
PREFIX = "edge"
VIDEO_FPS = 10.0
AGENT_START_S = 60.0
STOP_S = 20.0
PUSH_TIMEOUT_S = 120.0


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def convert_step(out: Path) -> Path:
    """Convert the sample model to int8 in ``out``; print the report; return the .tflite path."""
    # The converter loads TensorFlow: import it only when this step runs.
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
    shown = {
        "convert.cli": "edge-convert",
        "agent.cli": "edge-agent",
        "fleet.cli": "edge-fleet",
    }[module]
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
    _tool("fleet.cli", "keygen", "--out", str(keys), "--name", "fleet")
    bundle = make_bundle(out, tflite, 1)
    _say(f"step 2 done: {bundle.name} is signed by release.key and readable only by {DEVICE_ID}")
    return bundle


def make_bundle(out: Path, tflite: Path, version: int) -> Path:
    keys = out / "keys"
    bundle = out / f"digits-{version}.edgepkg"
    _tool(
        "convert.cli", "bundle", str(tflite), "--name", "digits", "--version", str(version),
        "--signing-key", str(keys / "release.key"), "--recipient", str(keys / "device.pub"),
        "--metadata", str(out / "digits_int8.json"),
        "--canary", str(out / "digits_int8_canary.npz"),
        "--labels", str(DIGITS / "labels.txt"), "-o", str(bundle),
    )  # fmt: skip
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
fleet_keys = ["{keys / "fleet.pub"}"]

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
    """An independent MQTT client that prints what a subscriber sees and checks the sequence.

    It prints the next ``show(n)`` results, every result from a model version it has not seen
    yet, availability changes, and the ``update`` state of the status whenever it changes.
    """

    broker: DemoBroker
    availability: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.shown = threading.Event()
        self.to_show = 0
        self.seqs: list[int] = []
        self.versions: list[str] = []
        self.update_state = ""
        self.last: dict[str, Any] | None = None
        self.printed_seq = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()

    def show(self, count: int) -> None:
        with self.lock:
            self.to_show = count
            self.shown.clear()

    def _on_message(self, _c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        if topic.endswith("/availability"):
            self.availability = payload.decode(errors="replace")
            print(f"  [{topic}] {self.availability}", flush=True)
        elif topic.endswith("/results"):
            batch = json.loads(payload)  # one result, or {"v": 1, "batch": [...]} (a backlog)
            for result in batch.get("batch", [batch]):
                self._result(topic, result)
        elif topic.endswith("/status"):
            self._status(topic, payload)

    def _result(self, topic: str, result: dict[str, Any]) -> None:
        version = str(result["model"]["version"])
        with self.lock:  # printing under the lock keeps the lines in order
            self.seqs.append(int(result["seq"]))
            swapped = bool(self.versions) and version not in self.versions
            if version not in self.versions:
                self.versions.append(version)
            if swapped and self.last is not None and self.last["seq"] != self.printed_seq:
                print(f"  [{topic}] {_describe(self.last)}   (last result of the old model)")
            if swapped:
                print(f"  [{topic}] {_describe(result)}   <- the new model, hot-swapped")
                self.printed_seq = int(result["seq"])
            elif self.to_show > 0:
                print(f"  [{topic}] {_describe(result)}", flush=True)
                self.printed_seq = int(result["seq"])
            if self.to_show > 0:
                self.to_show -= 1
                if self.to_show == 0:
                    self.shown.set()
            self.last = result

    def _status(self, topic: str, payload: bytes) -> None:
        update = json.loads(payload).get("update") or {}
        state = update.get("state", "")
        if state and state != "idle":
            label = state
            if state == "downloading":
                label = f"downloading ({update['blocks_held']} of {update['blocks']} blocks)"
            elif update.get("reason"):
                label = f"{state}:{update['reason']}"
            if label != self.update_state:
                self.update_state = label
                name, counter = update.get("name"), update.get("counter")
                print(f"  [{topic}] update {name} release {counter}: {label}", flush=True)

    def wait_shown(self, timeout: float, agent_log: Path) -> None:
        if not self.shown.wait(timeout):
            raise SystemExit(f"demo: not enough results within {timeout:g} s; see {agent_log}")

    def gaps(self) -> list[int]:
        """Sequence numbers missing between the first and the last result received."""
        with self.lock:
            seen = set(self.seqs)
        return [n for n in range(min(seen), max(seen) + 1) if n not in seen] if seen else []

    def wait_offline(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.availability != "offline":
            time.sleep(0.05)
        return self.availability == "offline"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _describe(result: dict[str, Any]) -> str:
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
    watcher = Watcher(broker)
    cleanup.append(watcher.close)
    watcher.show(results)
    log = out / "agent.log"
    agent = start_agent(config, log)
    cleanup.append(lambda: stop_agent(agent))
    watcher.wait_shown(AGENT_START_S, log)
    _say(f"step 5 done: {results} results from release 1 shown")
    push_step(out, broker)
    watcher.show(results)
    watcher.wait_shown(AGENT_START_S, log)
    gaps = watcher.gaps()
    _say(f"step 6 done: results went from v1 to v{watcher.versions[-1]}; "
         f"{len(watcher.seqs)} results, sequence {min(watcher.seqs)}..{max(watcher.seqs)}, "
         f"{'no gap' if not gaps else f'gaps at {gaps[:10]}'}")  # fmt: skip
    if watcher.versions[-1] != "2" or gaps:
        raise SystemExit(f"demo: the hot swap did not go as expected; see {log}")
    _say("step 7: stop the agent with SIGTERM (what systemd sends) and the broker")
    code = stop_agent(agent)
    offline = watcher.wait_offline(10.0)
    _say(f"step 7 done: agent exit code {code}; availability {'offline' if offline else '?'}")
    if code != 0 or not offline:
        raise SystemExit(f"demo: the agent did not stop cleanly; see {log}")
    _say("all done: converted, signed, encrypted, served over MQTT, hot-swapped, stopped cleanly")
    return 0


def push_step(out: Path, broker: DemoBroker) -> None:
    _say("step 6: push release 2 while the agent runs (retained blocks + signed command)")
    bundle = make_bundle(out, out / "digits_int8.tflite", 2)
    protocol = "5" if broker.kind == "mosquitto" else "3.1.1"
    _tool(
        "fleet.cli", "push", str(bundle), "--device", DEVICE_ID, "--url", broker.url,
        "--fleet-key", str(out / "keys" / "fleet.key"), "--protocol", protocol,
        "--wait", "--timeout", str(int(PUSH_TIMEOUT_S)),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
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
