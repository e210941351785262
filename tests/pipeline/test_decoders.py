"""Decoders on constructed tensors: anchors (MediaPipe golden files), BlazeFace boxes and
keypoints, weighted NMS, segmentation through a letterbox, landmarks, result fitting."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from agent.pipeline.decoders.anchored import decode_anchored, decode_boxes, weighted_nms
from agent.pipeline.decoders.anchors import anchor_count, generate_anchors
from agent.pipeline.decoders.landmarks import decode_landmarks
from agent.pipeline.decoders.segmentation import decode_segmentation
from agent.pipeline.fit import fit_outputs, size_of
from agent.pipeline.geometry import letterbox_geometry
from agent.schema.decoding import AnchorOptions, DecoderSpec
from agent.schema.meta import TensorSpec

DATA = Path(__file__).parent / "data"
F32 = "float32"


@pytest.mark.parametrize(
    ("golden", "options"),
    [
        (
            "mediapipe_anchor_golden_0.txt",
            AnchorOptions(
                5, 256, 256, (8, 16, 32, 32, 32),
                min_scale=0.1171875, max_scale=0.75, fixed_anchor_size=True,
            ),
        ),
        (
            "mediapipe_anchor_golden_1.txt",
            AnchorOptions(
                6, 300, 300, (16, 32, 64, 128, 256, 512),
                aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333), reduce_boxes_in_lowest_layer=True,
            ),
        ),
    ],
)  # fmt: skip
def test_anchors_equal_mediapipes_golden_files(golden: str, options: AnchorOptions) -> None:
    expected = np.loadtxt(DATA / golden)  # x_center y_center w h
    anchors = generate_anchors(options)
    assert anchors.shape == expected.shape == (anchor_count(options), 4)
    np.testing.assert_allclose(anchors[:, [1, 0, 3, 2]], expected, atol=1e-5)


def test_blazeface_box_and_keypoints_decode_against_their_anchor() -> None:
    spec = DecoderSpec(
        "blazeface", box_format="xywh", box_scale=(128.0, 128.0, 128.0, 128.0),
        exp_size=False, num_keypoints=1, anchors=AnchorOptions(1, 128, 128, (128,)),
    )  # fmt: skip
    anchors = np.array([[0.5, 0.25, 1.0, 1.0]], np.float32)  # yc, xc, h, w
    raw = np.array([[12.8, -6.4, 32.0, 64.0, 6.4, 12.8]], np.float32)  # x y w h kx ky (px)
    boxes, points = decode_boxes(raw, anchors, spec)
    # centre x = 0.25 + 0.1, y = 0.5 - 0.05; w = 0.25, h = 0.5
    np.testing.assert_allclose(boxes[0], [0.2, 0.225, 0.7, 0.475], atol=1e-6)
    np.testing.assert_allclose(points[0], [[0.3, 0.6]], atol=1e-6)


def test_weighted_nms_averages_overlapping_boxes_by_score() -> None:
    boxes = np.array([[0, 0, 1, 1], [0, 0.1, 1, 1.1], [5, 5, 6, 6]], np.float64)
    points = np.zeros((3, 1, 2))
    points[:, 0, 0] = (1.0, 2.0, 9.0)
    out = weighted_nms(boxes, points, np.array([0.75, 0.25, 0.6]), 0.3, 10)
    assert [best for _, _, best in out] == [0, 2]
    np.testing.assert_allclose(out[0][0], [0, 0.025, 1, 1.025])
    np.testing.assert_allclose(out[0][1][0, 0], 1.25)


def test_score_clipping_and_threshold_apply_before_nms() -> None:
    spec = DecoderSpec(
        "blazeface", box_format="xywh", box_scale=(1.0, 1.0, 1.0, 1.0), exp_size=False,
        score_clip=100.0, nms="weighted", anchors=AnchorOptions(1, 2, 2, (2,)),
    )  # fmt: skip
    anchors = np.array([[0.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]], np.float32)
    boxes = np.array([[[0, 0, 0.2, 0.2], [0, 0, 0.2, 0.2]]], np.float32)
    scores = np.array([[[1e6], [-3.0]]], np.float32)
    specs = [TensorSpec("b", (1, 2, 4), F32), TensorSpec("s", (1, 2, 1), F32)]
    found = decode_anchored(
        [boxes, scores], specs, spec, anchors,
        labels=("face",), scores="sigmoid", threshold=0.5, geometry=None,
    )  # fmt: skip
    assert [(d.label, d.score) for d in found] == [("face", 1.0)]


def test_segmentation_ignores_letterbox_padding_and_reports_frame_fractions() -> None:
    # A 2:1 frame letterboxed into 8x8: rows 0-1 and 6-7 are padding.
    geometry = letterbox_geometry(16, 8, 8, 8)
    mask = np.full((1, 8, 8, 1), -10.0, np.float32)
    mask[0, :, 4:, 0] = 10.0  # the right half, padding included
    spec = DecoderSpec("segmentation", mask_size=4)
    body = decode_segmentation(
        [mask], [TensorSpec("m", (1, 8, 8, 1), F32)], spec,
        labels=("person",), scores="sigmoid", geometry=geometry,
    )  # fmt: skip
    (person,) = body["segments"]
    assert person["share"] == 0.5
    assert person["bbox"] == {"xmin": 0.5, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0}
    assert (body["mask"]["width"], body["mask"]["height"]) == (4, 2)
    bits = np.unpackbits(np.frombuffer(base64.b64decode(body["mask"]["data"]), np.uint8))[:8]
    assert bits.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


def test_landmarks_in_input_pixels_become_frame_fractions() -> None:
    geometry = letterbox_geometry(20, 10, 10, 10)  # scale 0.5, pad_y 2: y = (px - 2) / 0.5 / 10
    points = np.array([[5.0, 5.0, 1.0, 10.0, 2.0, 0.0]], np.float32)
    spec = DecoderSpec("landmarks", score_output=1, values_per_point=3)
    body = decode_landmarks(
        [points, np.array([[3.0]], np.float32)],
        [TensorSpec("p", (1, 6), F32), TensorSpec("s", (1, 1), F32)],
        spec, input_hw=(10, 10), scores="sigmoid", geometry=geometry,
    )["landmarks"]  # fmt: skip
    assert body["points"][0] == [0.5, 0.6, 0.1]
    assert body["points"][1][:2] == [1.0, 0.0]
    assert body["score"] == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_body_over_the_limit_is_cut_flagged_and_fits() -> None:
    body = {
        "tensors": [
            {"name": "t", "shape": [50000], "values": [0.123456789] * 50000, "truncated": False}
        ]
    }
    fitted, cut = fit_outputs(body, 100_000)
    assert cut
    assert size_of(fitted) <= 100_000
    assert fitted["truncated"] is True
    assert fitted["tensors"][0]["truncated"] is True
    assert len(fitted["tensors"][0]["values"]) > 1000
    assert body["tensors"][0]["truncated"] is False  # the input is not modified


def test_body_that_fits_is_returned_unchanged() -> None:
    body = {"detections": []}
    assert fit_outputs(body, 1000) == (body, False)


def test_multiclass_segmentation_skips_background_and_encodes_classes_as_bytes() -> None:
    logits = np.zeros((1, 4, 4, 3), np.float32)
    logits[0, :, :, 0] = 1.0  # background everywhere ...
    logits[0, :2, :2, 1] = 5.0  # ... but class 1 top-left
    logits[0, 3, :, 2] = 5.0  # and class 2 on the bottom row
    spec = DecoderSpec("segmentation", mask_size=4, background=True)
    body = decode_segmentation(
        [logits], [TensorSpec("m", (1, 4, 4, 3), F32)], spec,
        labels=("background", "cat", "dog"), scores="logits", geometry=None,
    )  # fmt: skip
    assert [(s["label"], s["share"]) for s in body["segments"]] == [("cat", 0.25), ("dog", 0.25)]
    assert body["segments"][1]["bbox"] == {"xmin": 0.0, "ymin": 0.75, "xmax": 1.0, "ymax": 1.0}
    cells = np.frombuffer(base64.b64decode(body["mask"]["data"]), np.uint8).reshape(4, 4)
    assert body["mask"]["encoding"] == "u8"
    assert cells.tolist() == [[2, 2, 1, 1], [2, 2, 1, 1], [1, 1, 1, 1], [3, 3, 3, 3]]
