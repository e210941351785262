from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.errors import InputError
from agent.pipeline.geometry import letterbox_geometry, validate_frame
from agent.pipeline.preprocess import Preprocessor
from agent.pipeline.tensors import window_to_input
from agent.schema.meta import ModelMetadata, Preprocess, TensorSpec


def _meta(
    shape: tuple[int, ...],
    dtype: str = "float32",
    *,
    scale: float = 0.0,
    zero_point: int = 0,
    color: str = "rgb",
    resize: str = "stretch",
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (255.0,),
) -> ModelMetadata:
    return ModelMetadata(
        task="classification",
        inputs=(TensorSpec("in", shape, dtype, scale, zero_point),),
        outputs=(TensorSpec("out", (1, 2), "float32"),),
        preprocess=Preprocess(color, resize, mean, std),  # type: ignore[arg-type]
    )


def _rng_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_float_input_is_normalised_rgb_with_batch_dim() -> None:
    frame = _rng_frame(4, 4)
    pre = Preprocessor(_meta((1, 4, 4, 3), mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0)))
    tensor, geometry = pre(frame)
    rgb = frame[:, :, ::-1].astype(np.float32)
    expected = (rgb - np.array([10, 20, 30], np.float32)) / np.array([2, 4, 8], np.float32)
    assert tensor.shape == (1, 4, 4, 3)
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor[0], expected, rtol=1e-6)
    assert (geometry.scale_x, geometry.scale_y, geometry.pad_x, geometry.pad_y) == (1, 1, 0, 0)


