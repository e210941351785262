"""``edge-agent run`` with OpenCV unimportable (a device without the video extra), end to end.

The agent process gets a ``sitecustomize`` that makes ``import cv2`` fail, so every frame is
read by the OpenCV-free sources, decoded by simplejpeg and pre-processed by numpy; results go to
a real mosquitto and are checked against the digits' labels. ``check-config`` refuses, with exit
code 4, a source that needs the video extra.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from tests.support.agent_env import DEVICE_ID, ROOT, AgentProcess, AgentWorld, hide_opencv
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]


@pytest.fixture
def world(tmp_path: Path, sample_models: ModelFactory, broker: MosquittoBroker) -> AgentWorld:
    return AgentWorld(tmp_path / "device", sample_models("int8"), broker.url)


def _jpegs(world: AgentWorld) -> list[bytes]:
    """The world's digit frames as JPEGs."""
    from convert.samples import digit_frames

    frames, _ = digit_frames(world.frames, side=64)
    return [simplejpeg.encode_jpeg(np.ascontiguousarray(f), 95, "BGR") for f in frames]


def _results(messages: list[Received]) -> list[ResultMessage]:
    return [r for m in messages if m.topic.endswith("/results") for r in results_in(m.payload)]


@pytest.fixture
def no_cv_agent(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    started: list[AgentProcess] = []

    def start(config: Path) -> AgentProcess:
        log = tmp_path / f"agent-{len(started)}.log"
        started.append(AgentProcess(config, log, without_opencv=True))
        return started[-1]

    yield start
    for process in started:
        process.close()


def _accuracy(world: AgentWorld, results: list[ResultMessage]) -> float:
    top1 = [int(r.outputs["classes"][0]["label"]) for r in results]
    labels = [int(world.labels[(r.origin.seq or 1) - 1]) for r in results]
    return sum(int(p == y) for p, y in zip(top1, labels, strict=True)) / len(results)


@pytest.mark.parametrize("suffix", [".mjpeg", ".avi"])
def test_an_mjpeg_file_is_served_without_opencv(
    world: AgentWorld,
    broker: MosquittoBroker,
    no_cv_agent: Callable[[Path], AgentProcess],
    suffix: str,
) -> None:
    path = world.root / f"digits{suffix}"
    if suffix == ".mjpeg":
        path.write_bytes(b"".join(_jpegs(world)))
    else:
        path = world.video  # the AVI/MJPEG the OpenCV tests read, now through our own parser
    watcher = Subscriber(broker, f"edge/{DEVICE_ID}/results")
    agent = no_cv_agent(
        world.write_config(source={"type": "video", "path": str(path), "realtime": False})
    )
    watcher.wait_for(
        lambda got: len(_results(got)) >= world.frames, timeout=60, describe=lambda _: agent.log()
    )
    results = _results(watcher.messages)
    assert [r.seq for r in results] == list(range(1, world.frames + 1))
    assert _accuracy(world, results) >= 0.9
    assert agent.terminate() == 0
    assert "cv2" not in agent.log()
    watcher.close()


def test_an_http_mjpeg_stream_is_served_without_opencv(
    world: AgentWorld, broker: MosquittoBroker, no_cv_agent: Callable[[Path], AgentProcess]
) -> None:
    jpegs = _jpegs(world)
    stop = threading.Event()

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=f")
            self.end_headers()
            i = 0
            while not stop.is_set():
                data = jpegs[i % len(jpegs)]
                head = b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                self.wfile.write(head + data + b"\r\n")
                i += 1
                time.sleep(0.05)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/video.mjpg"
    watcher = Subscriber(broker, f"edge/{DEVICE_ID}/results")
    try:
        agent = no_cv_agent(world.write_config(source={"type": "mjpeg_http", "url": url}))
        watcher.wait_for(
            lambda got: len(_results(got)) >= 10, timeout=60, describe=lambda _: agent.log()
        )
        assert agent.terminate() == 0
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
    results = _results(watcher.messages)
    assert {r.origin.source for r in results} == {"mjpeg_http"}
    labels = [int(r.outputs["classes"][0]["label"]) for r in results]
    assert len(set(labels)) >= 3  # the stream's digits, not one stuck frame
    watcher.close()


@pytest.mark.parametrize(("source", "message"), [
    ({"type": "stream", "url": "rtsp://127.0.0.1:8554/cam"}, "source type stream (rtsp://)"),
    ({"type": "video", "path": "clip.mp4"}, "source type video (.mp4 files)"),
])  # fmt: skip
def test_check_config_and_run_refuse_a_source_that_needs_the_video_extra(
    world: AgentWorld, tmp_path: Path, source: dict[str, str], message: str
) -> None:
    if "path" in source:
        (world.root / source["path"]).write_bytes(b"")
        source = {**source, "path": str(world.root / source["path"])}
    config = world.write_config(source=source)
    env = {"PYTHONPATH": f"{hide_opencv(tmp_path / 'no-opencv')}:{ROOT}", "PATH": "/usr/bin"}
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", *command],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 4, done.stderr
        assert f"{message} needs the video extra: pip install 'edge-agent[video]'" in done.stderr
