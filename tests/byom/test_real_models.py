"""Third-party models from package registries, decoded in process on scikit-image photos."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from agent.errors import InputError
from agent.pipeline.decoders import decoder_for
from agent.pipeline.postprocess import BBox
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from agent.schema.labels import parse_labels
from convert import cli as convert_cli
from convert.commands.modelopts import read_label_file
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options

Models = Callable[[str], Path]
PERSON = BBox(0.03, 0.03, 0.72, 1.0)  # hand boxes, normalised to each photo
CAT = BBox(0.05, 0.0, 0.9, 1.0)
CUP = BBox(0.29, 0.03, 0.71, 0.64)
FACE = BBox(0.33, 0.1, 0.55, 0.36)
PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str) -> np.ndarray:
    return cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)


def run(model: Path, options: Options, name: str) -> dict[str, Any]:
    raw = model.read_bytes()
    meta = recognise_model(inspect_model(raw), options).metadata
    loaded = open_model(raw, threads=2)
    tensor, geometry = Preprocessor(meta)(photo(name))
    decoder = decoder_for(meta)
    assert decoder is not None
    body, _, _ = decoder(loaded.invoke([tensor]), loaded.outputs, 0.5, geometry)
    loaded.close()
    return body


def box(d: dict[str, Any]) -> BBox:
    return BBox(**d["bbox"])


@pytest.mark.parametrize(
    ("name", "label", "hand"),
    [("astronaut", "person", PERSON), ("chelsea", "cat", CAT), ("coffee", "cup", CUP)],
)
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_coco_ssd_finds_the_object_with_coral_labels(
    thirdparty_models: Models, name: str, label: str, hand: BBox, resize: str
) -> None:
    labels = read_label_file(thirdparty_models("coco_labels"))
    body = run(thirdparty_models("coco_ssd"), Options(labels=labels, resize=resize), name)
    best = body["detections"][0]
    assert best["label"] == label
    assert best["score"] > 0.6
    assert box(best).iou(hand) > 0.7


def test_face_detector_gives_a_face_box_and_six_keypoints_on_the_astronaut(
    thirdparty_models: Models,
) -> None:
    body = run(thirdparty_models("face_short"), Options(labels=("face",)), "astronaut")
    (face,) = body["detections"]
    assert face["label"] == "face"
    assert face["score"] > 0.8
    assert box(face).iou(FACE) > 0.5
    points = face["keypoints"]
    assert len(points) == 6
    inside = BBox(FACE.xmin - 0.05, FACE.ymin, FACE.xmax + 0.05, FACE.ymax)
    assert all(
        inside.xmin <= x <= inside.xmax and inside.ymin <= y <= inside.ymax for x, y in points
    )
    right_eye, left_eye, nose, mouth = points[:4]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_face_detector_finds_no_face_on_a_cat_or_a_cup(
    thirdparty_models: Models, name: str
) -> None:
    assert run(thirdparty_models("face_short"), Options(), name)["detections"] == []


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_segmenter_gives_a_person_share_and_a_mask_box(
    thirdparty_models: Models, resize: str
) -> None:
    body = run(thirdparty_models("selfie"), Options(labels=("person",), resize=resize), "astronaut")
    (person,) = body["segments"]
    assert person["label"] == "person"
    assert 0.35 < person["share"] < 0.75
    assert box(person).iou(BBox(0.0, 0.03, 1.0, 1.0)) > 0.8
    mask = body["mask"]
    assert (mask["width"], mask["height"], mask["encoding"]) == (32, 32, "bits")
    bits = np.unpackbits(np.frombuffer(__import__("base64").b64decode(mask["data"]), np.uint8))
    assert abs(bits[: 32 * 32].mean() - person["share"]) < 0.05


@pytest.mark.parametrize(
    ("key", "keypoints"), [("palm", 7), ("pose_detection", 4), ("face_full", 6)]
)
def test_other_mediapipe_detectors_are_recognised_with_their_anchor_layout(
    thirdparty_models: Models, key: str, keypoints: int
) -> None:
    raw = thirdparty_models(key).read_bytes()
    meta = recognise_model(inspect_model(raw), Options()).metadata
    assert meta.decoder is not None
    assert (meta.task, meta.decoder.kind, meta.decoder.num_keypoints) == (
        "detection",
        "blazeface",
        keypoints,
    )
    run(thirdparty_models(key), Options(), "astronaut")  # decodes without error


def test_pose_detector_finds_the_astronaut(thirdparty_models: Models) -> None:
    found = run(thirdparty_models("pose_detection"), Options(), "astronaut")["detections"]
    assert found
    assert len(found[0]["keypoints"]) == 4


def test_face_landmarks_are_normalised_points_on_the_face(thirdparty_models: Models) -> None:
    raw = thirdparty_models("face_landmark").read_bytes()
    meta = recognise_model(inspect_model(raw), Options()).metadata
    assert meta.task == "landmarks"
    body = run(thirdparty_models("face_landmark"), Options(), "astronaut")["landmarks"]
    assert len(body["points"]) == 468
    assert all(0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0 for p in body["points"])
    assert 0.0 <= body["score"] <= 1.0


def test_generated_ssd_anchors_equal_the_anchor_constant_inside_the_coco_model(
    thirdparty_models: Models,
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from agent.pipeline.decoders.anchors import generate_anchors
    from agent.schema.decoding import AnchorOptions

    interp = Interpreter(model_content=thirdparty_models("coco_ssd").read_bytes())
    interp.allocate_tensors()
    consts = [t for t in interp.get_tensor_details() if tuple(t["shape"]) == (1917, 4)]
    anchors = [interp.get_tensor(t["index"]) for t in consts if t["name"] == "anchors"]
    (embedded,) = anchors
    embedded = (
        (embedded.astype(np.float32) - consts[0]["quantization"][1]) * consts[0]["quantization"][0]
        if embedded.dtype != np.float32
        else embedded
    )
    options = AnchorOptions(
        6, 300, 300, (16, 32, 64, 128, 256, 512),
        aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333), reduce_boxes_in_lowest_layer=True,
    )  # fmt: skip
    np.testing.assert_allclose(generate_anchors(options), embedded, atol=0.01)


def test_edgetpu_model_is_described_with_the_fix(
    thirdparty_models: Models, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convert_cli.main(["describe", str(thirdparty_models("coco_ssd_edgetpu")), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["edgetpu"] is True
    assert report["allocated"] is False
    assert report["hint"] == "this model needs the Edge TPU; bundle a CPU variant with --cpu-model"
    assert report["task"] == "detection"


def test_describe_reports_embedded_normalisation_and_label_file(
    thirdparty_models: Models, capsys: pytest.CaptureFixture[str]
) -> None:
    assert convert_cli.main(["describe", str(thirdparty_models("selfie")), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"][0]["shape"] == [1, 256, 256, 1]
    assert report["custom_ops"] == ["Convolution2DTransposeBias"]
    assert report["embedded_metadata"]["inputs"][0]["std"] == [255.0]
    assert report["associated_files"] == ["labels.txt"]
    assert report["metadata"]["task"] == "segmentation"
    assert report["metadata"]["preprocess"]["std"] == [255.0]


def test_coral_labels_keep_their_ids_across_gaps(thirdparty_models: Models) -> None:
    labels = parse_labels(thirdparty_models("coco_labels").read_text())
    assert (labels[0], labels[16], labels[46], labels[11]) == ("person", "cat", "cup", "")


def test_task_that_does_not_fit_the_outputs_is_refused_naming_the_fix(
    thirdparty_models: Models,
) -> None:
    facts = inspect_model(thirdparty_models("face_short").read_bytes())
    with pytest.raises(InputError, match="--task classification needs one"):
        recognise_model(facts, Options(task="classification"))
    with pytest.raises(InputError, match="labels cover 2 class ids but the model scores 1"):
        recognise_model(facts, Options(labels=("face", "hand")))


@pytest.mark.parametrize("name", PHOTOS)
def test_raw_ssd_decoder_with_generated_anchors_matches_the_models_own_postprocess_op(
    thirdparty_models: Models, name: str
) -> None:
    """The COCO SSD's raw box/score tensors (inputs of its TFLite_Detection_PostProcess op)
    decoded by ``ssd_anchors`` give the op's own detections."""
    from ai_edge_litert.interpreter import Interpreter

    from agent.pipeline.decoders.anchored import decode_anchored
    from agent.pipeline.decoders.anchors import generate_anchors
    from agent.pipeline.postprocess import detect_postprocessed
    from agent.runtime.model import tensor_spec
    from agent.schema.decoding import AnchorOptions, DecoderSpec

    raw = thirdparty_models("coco_ssd").read_bytes()
    labels = read_label_file(thirdparty_models("coco_labels"))
    meta = recognise_model(inspect_model(raw), Options(labels=labels)).metadata
    tensor, geometry = Preprocessor(meta)(photo(name))
    interp = Interpreter(model_content=raw, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], tensor)
    interp.invoke()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    (op,) = [o for o in interp._get_ops_details() if o["op_name"] == "TFLite_Detection_PostProcess"]
    boxes, scores = (details[i] for i in op["inputs"][:2])
    outputs = [interp.get_tensor(boxes["index"]), interp.get_tensor(scores["index"])]
    specs = [tensor_spec(boxes), tensor_spec(scores)]
    options = AnchorOptions(
        6, 300, 300, (16, 32, 64, 128, 256, 512),
        aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333), reduce_boxes_in_lowest_layer=True,
    )  # fmt: skip
    spec = DecoderSpec("ssd_anchors", anchors=options, background=True, iou_threshold=0.6)
    ours = decode_anchored(
        outputs, specs, spec, generate_anchors(options),
        labels=labels, scores="probabilities", threshold=0.5, geometry=geometry,
    )  # fmt: skip
    op_outputs = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    theirs = detect_postprocessed(
        op_outputs, [tensor_spec(d) for d in interp.get_output_details()], labels,
        threshold=0.5, geometry=geometry,
    )  # fmt: skip
    assert [d.label for d in ours] == [d.label for d in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a.score - b.score) < 0.01
        assert a.bbox.iou(b.bbox) > 0.97


