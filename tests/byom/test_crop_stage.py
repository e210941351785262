"""Crop stages on real models: MediaPipe's face detector -> face landmarks on the astronaut."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from agent import cli as agent_cli
from agent.pipeline.crop_stage import CropStage
from agent.pipeline.decoders import decoder_for
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from agent.schema.stages import CropSpec, StageSpec, parse_stages
from convert import cli as convert_cli
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options

Models = Callable[[str], Path]
RIGHT_EYE, LEFT_EYE = (33, 133), (263, 362)  # face-mesh eye corners (outer, inner)


def _astronaut() -> np.ndarray:
    rgb: np.ndarray = data.astronaut()  # type: ignore[no-untyped-call]
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _faces(models: Models, frame: np.ndarray) -> list[dict[str, Any]]:
    raw = models("face_short").read_bytes()
    meta = recognise_model(inspect_model(raw), Options(labels=("face",))).metadata
    loaded = open_model(raw, threads=2)
    tensor, geometry = Preprocessor(meta)(frame)
    decoder = decoder_for(meta)
    assert decoder is not None
    body, _, _ = decoder(loaded.invoke([tensor]), loaded.outputs, 0.5, geometry)
    loaded.close()
    return list(body["detections"])


def _mesh_stage(models: Models) -> CropStage:
    raw = models("face_landmark").read_bytes()
    meta = recognise_model(inspect_model(raw), Options()).metadata
    loaded = open_model(raw, threads=2)
    spec = StageSpec("mesh", "model.tflite", 1, 1, crop=CropSpec(max_crops=1, scale=1.5))
    return CropStage(spec, meta, lambda x: loaded.invoke([x]), time.perf_counter)


def _eye(points: np.ndarray, corners: tuple[int, int]) -> np.ndarray:
    return np.asarray(points[list(corners), :2].mean(axis=0))


def _check_on_face(face: dict[str, Any], frame_w: int, frame_h: int) -> np.ndarray:
    points = np.asarray(face["mesh"]["landmarks"]["points"])
    assert points.shape == (468, 3)
    b = face["bbox"]
    cx, cy = (b["xmin"] + b["xmax"]) / 2, (b["ymin"] + b["ymax"]) / 2
    hw, hh = 1.3 * (b["xmax"] - b["xmin"]) / 2, 1.3 * (b["ymax"] - b["ymin"]) / 2
    assert np.all(np.abs(points[:, 0] - cx) <= hw), "a landmark lies outside the face box x1.3"
    assert np.all(np.abs(points[:, 1] - cy) <= hh), "a landmark lies outside the face box x1.3"
    scale = np.array([frame_w, frame_h]) / frame_w  # distances in fractions of the frame width
    for keypoint, corners in ((0, RIGHT_EYE), (1, LEFT_EYE)):
        gap = (_eye(points, corners) - np.asarray(face["keypoints"][keypoint])) * scale
        assert float(np.hypot(*gap)) < 0.03, f"eye {keypoint} is {gap} off the detector's"
    assert face["mesh"]["landmarks"]["score"] > 0.5
    return points


def test_face_landmarks_of_the_detected_face_lie_on_it_in_frame_coordinates(
    thirdparty_models: Models,
) -> None:
    frame = _astronaut()
    faces = _faces(thirdparty_models, frame)
    stage = _mesh_stage(thirdparty_models)
    stage(frame, faces)
    (face,) = faces
    _check_on_face(face, frame.shape[1], frame.shape[0])
    rect = face["mesh"]["rect"]
    assert abs(rect["rotation_deg"]) < 15  # the astronaut's head is nearly upright
    assert rect["width"] > 1.4 * (face["bbox"]["xmax"] - face["bbox"]["xmin"])
    assert stage.stats.invocations == 1
    assert stage.crops == 1


def test_a_tilted_face_is_cropped_upright_and_its_landmarks_follow_the_tilt(
    thirdparty_models: Models,
) -> None:
    photo = _astronaut()
    h, w = photo.shape[:2]
    face_centre = (0.44 * w, 0.23 * h)
    turn = cv2.getRotationMatrix2D(face_centre, 25, 1.0)  # counter-clockwise on screen
    frame = cv2.warpAffine(photo, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
    faces = _faces(thirdparty_models, frame)
    _mesh_stage(thirdparty_models)(frame, faces)
    (face,) = faces
    points = _check_on_face(face, w, h)
    assert -40 < face["mesh"]["rect"]["rotation_deg"] < -10
    right, left = _eye(points, RIGHT_EYE) * [w, h], _eye(points, LEFT_EYE) * [w, h]
    tilt = np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0]))
    assert -40 < tilt < -10  # the eye line turned with the photo (y down: negative is up-right)


def test_bundle_takes_a_crop_chain_and_inspect_shows_the_crop(
    tmp_path: Path, thirdparty_models: Models, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = thirdparty_models("face_landmark").read_bytes()
    mesh = recognise_model(inspect_model(raw), Options()).metadata
    face = recognise_model(
        inspect_model(thirdparty_models("face_short").read_bytes()), Options(labels=("face",))
    ).metadata
    stages = parse_stages([
        {"name": "face", "file": "stage_1.tflite", "model": face.to_dict()},
        {"name": "mesh", "file": "model.tflite", "crop": {"max_crops": 2, "scale": 1.5}},
    ])  # fmt: skip
    (tmp_path / "metadata.json").write_bytes(replace(mesh, stages=stages).to_json())
    assert convert_cli.main(["keygen", "--out", str(tmp_path / "release")]) == 0
    assert agent_cli.main(["keygen", "--out", str(tmp_path / "dev"), "--device-id", "d1"]) == 0
    bundle = tmp_path / "mesh-1.edgepkg"
    argv = [
        "bundle", str(thirdparty_models("face_landmark")), "--name", "mesh", "--version", "1",
        "--stage", str(thirdparty_models("face_short")),
        "--metadata", str(tmp_path / "metadata.json"),
        "--signing-key", str(tmp_path / "release" / "release.key"),
        "--recipient", str(tmp_path / "dev" / "device.pub"), "-o", str(bundle),
    ]  # fmt: skip
    assert convert_cli.main(argv) == 0
    assert convert_cli.main(["inspect", str(bundle)]) == 0
    shown = capsys.readouterr().out
    assert (
        "stage 2 mesh (model.tflite): window 1, hop 1, x * 1 + 0; crop of up to 2 detections "
        ">= 0.5, box x1.5, rotated by keypoints 0->1 to 0 deg"
    ) in shown
