"""Canaries: a golden input and its expected output, checked on the device before a model is
swapped in.

``canary.npz`` holds ``input`` (the exact model input tensor, batch dimension included, in the
input dtype), ``expected`` (float32, the dequantized output) and ``atol`` (a float32 scalar).
Pure: bytes in, values out; no pickles are ever loaded.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.errors import InputError

MAX_CANARY_BYTES = 16 << 20
_KEYS = {"input", "expected", "atol"}
_INPUT_DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")


class CanaryError(InputError, ValueError):
    """The canary file is malformed, too large, or does not fit the model's output."""


@dataclass(frozen=True)
class Canary:
    input: npt.NDArray[np.generic]
    expected: npt.NDArray[np.float32]
    atol: float


@dataclass(frozen=True)
class CanaryResult:
    passed: bool
    max_abs_error: float
    atol: float


def load_canary(npz_bytes: bytes | memoryview) -> Canary:
    """Parse ``canary.npz`` bytes strictly (size capped, no pickles, exact keys and dtypes)."""
    if len(npz_bytes) > MAX_CANARY_BYTES:
        raise CanaryError(f"canary is {len(npz_bytes)} bytes, limit is {MAX_CANARY_BYTES}")
    try:
        with np.load(io.BytesIO(bytes(npz_bytes)), allow_pickle=False) as npz:
            _check_members(npz.zip)
            if set(npz.files) != _KEYS:
                raise CanaryError(
                    f"canary needs exactly the arrays {sorted(_KEYS)}, got {npz.files}"
                )
            arrays = {key: npz[key] for key in _KEYS}
    except (
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        # NotImplementedError: zip features zipfile lacks; zlib.error: a corrupt deflate stream
        if isinstance(exc, CanaryError):
            raise
        raise CanaryError(f"canary is not a valid npz file: {exc}") from None
    return _canary(arrays)


def _check_members(archive: zipfile.ZipFile) -> None:
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_CANARY_BYTES:
        raise CanaryError(f"canary unpacks to {total} bytes, limit is {MAX_CANARY_BYTES}")
    for info in archive.infolist():
        _check_array_header(archive, info)


def _check_array_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """An ``.npy`` member's declared shape must fit in the member's own (capped) size.

    numpy allocates the whole declared array before it reads the data, so a 1 KiB file that
    declares a 16 GB shape would otherwise cost 16 GB (or a MemoryError).
    """
    if not info.filename.endswith(".npy"):
        return
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise CanaryError(f"canary {info.filename}: unsupported .npy version {version}")
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size:
        raise CanaryError(
            f"canary {info.filename} declares shape {shape} ({declared} bytes) "
            f"but holds {info.file_size} bytes"
        )


def _canary(arrays: dict[str, npt.NDArray[np.generic]]) -> Canary:
    model_input, expected, atol = arrays["input"], arrays["expected"], arrays["atol"]
    if model_input.dtype.name not in _INPUT_DTYPES or model_input.ndim < 1:
        raise CanaryError(f"canary input has unsupported dtype {model_input.dtype} or no shape")
    if expected.dtype != np.float32 or expected.size == 0:
        raise CanaryError(f"canary expected output must be non-empty float32, is {expected.dtype}")
    if not np.all(np.isfinite(expected)):
        raise CanaryError("canary expected output has non-finite values")
    if atol.shape != () or atol.dtype != np.float32:
        raise CanaryError(f"canary atol must be a float32 scalar, is {atol.dtype} {atol.shape}")
    tolerance = float(atol)
    if not math.isfinite(tolerance) or tolerance < 0:
        raise CanaryError(f"canary atol must be finite and >= 0, is {tolerance}")
    return Canary(model_input, expected.astype(np.float32, copy=False), tolerance)


def check_canary(output: npt.NDArray[np.floating], canary: Canary) -> CanaryResult:
    """Compare a dequantized model output with the canary's expected output."""
    if output.shape != canary.expected.shape:
        raise CanaryError(
            f"model output shape {output.shape} differs from canary {canary.expected.shape}"
        )
    error = np.abs(output.astype(np.float32) - canary.expected)
    max_error = float(np.max(error))
    passed = bool(np.all(np.isfinite(output))) and max_error <= canary.atol
    return CanaryResult(passed, max_error, canary.atol)