def test_edgetpu_model_loaded_on_the_cpu_fails_with_the_fix_in_the_message(
    thirdparty_models: Models,
) -> None:
    from agent.errors import BackendError

    with pytest.raises(BackendError, match="this model needs the Edge TPU; bundle a CPU variant"):
        open_model(thirdparty_models("coco_ssd_edgetpu").read_bytes(), threads=1)


def test_pose_landmarks_put_nose_eyes_and_shoulders_on_the_astronaut(
    thirdparty_models: Models,
) -> None:
    options = Options(values_per_point=5, point_score_index=3, resize="letterbox")
    body = run(thirdparty_models("pose_landmark"), options, "astronaut")["landmarks"]
    points = body["points"]
    assert len(points) == 39  # 33 pose landmarks + 6 auxiliary
    nose, left_eye, right_eye = points[0], points[2], points[5]
    assert FACE.xmin < nose[0] < FACE.xmax
    assert FACE.ymin < nose[1] < FACE.ymax
    assert right_eye[0] < nose[0] < left_eye[0]
    left_shoulder, right_shoulder = points[11], points[12]
    assert right_shoulder[0] < left_shoulder[0]
    assert min(left_shoulder[1], right_shoulder[1]) > FACE.ymax
    assert all(p[3] > 0.9 for p in (nose, left_eye, right_eye, left_shoulder, right_shoulder))
    assert body["score"] > 0.5
