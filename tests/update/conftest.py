"""Models only the update tests need, built once per session with the real converter."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agent.runtime import open_model

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class NanModel:
    """A model whose canary (all-zero input) passes but whose real frames give NaN."""

    tflite: bytes
    metadata: bytes
    canary: bytes


@pytest.fixture(scope="session")
def nan_model(tmp_path_factory: pytest.TempPathFactory) -> NanModel:
    out = tmp_path_factory.mktemp("nan-model")
    subprocess.run(
        [sys.executable, "-m", "tests.update.nanmodel", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    tflite = (out / "nan.tflite").read_bytes()
    model = open_model(tflite, threads=1)
    zeros = np.zeros((1, 8, 8, 1), np.float32)
    expected = model.invoke([zeros])[0].astype(np.float32)
    assert np.all(np.isfinite(expected))
    assert not np.any(np.isfinite(model.invoke([np.ones_like(zeros)])[0]))
    model.close()
    canary = io.BytesIO()
    np.savez(canary, input=zeros, expected=expected, atol=np.float32(1e-4))
    return NanModel(tflite, (out / "metadata.json").read_bytes(), canary.getvalue())
