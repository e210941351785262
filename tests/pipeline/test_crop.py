"""Rotated square crops: the rect of a detection and the affine maps in and out of it."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from agent.errors import InputError
from agent.pipeline.crop import (
    CropRect,
    crop_to_frame,
    frame_to_crop,
    invert_affine,
    map_points,
    rect_for_detection,
)
from agent.schema.meta import MetadataError, ModelMetadata, TensorSpec
from agent.schema.stages import CropSpec, StageError, parse_stages


def test_axis_aligned_crop_maps_its_corners_and_centre_onto_the_square() -> None:
    m = crop_to_frame(CropRect(cx=100.0, cy=50.0, side=40.0), (20, 20))
    corners = map_points(m, np.array([[0, 0], [20, 0], [0, 20], [20, 20], [10, 10]]))
    np.testing.assert_allclose(corners, [[80, 30], [120, 30], [80, 70], [120, 70], [100, 50]])


def test_rotated_crop_puts_its_x_axis_along_the_angle() -> None:
    # 90 degrees in image coordinates (y down): the crop's x-axis points down the frame.
    m = crop_to_frame(CropRect(cx=10.0, cy=10.0, side=4.0, angle=math.pi / 2), (4, 4))
    points = map_points(m, np.array([[2, 2], [4, 2], [2, 4], [0, 0]]))
    np.testing.assert_allclose(points, [[10, 10], [10, 12], [8, 10], [12, 8]], atol=1e-12)


def test_frame_to_crop_inverts_crop_to_frame_exactly() -> None:
    rect = CropRect(cx=321.5, cy=123.25, side=97.0, angle=0.7)
    forward, back = crop_to_frame(rect, (192, 128)), frame_to_crop(rect, (192, 128))
    pts = np.array([[0.0, 0.0], [191.0, 5.5], [17.0, 127.0]])
    np.testing.assert_allclose(map_points(back, map_points(forward, pts)), pts, atol=1e-9)
    np.testing.assert_allclose(invert_affine(forward), cv2.invertAffineTransform(forward))


def test_detection_rect_is_the_long_side_scaled_and_turned_by_the_keypoints() -> None:
    # a 40x20 px box in a 200x100 frame; eyes from (0.4, 0.5) to (0.5, 0.6): 45 degrees down.
    rect = rect_for_detection((0.4, 0.4, 0.6, 0.6), [(0.4, 0.5), (0.5, 0.6)], (200, 100), scale=1.5)
    assert (rect.cx, rect.cy) == pytest.approx((100.0, 50.0))
    assert rect.side == pytest.approx(60.0)
    assert rect.angle == pytest.approx(math.atan2(10, 20))


def test_detection_rect_without_keypoints_or_rotation_stays_axis_aligned() -> None:
    box = (0.1, 0.2, 0.3, 0.5)
    assert rect_for_detection(box, [], (100, 100)).angle == 0.0
    assert rect_for_detection(box, [(0, 0), (1, 1)], (100, 100), rotation_keypoints=None).angle == 0


def test_target_angle_is_counter_clockwise_as_in_mediapipe_palms() -> None:
    box, up, down = (0.1, 0.2, 0.3, 0.5), [(0.5, 0.6), (0.5, 0.4)], [(0.5, 0.4), (0.5, 0.6)]
    upright = rect_for_detection(box, up, (100, 100), target_angle=math.pi / 2)
    assert upright.angle == pytest.approx(0.0)  # wrist below the fingers: no turn
    upside_down = rect_for_detection(box, down, (100, 100), target_angle=math.pi / 2)
    assert abs(upside_down.angle) == pytest.approx(math.pi)


def test_an_empty_box_is_refused() -> None:
    with pytest.raises(InputError, match="cannot crop"):
        rect_for_detection((0.5, 0.5, 0.5, 0.6), [], (10, 10))


def test_warp_with_frame_to_crop_samples_the_rotated_square() -> None:
    frame = np.zeros((100, 100), np.uint8)
    frame[40:60, 70:80] = 255  # a bright patch right of the centre
    rect = CropRect(cx=50.0, cy=50.0, side=80.0, angle=-math.pi / 2)  # x-axis points up
    crop = cv2.warpAffine(frame, frame_to_crop(rect, (8, 8)), (8, 8))
    # frame right of centre is, with the crop's x-axis pointing up, the crop's bottom (+v).
    assert crop[6, 4] == 255
    assert crop[1, 4] == 0
    assert crop[4, 6] == 0


def test_crop_stage_declaration_round_trips_and_defaults_its_rates() -> None:
    stages = parse_stages([
        {"name": "face", "file": "stage_1.tflite", "window": 1, "hop": 1},
        {"name": "mesh", "file": "model.tflite", "crop": {"scale": 1.5, "max_crops": 2}},
    ])  # fmt: skip
    assert stages[1].crop == CropSpec(max_crops=2, scale=1.5)
    assert (stages[1].window, stages[1].hop) == (1, 1)
    assert parse_stages([s.to_dict() for s in stages]) == stages


@pytest.mark.parametrize(
    ("crop", "message"),
    [
        ({"scale": 0}, r"crop.scale must be between"),
        ({"threshold": 2}, r"crop.threshold must be between"),
        ({"rotation_keypoints": [1, 1]}, r"rotation_keypoints must be two distinct"),
        ({"max_crops": 0}, r"crop.max_crops must be an integer 1-64"),
        ({"angle": 0}, r"crop: unknown key 'angle'"),
    ],
)
def test_bad_crop_declarations_name_the_field(crop: dict[str, object], message: str) -> None:
    with pytest.raises(StageError, match=message):
        parse_stages([
            {"name": "face", "file": "stage_1.tflite", "window": 1, "hop": 1},
            {"name": "mesh", "file": "model.tflite", "crop": crop},
        ])  # fmt: skip


def test_the_first_stage_cannot_be_a_crop_stage() -> None:
    with pytest.raises(StageError, match=r"stages\[0\].crop: the first stage"):
        parse_stages([
            {"name": "a", "file": "stage_1.tflite", "crop": {}},
            {"name": "b", "file": "model.tflite", "window": 1, "hop": 1},
        ])  # fmt: skip


def test_a_stage_model_must_be_valid_metadata_without_stages_of_its_own() -> None:
    base = ModelMetadata(
        task="raw",
        inputs=(TensorSpec("x", (1, 8, 8, 3), "float32"),),
        outputs=(TensorSpec("y", (1, 4), "float32"),),
    ).to_dict()
    crop = {"name": "mesh", "file": "model.tflite", "crop": {}}
    last = {"name": "b", "file": "model.tflite", "window": 1, "hop": 1}
    nested = base | {
        "stages": [{"name": "a", "file": "stage_1.tflite", "window": 1, "hop": 1}, last]
    }
    with pytest.raises(MetadataError, match=r"stages\[0\].model cannot declare stages"):
        ModelMetadata.from_dict(base | {"stages": [
            {"name": "face", "file": "stage_1.tflite", "model": nested}, crop]})  # fmt: skip
    with pytest.raises(MetadataError, match=r"stages\[0\]\.model: metadata\.task"):
        ModelMetadata.from_dict(base | {"stages": [
            {"name": "face", "file": "stage_1.tflite", "model": {"task": "x"}}, crop]})  # fmt: skip
    with pytest.raises(MetadataError, match=r"stages\[1\].model must be an object, on a stage"):
        ModelMetadata.from_dict(base | {"stages": [
            {"name": "face", "file": "stage_1.tflite", "window": 1, "hop": 1},
            crop | {"model": base}]})  # fmt: skip
    detector = base | {"task": "detection"}
    fine = ModelMetadata.from_dict(base | {"stages": [
        {"name": "face", "file": "stage_1.tflite", "model": detector}, crop]})  # fmt: skip
    assert fine.stages[0].model == detector
    assert ModelMetadata.from_dict(fine.to_dict()) == fine


def test_a_crop_chain_is_a_detector_with_its_metadata_then_the_crop_stage() -> None:
    base = ModelMetadata(
        task="raw",
        inputs=(TensorSpec("x", (1, 8, 8, 3), "float32"),),
        outputs=(TensorSpec("y", (1, 4), "float32"),),
    ).to_dict()
    crop = {"name": "mesh", "file": "model.tflite", "crop": {}}
    bare = {"name": "face", "file": "stage_1.tflite", "window": 1, "hop": 1}
    with pytest.raises(MetadataError, match="a crop chain is two stages, a detector with its own"):
        ModelMetadata.from_dict(base | {"stages": [bare, crop]})
    with pytest.raises(MetadataError, match=r"stages\[0\]\.model\.task must be 'detection'"):
        ModelMetadata.from_dict(base | {"stages": [bare | {"model": base}, crop]})
