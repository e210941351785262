from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agent.errors import InputError
from agent.pipeline.geometry import letterbox_geometry
from agent.pipeline.postprocess import (
    BBox,
    Classification,
    classify,
    decode_ssd_boxes,
    detect_anchors,
    detect_postprocessed,
    nms,
    raw_outputs,
)
from agent.schema.meta import TensorSpec

LABELS = ("zero", "one", "two", "three")
PROBS = TensorSpec("probs", (1, 4), "float32")


def test_classify_returns_top_k_best_first_with_labels() -> None:
    out = np.array([[0.1, 0.6, 0.05, 0.25]], dtype=np.float32)
    result = classify(out, PROBS, LABELS, top_k=2)
    assert result == [
        Classification(1, "one", pytest.approx(0.6)),
        Classification(3, "three", pytest.approx(0.25)),
    ]


def test_classify_drops_scores_below_threshold() -> None:
    out = np.array([[0.1, 0.6, 0.05, 0.25]], dtype=np.float32)
    assert [c.index for c in classify(out, PROBS, LABELS, top_k=4, threshold=0.2)] == [1, 3]


def test_classify_keeps_a_float32_score_equal_to_the_threshold() -> None:
    # float32(0.7) < 0.7 as doubles: the threshold is compared in the scores' own precision
    out = np.array([[0.7, 0.2, 0.05, 0.05]], dtype=np.float32)
    assert [c.index for c in classify(out, PROBS, LABELS, top_k=4, threshold=0.7)] == [0]


def test_detect_postprocessed_keeps_a_float32_score_equal_to_the_threshold() -> None:
    boxes = np.zeros((1, 2, 4), dtype=np.float32)
    classes = np.array([[1.0, 2.0]], dtype=np.float32)
    scores = np.array([[0.7, 0.69999]], dtype=np.float32)
    count = np.array([2.0], dtype=np.float32)
    specs = _postprocess_specs(("boxes", "classes", "scores", "count"))
    result = detect_postprocessed([boxes, classes, scores, count], specs, LABELS, threshold=0.7)
    assert [(d.index, d.score) for d in result] == [(1, float(np.float32(0.7)))]


def test_classify_dequantizes_uint8_scores() -> None:
    spec = TensorSpec("probs", (1, 4), "uint8", scale=1 / 256, zero_point=0)
    out = np.array([[0, 192, 64, 0]], dtype=np.uint8)
    result = classify(out, spec, LABELS, top_k=1)
    assert result == [Classification(1, "one", 0.75)]


def test_classify_applies_softmax_to_logits() -> None:
    out = np.array([[0.0, np.log(3.0), 0.0, 0.0]], dtype=np.float32)
    result = classify(out, PROBS, LABELS, top_k=1, scores="logits")
    assert result[0].index == 1
    assert result[0].score == pytest.approx(0.5)


def test_classify_names_unlabelled_classes_by_index() -> None:
    out = np.array([[0.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    assert classify(out, PROBS, ("a",), top_k=1)[0].label == "3"


def test_classification_to_dict_is_json() -> None:
    c = Classification(2, "two", 0.5)
    assert json.loads(json.dumps(c.to_dict())) == {"index": 2, "label": "two", "score": 0.5}


def test_decode_ssd_boxes_zero_encoding_returns_the_anchor() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    boxes = decode_ssd_boxes(np.zeros((1, 4), dtype=np.float32), anchors)
    np.testing.assert_allclose(boxes, [[0.4, 0.3, 0.6, 0.7]], atol=1e-6)


def test_decode_ssd_boxes_applies_variances() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    # ty=1 -> centre moves by 0.1 * h; th=5*ln2 -> height doubles.
    raw = np.array([[1.0, 0.0, 5 * np.log(2.0), 0.0]], dtype=np.float32)
    boxes = decode_ssd_boxes(raw, anchors)
    np.testing.assert_allclose(boxes, [[0.32, 0.3, 0.72, 0.7]], atol=1e-6)


def test_decode_ssd_boxes_rejects_mismatched_shapes() -> None:
    with pytest.raises(InputError, match="must both be Nx4"):
        decode_ssd_boxes(np.zeros((2, 4)), np.zeros((3, 4)))


def test_nms_suppresses_overlaps_above_threshold_and_keeps_order() -> None:
    boxes = np.array(
        [[0, 0, 1, 1], [0, 0, 1, 0.9], [2, 2, 3, 3], [0, 0.5, 1, 1.5]], dtype=np.float32
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6], dtype=np.float32)
    # box1 has IoU 0.9 with box0 (suppressed); box3 has IoU 1/3 with box0 (kept at 0.5).
    assert nms(boxes, scores, 0.5, 10).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.3, 10).tolist() == [0, 2]
    assert nms(boxes, scores, 0.5, 2).tolist() == [0, 2]


def _postprocess_specs(names: tuple[str, str, str, str]) -> tuple[TensorSpec, ...]:
    shapes = ((1, 3, 4), (1, 3), (1, 3), (1,))
    return tuple(TensorSpec(n, s, "float32") for n, s in zip(names, shapes, strict=True))


def test_detect_postprocessed_reads_boxes_classes_scores_count() -> None:
    boxes = np.array(
        [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]]], dtype=np.float32
    )
    classes = np.array([[2.0, 0.0, 1.0]], dtype=np.float32)
    scores = np.array([[0.9, 0.4, 0.8]], dtype=np.float32)
    count = np.array([2.0], dtype=np.float32)
    specs = _postprocess_specs(("boxes", "classes", "scores", "count"))
    result = detect_postprocessed([boxes, classes, scores, count], specs, LABELS, threshold=0.5)
    assert len(result) == 1
    assert (result[0].index, result[0].label) == (2, "two")
    assert result[0].score == pytest.approx(0.9)
    assert result[0].bbox.to_dict() == pytest.approx(
        {"xmin": 0.2, "ymin": 0.1, "xmax": 0.6, "ymax": 0.5}
    )


