"""Acceptance: third-party models through ``edge-convert bundle`` (no hand-written metadata),
``edge-agent run`` as a process, and an independent paho subscriber on a real mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import pytest
from skimage import data

from agent import cli as agent_cli
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage, StatusMessage
from agent.pipeline.postprocess import BBox
from convert import cli as convert_cli
from convert.samples import write_video
from tests.support.agent_env import ROOT, AgentProcess
from tests.support.broker import MosquittoBroker, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]
Models = Callable[[str], Path]
DEVICE = "pi-byom"
BASE = f"edge/{DEVICE}"
PHOTOS = ("astronaut", "chelsea", "coffee")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert convert_cli.main(["keygen", "--out", str(tmp_path / "release")]) == 0
    assert agent_cli.main(["keygen", "--out", str(tmp_path / "dev"), "--device-id", DEVICE]) == 0
    return tmp_path


def edge_convert(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "convert.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def bundle(keys: Path, model: Path, name: str, *extra: str) -> Path:
    out = keys / f"{name}.edgepkg"
    done = edge_convert(
        "bundle", str(model), "--name", name, "--version", "1",
        "--signing-key", str(keys / "release" / "release.key"),
        "--recipient", str(keys / "dev" / "device.pub"), "-o", str(out), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def photos(directory: Path, names: Sequence[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(directory / f"{name}.png"), image)
    return directory


def config(keys: Path, broker: MosquittoBroker, package: Path, source: Path, **output: Any) -> Path:
    lines = [
        f'device_id = "{DEVICE}"',
        f'state_dir = "{keys / "state"}"',
        "[mqtt]",
        f'url = "{broker.url}"',
        "[keys]",
        f'trusted_keys = ["{keys / "release" / "release.pub"}"]',
        f'device_key = "{keys / "dev" / "device.key"}"',
        "[model]",
        f'bundle = "{package}"',
        "threads = 2",
        "[source]",
        'type = "images"',
        f'path = "{source}"',
        "[status]",
        "interval_s = 1.0",
        "[output]",
        *(f"{k} = {json.dumps(v)}" for k, v in output.items()),
    ]
    path = keys / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def results(messages: list[Received]) -> list[ResultMessage]:
    return [r for m in messages if m.topic.endswith("/results") for r in results_in(m.payload)]


def collect(
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    agent_config: Path,
    count: int,
) -> list[ResultMessage]:
    watcher = Subscriber(broker, f"{BASE}/results")
    agent = agents(agent_config)
    watcher.wait_for(
        lambda got: len(results(got)) >= count,
        timeout=90,
        describe=lambda got: f"agent log: {agent.log()[-2000:]}",
    )
    assert agent.terminate() == 0
    watcher.close()
    return results(watcher.messages)


def by_file(found: list[ResultMessage]) -> dict[str, ResultMessage]:
    out = {}
    for r in found:
        assert r.origin is not None
        assert r.origin.file is not None
        out[Path(r.origin.file).stem] = r
    return out


def test_coco_ssd_names_person_cat_and_cup_with_boxes_on_them(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
) -> None:
    package = bundle(
        keys, thirdparty_models("coco_ssd"), "coco-ssd",
        "--labels", str(thirdparty_models("coco_labels")),
    )  # fmt: skip
    source = photos(keys / "in", PHOTOS)
    found = by_file(
        collect(broker, agents, config(keys, broker, package, source, score_threshold=0.5), 3)
    )
    expected = {
        "astronaut": ("person", BBox(0.03, 0.03, 0.72, 1.0)),
        "chelsea": ("cat", BBox(0.05, 0.0, 0.9, 1.0)),
        "coffee": ("cup", BBox(0.29, 0.03, 0.71, 0.64)),
    }
    for name, (label, hand) in expected.items():
        result = found[name]
        best = result.outputs["detections"][0]
        assert best["label"] == label, (name, result.outputs)
        assert BBox(**best["bbox"]).iou(hand) > 0.7, (name, best)
        assert result.origin is not None
        assert result.origin.source == f"imagedir:{source}"
        assert result.origin.seq is not None
        assert result.origin.captured == result.ts
    assert sorted(r.origin.seq for r in found.values() if r.origin) == [1, 2, 3]


def test_face_detector_gives_the_astronauts_face_with_six_keypoints(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
) -> None:
    package = bundle(keys, thirdparty_models("face_short"), "face", "--label-names", "face")
    source = photos(keys / "in", ["astronaut"])
    (result,) = collect(broker, agents, config(keys, broker, package, source), 1)
    (face,) = result.outputs["detections"]
    assert face["label"] == "face"
    assert face["score"] > 0.8
    assert BBox(**face["bbox"]).iou(BBox(0.33, 0.1, 0.55, 0.36)) > 0.5
    assert len(face["keypoints"]) == 6
    assert all(0.3 < x < 0.6 and 0.1 < y < 0.36 for x, y in face["keypoints"])


def test_segmenter_gives_the_person_share_and_mask_box(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
) -> None:
    package = bundle(keys, thirdparty_models("selfie"), "selfie", "--label-names", "person")
    source = photos(keys / "in", ["astronaut"])
    (result,) = collect(broker, agents, config(keys, broker, package, source), 1)
    (person,) = result.outputs["segments"]
    assert person["label"] == "person"
    assert 0.35 < person["share"] < 0.75
    assert BBox(**person["bbox"]).iou(BBox(0.0, 0.03, 1.0, 1.0)) > 0.8
    assert result.outputs["mask"]["encoding"] == "bits"


def test_edgetpu_only_model_is_refused_at_bundle_time_with_the_fix(
    keys: Path, thirdparty_models: Models
) -> None:
    out = keys / "tpu.edgepkg"
    done = edge_convert(
        "bundle", str(thirdparty_models("coco_ssd_edgetpu")), "--name", "tpu", "--version", "1",
        "--signing-key", str(keys / "release" / "release.key"),
        "--recipient", str(keys / "dev" / "device.pub"), "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 2
    assert "this model needs the Edge TPU; bundle a CPU variant with --cpu-model" in done.stderr
    assert not out.exists()
    bundle(
        keys, thirdparty_models("coco_ssd_edgetpu"), "tpu",
        "--cpu-model", str(thirdparty_models("coco_ssd")),
    )  # fmt: skip


def _oversize_run(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    path: Path,
    *,
    seconds: float,
    minimum: int,
) -> None:
    watcher = Subscriber(broker, f"{BASE}/results")
    status = Subscriber(broker, f"{BASE}/status")
    agent = agents(path)
    pid = agent.process.pid

    def truncated_counted(got: list[Received]) -> bool:
        counts = [
            StatusMessage.from_json(m.payload).errors.get("result_truncated", 0)
            for m in got
            if m.topic.endswith("/status")
        ]
        return bool(counts) and max(counts) >= minimum

    deadline = time.monotonic() + seconds
    status.wait_for(truncated_counted, timeout=seconds + 90, describe=lambda _: agent.log()[-2000:])
    while time.monotonic() < deadline:  # the heavy form keeps it running for minutes
        assert agent.process.poll() is None, agent.log()[-2000:]
        time.sleep(1.0)
    assert agent.process.poll() is None, agent.log()[-2000:]
    assert agent.process.pid == pid
    found = results(watcher.messages)
    assert len(found) >= minimum
    for result in found:
        (tensor,) = result.outputs["tensors"]
        assert tensor["truncated"] is True
        assert 1000 < len(tensor["values"]) < 65536
        assert result.outputs["truncated"] is True
    assert agent.terminate() == 0
    watcher.close()
    status.close()


def test_raw_output_over_the_result_limit_is_cut_flagged_and_counted_without_a_restart(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reduced form: a 65,536-value mask as raw tensors with max_raw_values at its maximum."""
    package = bundle(keys, thirdparty_models("selfie"), "raw", "--task", "raw")
    source = photos(keys / "in", PHOTOS)
    path = config(keys, broker, package, source, max_raw_values=1 << 20)
    assert agent_cli.main(["check-config", str(path)]) == 0
    assert "do not fit the 256 KiB result limit" in capsys.readouterr().err
    _oversize_run(keys, broker, agents, path, seconds=0, minimum=3)


@pytest.mark.heavy
def test_raw_output_over_the_limit_for_minutes_on_a_looping_video(
    keys: Path,
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
) -> None:
    package = bundle(keys, thirdparty_models("selfie"), "raw", "--task", "raw")
    frames = [
        cv2.resize(cv2.cvtColor(getattr(data, n)(), cv2.COLOR_RGB2BGR), (320, 240)) for n in PHOTOS
    ]
    video = write_video(keys / "photos.avi", frames * 10, 10.0)
    path = config(keys, broker, package, keys / "unused", max_raw_values=1 << 20)
    text = path.read_text().replace('type = "images"', 'type = "video"\nloop = true')
    path.write_text(text.replace(f'path = "{keys / "unused"}"', f'path = "{video}"'))
    _oversize_run(keys, broker, agents, path, seconds=180, minimum=100)
