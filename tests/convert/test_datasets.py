"""Calibration and validation data loading (no TensorFlow): images, arrays, shape checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.errors import InputError
from agent.schema.meta import Preprocess
from convert.datasets import load_representative, load_validation


def _write_images(directory: Path, count: int) -> None:
    directory.mkdir()
    for i in range(count):
        image = np.full((32, 24, 3), (0, 0, 255), np.uint8)  # pure red in BGR
        image[:, :, 0] = i  # a little blue, different per image
        cv2.imwrite(str(directory / f"{i:03}.png"), image)
    (directory / "notes.txt").write_text("not an image")


def test_image_directory_is_resized_converted_and_scaled(tmp_path: Path) -> None:
    _write_images(tmp_path / "images", 5)
    samples = load_representative(tmp_path / "images", (8, 8, 3), Preprocess(color="rgb"), 300)
    assert samples.shape == (5, 8, 8, 3)
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples[4, 0, 0], [1.0, 0.0, 4 / 255], atol=1e-6)


def test_image_directory_respects_the_sample_limit(tmp_path: Path) -> None:
    _write_images(tmp_path / "images", 5)
    samples = load_representative(tmp_path / "images", (4, 4, 1), Preprocess(color="gray"), 3)
    assert samples.shape == (3, 4, 4, 1)


def test_npz_uses_key_x_and_the_sample_limit(tmp_path: Path) -> None:
    path = tmp_path / "cal.npz"
    np.savez(path, other=np.zeros((3,)), x=np.ones((10, 8, 8, 1)))
    samples = load_representative(path, (8, 8, 1), Preprocess(), 4)
    assert samples.shape == (4, 8, 8, 1)
    assert samples.dtype == np.float32


def test_integer_samples_are_rejected_naming_the_dtype(tmp_path: Path) -> None:
    path = tmp_path / "cal.npy"
    np.save(path, np.zeros((10, 8, 8, 1), np.uint8))
    with pytest.raises(InputError, match=r"got dtype uint8$"):
        load_representative(path, (8, 8, 1), Preprocess(), 300)


def test_validation_labels_must_be_one_integer_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "val.npz"
    np.savez(path, x=np.zeros((4, 8, 8, 1), np.float32), y=np.zeros((3,), np.int64))
    with pytest.raises(InputError, match=r"y must be 4 integer labels, got int64 \(3,\)$"):
        load_validation(path, (8, 8, 1))


def test_validation_without_x_names_the_keys_found(tmp_path: Path) -> None:
    path = tmp_path / "val.npz"
    np.savez(path, images=np.zeros((4, 8, 8, 1), np.float32))
    with pytest.raises(InputError, match=r"has no array 'x' \(found: \['images'\]\)$"):
        load_validation(path, (8, 8, 1))