def test_detect_postprocessed_orders_outputs_by_op_name_suffix() -> None:
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6]]], dtype=np.float32)
    classes = np.array([[3.0]], dtype=np.float32)
    scores = np.array([[0.75]], dtype=np.float32)
    count = np.array([1.0], dtype=np.float32)
    names = (
        "TFLite_Detection_PostProcess:2",
        "TFLite_Detection_PostProcess",
        "TFLite_Detection_PostProcess:3",
        "TFLite_Detection_PostProcess:1",
    )
    specs = (
        TensorSpec(names[0], (1, 1), "float32"),
        TensorSpec(names[1], (1, 1, 4), "float32"),
        TensorSpec(names[2], (1,), "float32"),
        TensorSpec(names[3], (1, 1), "float32"),
    )
    result = detect_postprocessed([scores, boxes, count, classes], specs, LABELS)
    assert [d.to_dict() for d in result] == [
        {
            "index": 3,
            "label": "three",
            "score": 0.75,
            "bbox": {
                "xmin": pytest.approx(0.2),
                "ymin": pytest.approx(0.1),
                "xmax": pytest.approx(0.6),
                "ymax": pytest.approx(0.5),
            },
        }
    ]


def test_detect_postprocessed_maps_boxes_through_letterbox() -> None:
    # A 200x100 frame letterboxed into 100x100: scale 0.5, 25 px bars above and below.
    geometry = letterbox_geometry(200, 100, 100, 100)
    boxes = np.array([[[0.25, 0.0, 0.75, 0.5]]], dtype=np.float32)
    outs = [boxes, np.array([[0.0]]), np.array([[1.0]]), np.array([1.0])]
    result = detect_postprocessed(outs, _postprocess_specs(("b", "c", "s", "n")), geometry=geometry)
    assert result[0].bbox == BBox(0.0, 0.0, 0.5, 1.0)


def test_detect_anchors_class_wise_nms_keeps_overlapping_boxes_of_other_classes() -> None:
    anchors = np.array(
        [[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]], dtype=np.float32
    )
    enc = np.zeros((1, 3, 4), dtype=np.float32)
    # columns: background, cat, dog (probabilities)
    probs = np.array([[[0.0, 0.9, 0.1], [0.0, 0.2, 0.8], [0.0, 0.7, 0.0]]], dtype=np.float32)
    box_spec = TensorSpec("enc", (1, 3, 4), "float32")
    score_spec = TensorSpec("scores", (1, 3, 3), "float32")
    kwargs: dict[str, Any] = {
        "box_spec": box_spec,
        "score_spec": score_spec,
        "labels": ("cat", "dog"),
        "scores": "probabilities",
        "threshold": 0.5,
    }
    classwise = detect_anchors(enc, probs, anchors, class_wise=True, **kwargs)
    assert [(d.label, round(d.score, 3)) for d in classwise] == [
        ("cat", 0.9),
        ("dog", 0.8),
        ("cat", 0.7),
    ]
    assert classwise[0].bbox == BBox(
        pytest.approx(0.4), pytest.approx(0.4), pytest.approx(0.6), pytest.approx(0.6)
    )
    global_ = detect_anchors(enc, probs, anchors, class_wise=False, **kwargs)
    assert [(d.label, round(d.score, 3)) for d in global_] == [("cat", 0.9), ("cat", 0.7)]


def test_detect_anchors_applies_sigmoid_to_quantized_scores() -> None:
    anchors = np.array([[0.5, 0.5, 0.2, 0.2]], dtype=np.float32)
    enc = np.zeros((1, 1, 4), dtype=np.int8)
    logits = np.array([[[0, 40]]], dtype=np.int8)  # 0.0 and 4.0 after scale 0.1
    result = detect_anchors(
        enc,
        logits,
        anchors,
        box_spec=TensorSpec("enc", (1, 1, 4), "int8", scale=0.1, zero_point=0),
        score_spec=TensorSpec("s", (1, 1, 2), "int8", scale=0.1, zero_point=0),
        scores="sigmoid",
        threshold=0.5,
    )
    assert len(result) == 1
    assert result[0].index == 0
    assert result[0].score == pytest.approx(1 / (1 + np.exp(-4.0)), rel=1e-5)


def test_raw_outputs_truncates_and_flags() -> None:
    spec = TensorSpec("emb", (1, 6), "int8", scale=0.5, zero_point=1)
    out = np.array([[1, 3, 5, 7, 9, 11]], dtype=np.int8)
    (raw,) = raw_outputs([out], [spec], max_values=4)
    assert raw.to_dict() == {
        "name": "emb",
        "shape": [1, 6],
        "values": [0.0, 1.0, 2.0, 3.0],
        "truncated": True,
    }
    (whole,) = raw_outputs([out], [spec], max_values=6)
    assert whole.truncated is False
    assert len(whole.values) == 6