def test_int8_input_is_quantized_with_scale_and_zero_point() -> None:
    frame = _rng_frame(3, 5, seed=1)
    meta = _meta((1, 3, 5, 3), "int8", scale=1 / 255, zero_point=-128, color="bgr")
    tensor, _ = Preprocessor(meta)(frame)
    assert tensor.dtype == np.int8
    expected = np.clip(np.rint(frame.astype(np.float64)) - 128, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(tensor[0], expected)


def test_uint8_input_with_offset_mean_clips_to_range() -> None:
    frame = np.array([[[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    meta = _meta((1, 1, 2, 3), "uint8", scale=0.5, zero_point=10, mean=(100.0,), std=(1.0,))
    tensor, _ = Preprocessor(meta)(frame)
    # (0-100)/0.5+10 = -190 -> 0 ; (255-100)/0.5+10 = 320 -> 255
    assert tensor[0, 0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_float16_input_is_cast() -> None:
    tensor, _ = Preprocessor(_meta((1, 2, 2, 3), "float16"))(_rng_frame(2, 2))
    assert tensor.dtype == np.float16


def test_colour_order_follows_metadata() -> None:
    blue_bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    blue_bgr[:, :, 0] = 255
    rgb, _ = Preprocessor(_meta((1, 2, 2, 3), std=(1.0,)))(blue_bgr)
    bgr, _ = Preprocessor(_meta((1, 2, 2, 3), std=(1.0,), color="bgr"))(blue_bgr)
    assert rgb[0, 0, 0].tolist() == [0.0, 0.0, 255.0]
    assert bgr[0, 0, 0].tolist() == [255.0, 0.0, 0.0]


def test_gray_model_converts_bgr_and_accepts_gray_frames() -> None:
    frame = _rng_frame(8, 8, seed=2)
    pre = Preprocessor(_meta((1, 8, 8, 1), std=(1.0,)))
    from_bgr, _ = pre(frame)
    from_gray, _ = pre(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert from_bgr.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(from_bgr, from_gray)


def test_gray_frame_feeds_a_colour_model_by_replicating_channels() -> None:
    gray = np.full((2, 2), 7, dtype=np.uint8)
    tensor, _ = Preprocessor(_meta((1, 2, 2, 3), std=(1.0,)))(gray)
    assert tensor[0, 1, 1].tolist() == [7.0, 7.0, 7.0]


def test_stretch_downscale_uses_area_interpolation() -> None:
    frame = _rng_frame(64, 48, seed=3)
    tensor, geometry = Preprocessor(
        _meta((1, 16, 12, 3), "uint8", scale=1.0, color="bgr", std=(1.0,))
    )(frame)
    expected = cv2.resize(frame, (12, 16), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(tensor[0], expected)
    assert (geometry.scale_x, geometry.scale_y) == (0.25, 0.25)


def test_letterbox_keeps_aspect_and_pads_with_pad_value() -> None:
    frame = np.full((50, 100, 3), 200, dtype=np.uint8)
    meta = _meta((1, 100, 100, 3), "uint8", scale=1.0, resize="letterbox", std=(1.0,))
    tensor, geometry = Preprocessor(meta, pad_value=0)(frame)
    assert (geometry.scale_x, geometry.pad_x, geometry.pad_y) == (1.0, 0, 25)
    assert tensor[0, :25].max() == 0
    assert tensor[0, 75:].max() == 0
    assert tensor[0, 25:75].min() == 200


def test_letterbox_round_trip_maps_a_drawn_box_back_to_the_frame() -> None:
    frame = np.zeros((480, 640, 3), dtype=np.uint8)
    x0, y0, x1, y1 = 160, 120, 480, 360  # a white rectangle, pixel edges
    frame[y0:y1, x0:x1] = 255
    meta = _meta((1, 320, 320, 3), "uint8", scale=1.0, resize="letterbox", std=(1.0,))
    tensor, geometry = Preprocessor(meta)(frame)
    ys, xs = np.nonzero(tensor[0, :, :, 0] > 127)
    model_box = (xs.min() / 320, ys.min() / 320, (xs.max() + 1) / 320, (ys.max() + 1) / 320)
    back = geometry.to_frame(*model_box)
    assert back == pytest.approx((x0 / 640, y0 / 480, x1 / 640, y1 / 480), abs=1 / 320)


def test_letterbox_geometry_is_exact_for_a_wide_frame() -> None:
    g = letterbox_geometry(640, 480, 300, 300)
    assert (g.scale_x, g.scale_y) == (300 / 640, 225 / 480)
    assert (g.pad_x, g.pad_y) == (0, 37)
    assert g.to_frame(0.0, 37 / 300, 1.0, 262 / 300) == pytest.approx((0.0, 0.0, 1.0, 1.0))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ([[1, 2]], "numpy array"),
        (np.zeros((4, 4, 3), dtype=np.float32), "must be uint8"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "HxWx3"),
        (np.zeros((4,), dtype=np.uint8), "HxWx3"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "frame size 4x0"),
        (np.zeros((9000, 1), dtype=np.uint8), "frame size 1x9000"),
    ],
)
def test_bad_frames_are_input_errors(frame: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_frame(frame)


def test_pixel_cap_rejects_large_frames() -> None:
    with pytest.raises(InputError, match="100 pixels"):
        validate_frame(np.zeros((20, 20), dtype=np.uint8), max_pixels=100)


def test_non_image_input_shape_is_rejected_at_construction() -> None:
    with pytest.raises(InputError, match=r"\[1, H, W, 1\|3\]"):
        Preprocessor(_meta((1, 64)))


def test_mean_with_wrong_channel_count_is_rejected() -> None:
    with pytest.raises(InputError, match=r"preprocess\.mean has 3 values"):
        Preprocessor(_meta((1, 4, 4, 1), mean=(1.0, 2.0, 3.0)))


def test_window_to_input_reshapes_and_quantizes() -> None:
    spec = TensorSpec("w", (1, 3, 2), "int8", scale=0.5, zero_point=0)
    window = np.array([[0.0, 0.5], [1.0, 1.5], [2.0, 100.0]], dtype=np.float32)
    tensor = window_to_input(window, spec)
    assert tensor.dtype == np.int8
    assert tensor.tolist() == [[[0, 1], [2, 3], [4, 127]]]


def test_window_of_wrong_size_is_an_input_error() -> None:
    with pytest.raises(InputError, match="needs 6"):
        window_to_input(np.zeros((2, 2)), TensorSpec("w", (1, 3, 2), "float32"))


def test_non_integer_downscale_decimates_by_area_then_finishes_linearly() -> None:
    frame = _rng_frame(480, 640, seed=4)
    meta = _meta((1, 224, 224, 3), "uint8", scale=1.0, color="bgr", std=(1.0,))
    tensor, _ = Preprocessor(meta)(frame)
    half = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    expected = cv2.resize(half, (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(tensor[0], expected)


def test_per_channel_quantized_table_matches_the_formula() -> None:
    frame = _rng_frame(6, 6, seed=5)
    meta = _meta(
        (1, 6, 6, 3),
        "int8",
        scale=0.02,
        zero_point=3,
        mean=(120.0, 110.0, 100.0),
        std=(60.0, 55.0, 50.0),
    )
    tensor, _ = Preprocessor(meta)(frame)
    rgb = frame[:, :, ::-1].astype(np.float64)
    x = (rgb - np.array([120.0, 110.0, 100.0])) / np.array([60.0, 55.0, 50.0])
    expected = np.clip(np.rint(x / 0.02) + 3, -128, 127).astype(np.int8)
    assert np.max(np.abs(tensor[0].astype(int) - expected.astype(int))) <= 1
    assert np.mean(tensor[0] == expected) > 0.95  # float32 vs float64 at rounding ties
