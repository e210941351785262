"""Real models give the same answers with OpenCV's pixel layer and with numpy's alone.

Every frame goes through the same :class:`Preprocessor` twice, once per backend of
:mod:`agent.pipeline.imageops` (``EDGE_AGENT_OPENCV=on`` / ``off``), and then through the real
LiteRT interpreter. Tolerances (docs/inference.md, "Without OpenCV"; measured worst case in
brackets): the same top-1 on ≥ 99 % of the held-out digits (360 / 360), class scores within
0.1 (0.055, 14 steps of the int8 output) with a median gap ≤ 0.01 (0); the same best COCO
detection, box IoU ≥ 0.95 and score within 0.08 (0.059); face-mesh landmarks of the
numpy-warped crop within 0.3 % of the frame width of OpenCV's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.pipeline import imageops
from agent.pipeline.crop_stage import CropStage
from agent.pipeline.decoders import decoder_for
from agent.pipeline.postprocess import BBox, classify
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from agent.schema.stages import CropSpec, StageSpec
from convert.commands.modelopts import read_label_file
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options
from tests.support.models import HELDOUT, ModelFactory
from tests.support.photos import photo

Models = Callable[[str], Path]


def _per_backend(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> dict[str, Any]:
    results = {}
    for name, setting in (("opencv", "on"), ("numpy", "off")):
        monkeypatch.setenv(imageops.ENV, setting)
        results[name] = run()
    return results


def _digit_frame(digit: np.ndarray, side: int = 250) -> np.ndarray:
    """An 8x8 digit as a ``side`` square BGR frame (250: decimation by 25, then bilinear)."""
    gray = np.rint(digit[:, :, 0] * 255).astype(np.uint8)
    big = np.repeat(np.repeat(gray, -(-side // 8), axis=0), -(-side // 8), axis=1)[:side, :side]
    return np.repeat(big[:, :, None], 3, axis=2)


@pytest.mark.tensorflow
def test_digits_classify_the_same_with_either_backend(
    sample_models: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted = sample_models("int8", "int8")
    meta = converted.model_metadata()
    model = open_model(converted.model_bytes(), threads=1)
    digits = np.load(HELDOUT)

    def scores() -> list[dict[str, float]]:
        pre = Preprocessor(meta)
        out = []
        for digit in digits["x"]:
            tensor, _ = pre(_digit_frame(digit))
            found = classify(model.invoke([tensor])[0], model.outputs[0], meta.labels, top_k=10)
            out.append({c.label: c.score for c in found})
        return out

    runs = _per_backend(monkeypatch, scores)
    pairs = list(zip(runs["opencv"], runs["numpy"], strict=True))
    same = [max(cv, key=cv.__getitem__) == max(npy, key=npy.__getitem__) for cv, npy in pairs]
    gaps = [max(abs(cv[k] - npy.get(k, 0.0)) for k in cv) for cv, npy in pairs]
    assert sum(same) / len(same) >= 0.99
    assert max(gaps) <= 0.1
    assert float(np.median(gaps)) <= 0.01
    hits = sum(
        max(s, key=s.__getitem__) == str(y) for s, y in zip(runs["numpy"], digits["y"], strict=True)
    )
    assert hits / len(digits["y"]) >= 0.95


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_coco_ssd_finds_the_same_object_with_either_backend(
    thirdparty_models: Models, monkeypatch: pytest.MonkeyPatch, name: str, resize: str
) -> None:
    labels = read_label_file(thirdparty_models("coco_labels"))
    raw = thirdparty_models("coco_ssd").read_bytes()
    meta = recognise_model(inspect_model(raw), Options(labels=labels, resize=resize)).metadata
    model = open_model(raw, threads=2)
    decoder = decoder_for(meta)
    assert decoder is not None
    frame = photo(name)

    def best() -> dict[str, Any]:
        tensor, geometry = Preprocessor(meta)(frame)
        body, _, _ = decoder(model.invoke([tensor]), model.outputs, 0.5, geometry)
        return dict(body["detections"][0])

    runs = _per_backend(monkeypatch, best)
    cv, npy = runs["opencv"], runs["numpy"]
    assert npy["label"] == cv["label"]
    assert abs(npy["score"] - cv["score"]) <= 0.08
    assert BBox(**npy["bbox"]).iou(BBox(**cv["bbox"])) >= 0.95


def test_face_mesh_on_a_numpy_warped_crop_matches_the_opencv_one(
    thirdparty_models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = photo("astronaut", (512, 512))
    raw = thirdparty_models("face_short").read_bytes()
    meta = recognise_model(inspect_model(raw), Options(labels=("face",))).metadata
    detector = open_model(raw, threads=2)
    decoder = decoder_for(meta)
    assert decoder is not None
    mesh_raw = thirdparty_models("face_landmark").read_bytes()
    mesh_meta = recognise_model(inspect_model(mesh_raw), Options()).metadata
    mesh = open_model(mesh_raw, threads=2)
    spec = StageSpec("mesh", "model.tflite", 1, 1, crop=CropSpec(max_crops=1, scale=1.5))
    monkeypatch.setenv(imageops.ENV, "on")
    tensor, geometry = Preprocessor(meta)(frame)
    faces, _, _ = decoder(detector.invoke([tensor]), detector.outputs, 0.5, geometry)

    def landmarks() -> np.ndarray:
        stage = CropStage(spec, mesh_meta, lambda x: mesh.invoke([x]), time.perf_counter)
        found = [dict(d) for d in faces["detections"]]
        stage(frame, found)
        return np.asarray(found[0]["mesh"]["landmarks"]["points"])[:, :2]

    runs = _per_backend(monkeypatch, landmarks)
    gap = np.hypot(*(runs["opencv"] - runs["numpy"]).T)
    assert runs["numpy"].shape == (468, 2)
    assert float(gap.max()) <= 0.003
