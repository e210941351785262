"""Canary files: strict loading (no pickles, exact arrays) and the tolerance check."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from typing import Any

import numpy as np
import pytest

from agent.schema.canary import CanaryError, check_canary, load_canary


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _good() -> bytes:
    return _npz(
        input=np.zeros((1, 8, 8, 1), np.int8),
        expected=np.array([[0.1, 0.9]], np.float32),
        atol=np.float32(0.05),
    )


def test_valid_canary_loads_with_its_dtypes() -> None:
    canary = load_canary(_good())
    assert (canary.input.dtype, canary.input.shape) == (np.dtype("int8"), (1, 8, 8, 1))
    assert canary.atol == pytest.approx(0.05)


def test_output_within_tolerance_passes_and_outside_fails() -> None:
    canary = load_canary(_good())
    ok = check_canary(np.array([[0.12, 0.88]], np.float32), canary)
    assert ok.passed
    assert ok.max_abs_error == pytest.approx(0.02, abs=1e-6)
    bad = check_canary(np.array([[0.3, 0.7]], np.float32), canary)
    assert not bad.passed
    assert bad.max_abs_error == pytest.approx(0.2, abs=1e-6)


def test_nan_output_fails() -> None:
    result = check_canary(np.array([[np.nan, 0.9]], np.float32), load_canary(_good()))
    assert not result.passed


def test_output_shape_mismatch_is_an_error() -> None:
    with pytest.raises(CanaryError, match=r"model output shape \(1, 3\) differs"):
        check_canary(np.zeros((1, 3), np.float32), load_canary(_good()))


def test_pickled_object_arrays_are_refused() -> None:
    data = _npz(
        input=np.array([object()], dtype=object),
        expected=np.zeros(1, np.float32),
        atol=np.float32(0.1),
    )
    with pytest.raises(CanaryError, match="not a valid npz"):
        load_canary(data)


def test_missing_or_extra_arrays_are_refused() -> None:
    data = _npz(input=np.zeros(1, np.float32), expected=np.zeros(1, np.float32))
    with pytest.raises(CanaryError, match="needs exactly the arrays"):
        load_canary(data)


def test_expected_must_be_float32_and_atol_a_scalar() -> None:
    wrong = _npz(
        input=np.zeros(1, np.float32), expected=np.zeros(1, np.float64), atol=np.float32(0.1)
    )
    with pytest.raises(CanaryError, match="expected output must be non-empty float32"):
        load_canary(wrong)
    vector = _npz(
        input=np.zeros(1, np.float32),
        expected=np.zeros(1, np.float32),
        atol=np.zeros(2, np.float32),
    )
    with pytest.raises(CanaryError, match="atol must be a float32 scalar"):
        load_canary(vector)


def test_garbage_bytes_are_refused() -> None:
    with pytest.raises(CanaryError, match="not a valid npz"):
        load_canary(b"not a zip file at all")


def test_unpacked_size_is_capped_before_loading() -> None:
    huge = _npz(
        input=np.zeros(20 << 20, np.uint8), expected=np.zeros(1, np.float32), atol=np.float32(0)
    )
    assert len(huge) < 1 << 20  # compresses well: a zip bomb in miniature
    with pytest.raises(CanaryError, match="unpacks to"):
        load_canary(huge)


def _npy_header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return out.getvalue() + bytes(16)


def test_a_declared_shape_larger_than_the_data_is_refused_before_allocating() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("input.npy", _npy_header_only((4000, 1000, 1000)))
        archive.writestr("expected.npy", _npy_header_only((1,)))
        archive.writestr("atol.npy", _npy_header_only(()))
    tracemalloc.start()
    with pytest.raises(CanaryError, match=r"input\.npy declares shape \(4000, 1000, 1000\)"):
        load_canary(out.getvalue())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20  # not the 16 GB the header asks for


def test_a_corrupt_deflate_stream_is_a_canary_error() -> None:
    out = io.BytesIO()
    np.savez_compressed(
        out, input=np.zeros(64, np.uint8), expected=np.zeros(1, np.float32), atol=np.float32(0)
    )
    data = bytearray(out.getvalue())
    info = zipfile.ZipFile(out).getinfo("input.npy")
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len  # the member's deflate stream
    data[start] = 0xFF  # an invalid block type
    with pytest.raises(CanaryError, match="not a valid npz"):
        load_canary(bytes(data))


def test_a_zip_needing_an_unsupported_feature_is_a_canary_error() -> None:
    data = bytearray(
        _npz(input=np.zeros(4, np.uint8), expected=np.zeros(1, np.float32), atol=np.float32(0))
    )
    central = data.index(b"PK\x01\x02")
    data[central + 6] = 64  # "version needed to extract" 6.4: zipfile refuses it
    with pytest.raises(CanaryError, match="not a valid npz"):
        load_canary(bytes(data))
