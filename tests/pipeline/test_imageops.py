"""The pixel layer gives the same images with OpenCV and with numpy alone (scikit-image photos).

Measured on the four photos at 640×480 (docs/inference.md, "Without OpenCV"): resize differs by
at most 2 grey levels (mean ≤ 0.4) where a bilinear step is involved and not at all on an exact
decimation (≤ 1 on 4×4 blocks); gray conversion and the affine warp by at most 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from agent.pipeline import imageops
from agent.pipeline.crop import CropRect, frame_to_crop
from tests.support.photos import PHOTOS, photo


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def use(name: str) -> None:
        monkeypatch.setenv(imageops.ENV, "on" if name == "opencv" else "off")
        assert imageops.backend() == name

    return use


def _both(use: Callable[[str], None], op: Callable[[], np.ndarray]) -> tuple[int, float]:
    use("opencv")
    a = op()
    use("numpy")
    b = op()
    assert a.shape == b.shape
    assert a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(diff.max()), float(diff.mean())


def test_off_hides_opencv_and_auto_uses_it_when_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(imageops.ENV, "off")
    assert imageops.opencv() is None
    assert imageops.backend() == "numpy"
    monkeypatch.setenv(imageops.ENV, "auto")
    assert imageops.backend() == "opencv"  # the dev venv has the video extra


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("size", [(224, 224), (300, 300), (96, 96), (192, 108)])
def test_resize_agrees_within_two_grey_levels(
    backends: Callable[[str], None], name: str, size: tuple[int, int]
) -> None:
    frame = photo(name)
    worst, mean = _both(backends, lambda: imageops.resize(frame, *size))
    assert worst <= 2
    assert mean < 0.4


def test_an_exact_decimation_is_a_block_mean_in_both(backends: Callable[[str], None]) -> None:
    frame = photo("astronaut")
    assert _both(backends, lambda: imageops.resize(frame, 320, 240)) == (0, 0.0)
    worst, _ = _both(backends, lambda: imageops.resize(frame[:, :, 1], 160, 120))
    assert worst <= 1  # OpenCV rounds 4x4 blocks in fixed point


def test_unequal_decimation_factors_are_a_block_mean_too(backends: Callable[[str], None]) -> None:
    # 640x480 -> 320x480 and 160x480: OpenCV halves by INTER_LINEAR, numpy sums blocks
    frame = photo("astronaut")
    worst, _ = _both(backends, lambda: imageops.resize(frame, 320, 480))
    assert worst <= 1
    worst, _ = _both(backends, lambda: imageops.resize(frame, 160, 240))
    assert worst <= 1


@pytest.mark.parametrize("name", PHOTOS)
def test_gray_and_channel_swap_agree(backends: Callable[[str], None], name: str) -> None:
    frame = photo(name)
    assert _both(backends, lambda: imageops.to_gray(frame))[0] <= 1
    assert _both(backends, lambda: imageops.swap_rb(frame)) == (0, 0.0)


@pytest.mark.parametrize(
    "rect",
    [CropRect(320, 200, 250, 0.4), CropRect(600, 60, 300, 0.0), CropRect(100, 400, 90, -2.0)],
)
def test_affine_warp_agrees_within_one_grey_level_also_off_the_frame(
    backends: Callable[[str], None], rect: CropRect
) -> None:
    frame = photo("astronaut")
    matrix = frame_to_crop(rect, (192, 192))
    worst, _ = _both(backends, lambda: imageops.warp_affine(frame, matrix, (192, 192)))
    assert worst <= 1


def test_lut_tables_give_the_same_tensor(backends: Callable[[str], None]) -> None:
    frame = photo("coffee", (32, 32))
    lut = np.stack([np.arange(256, dtype=np.float32) / d for d in (1.0, 2.0, 4.0)])
    backends("opencv")
    with_cv = imageops.apply_lut(frame, lut, imageops.opencv_lut(lut, 3))
    backends("numpy")
    assert imageops.opencv_lut(lut, 3) is None
    np.testing.assert_array_equal(imageops.apply_lut(frame, lut, None), with_cv)
