"""Acceptance: a face detector -> face landmarks crop chain through ``edge-convert bundle
--stage``, ``edge-agent run`` as a process and a subscriber on a real mosquitto."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agent.mqtt.messages import ResultMessage, StatusMessage
from agent.schema.stages import StageSpec
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options
from tests.byom.test_chain import (
    BASE,
    bundle,
    config,
    keys,  # noqa: F401 - the fixture
    photos,
    results,
)
from tests.support.agent_env import AgentProcess
from tests.support.broker import MosquittoBroker, Received, Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]
Models = Callable[[str], Path]


def mesh_metadata(models: Models, path: Path) -> Path:
    """The landmark model's metadata with the chain: the detector's own metadata, then the crop."""
    detector = recognise_model(
        inspect_model(models("face_short").read_bytes()), Options(labels=("face",))
    ).metadata
    mesh = recognise_model(inspect_model(models("face_landmark").read_bytes()), Options()).metadata
    body = mesh.to_dict() | {
        "stages": [
            StageSpec("face", "stage_1.tflite", 1, 1, model=detector.to_dict()).to_dict(),
            {"name": "mesh", "file": "model.tflite", "crop": {"max_crops": 1, "scale": 1.5}},
        ]
    }
    path.write_text(json.dumps(body))
    return path


def test_the_agent_publishes_face_landmarks_in_frame_coordinates_with_stage_status(
    keys: Path,  # noqa: F811
    broker: MosquittoBroker,
    agents: Callable[[Path], AgentProcess],
    thirdparty_models: Models,
) -> None:
    meta = mesh_metadata(thirdparty_models, keys / "metadata.json")
    package = bundle(
        keys, thirdparty_models("face_landmark"), "mesh",
        "--stage", str(thirdparty_models("face_short")), "--metadata", str(meta),
    )  # fmt: skip
    agent_config = config(keys, broker, package, photos(keys / "photos", ["astronaut"]))
    watcher = Subscriber(broker, f"{BASE}/#")
    agent = agents(agent_config)

    def status(got: list[Received]) -> StatusMessage | None:
        found = [m for m in got if m.topic.endswith("/status")]
        return StatusMessage.from_json(found[-1].payload) if found else None

    def done(got: list[Received]) -> bool:
        last = status(got)
        return bool(results(got)) and last is not None and "mesh" in last.stages

    watcher.wait_for(done, timeout=90, describe=lambda _: f"agent log: {agent.log()[-2000:]}")
    assert agent.terminate() == 0
    watcher.close()
    result: ResultMessage = results(watcher.messages)[0]
    (face,) = result.outputs["detections"]
    points = np.asarray(face["mesh"]["landmarks"]["points"])
    assert points.shape == (468, 3)
    b = face["bbox"]
    cx, cy = (b["xmin"] + b["xmax"]) / 2, (b["ymin"] + b["ymax"]) / 2
    assert np.all(np.abs(points[:, 0] - cx) <= 1.3 * (b["xmax"] - b["xmin"]) / 2)
    assert np.all(np.abs(points[:, 1] - cy) <= 1.3 * (b["ymax"] - b["ymin"]) / 2)
    right_eye = points[[33, 133], :2].mean(axis=0)
    assert float(np.hypot(*(right_eye - face["keypoints"][0]))) < 0.03
    stages = status(watcher.messages).stages  # type: ignore[union-attr]
    assert stages["face"]["invocations"] >= 1
    assert stages["mesh"]["invocations"] >= 1
    assert stages["mesh"]["mean_ms"] > 0
