"""Calibration and validation data: load, shape-check and preprocess it for a model input.

No TensorFlow here: the conversion worker calls these with the model's input shape, and they
raise :class:`~agent.errors.InputError` naming what was expected and what was found.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.errors import InputError
from agent.schema.meta import Preprocess

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MIN_RECOMMENDED_SAMPLES = 100

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Labeled:
    """Validation samples ``x`` (float32, shape ``(N, *input)``) and optional integer labels."""

    x: Float32Array
    y: npt.NDArray[np.int64] | None


def load_representative(
    path: Path, input_shape: tuple[int, ...], preprocess: Preprocess, limit: int
) -> Float32Array:
    """Calibration samples for a model whose input (without batch) is ``input_shape``."""
    if not path.exists():
        raise InputError(f"representative data {path} does not exist")
    if path.is_dir():
        samples = _load_image_dir(path, input_shape, preprocess, limit)
    else:
        samples = _check_array(_load_array(path), input_shape, f"representative data {path}")
    if len(samples) == 0:
        raise InputError(f"representative data {path} holds no samples")
    return samples[:limit]


def load_validation(
    path: Path, input_shape: tuple[int, ...], what: str = "validation data"
) -> Labeled:
    """Labelled samples from an ``.npz`` with ``x`` and optionally ``y``."""
    arrays = _load_npz(path)
    if "x" not in arrays:
        raise InputError(f"{what} {path} has no array 'x' (found: {sorted(arrays)})")
    x = _check_array(arrays["x"], input_shape, f"{what} {path}")
    if len(x) == 0:
        raise InputError(f"{what} {path} holds no samples")
    y = arrays.get("y")
    if y is None:
        return Labeled(x, None)
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise InputError(
            f"{what} {path}: y must be {len(x)} integer labels, got {y.dtype} {y.shape}"
        )
    return Labeled(x, y.astype(np.int64))


def _load_npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not a readable .npz file: {exc}") from None


def _load_array(path: Path) -> npt.NDArray[np.generic]:
    if path.suffix == ".npz":
        arrays = _load_npz(path)
        if not arrays:
            raise InputError(f"representative data {path} holds no arrays")
        return arrays["x"] if "x" in arrays else next(iter(arrays.values()))
    if path.suffix == ".npy":
        try:
            array: npt.NDArray[np.generic] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path} is not a readable .npy file: {exc}") from None
        return array
    raise InputError(
        f"representative data {path} must be a directory of images, a .npy or a .npz file"
    )


def _check_array(
    array: npt.NDArray[np.generic], input_shape: tuple[int, ...], what: str
) -> Float32Array:
    expected = "(N, " + ", ".join(str(d) for d in input_shape) + ")"
    if array.ndim != len(input_shape) + 1 or tuple(array.shape[1:]) != input_shape:
        raise InputError(
            f"{what}: expected shape {expected} float32 to match the model input, "
            f"got {tuple(array.shape)} {array.dtype}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(
            f"{what}: expected float32 samples already scaled like the model input, "
            f"got dtype {array.dtype}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _load_image_dir(
    directory: Path, input_shape: tuple[int, ...], preprocess: Preprocess, limit: int
) -> Float32Array:
    if len(input_shape) != 3:
        raise InputError(
            f"representative images need a model input of shape (H, W, C); the model takes "
            f"{input_shape}"
        )
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"representative directory {directory} contains no images")
    return np.stack([_load_image(p, input_shape, preprocess) for p in files[:limit]])


def _load_image(path: Path, input_shape: tuple[int, ...], preprocess: Preprocess) -> Float32Array:
    import cv2

    height, width, channels = input_shape
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot decode image {path}")
    return prepare_image(np.asarray(bgr, dtype=np.uint8), height, width, channels, preprocess)


def prepare_image(
    bgr: npt.NDArray[np.uint8], height: int, width: int, channels: int, preprocess: Preprocess
) -> Float32Array:
    """Resize a BGR uint8 image and scale it the way the model metadata says."""
    import cv2

    if channels == 1 or preprocess.color == "gray":
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None]
    elif preprocess.color == "rgb":
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        pixels = bgr
    if pixels.shape[-1] != channels:
        raise InputError(
            f"colour {preprocess.color!r} gives {pixels.shape[-1]} channels; model wants {channels}"
        )
    resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    resized = resized.reshape(height, width, channels).astype(np.float32)
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    scaled: Float32Array = ((resized - mean) / std).astype(np.float32)
    return scaled
