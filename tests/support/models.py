"""The sample model converted by OUR converter, once per test session, for every area's tests.

Use it from a test package's ``conftest.py`` (``pytest_plugins`` only works in the root
conftest, so import the fixtures instead)::

    import sys
    from pathlib import Path

    _ROOT = Path(__file__).resolve().parents[2]
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))

    from tests.support.models import converted_model, sample_models  # noqa: E402,F401

then in a test::

    def test_something(sample_models):
        model = sample_models("int8", "int8")   # ConvertedModel
        model.tflite.read_bytes(); model.metadata; model.canary; model.report["size_ratio"]

Each (quantize, io_type) pair is converted once per session (~5 s each) with real TensorFlow;
tests using it should be marked ``@pytest.mark.tensorflow``. Outside pytest,
``get_converted_model(tmp_root, quantize, io_type)`` does the same with a directory you choose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.fsutil import atomic_write
from agent.schema.meta import ModelMetadata

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
DIGITS_KERAS = DIGITS / "digits.keras"
CALIBRATION = DIGITS / "calibration.npz"
HELDOUT = DIGITS / "heldout.npz"
LABELS = DIGITS / "labels.txt"


@dataclass(frozen=True)
class ConvertedModel:
    """Files produced by ``edge-convert convert`` for the sample digits model."""

    quantize: str
    io_type: str
    tflite: Path
    metadata: Path
    canary: Path
    report: dict[str, Any]

    def model_bytes(self) -> bytes:
        return self.tflite.read_bytes()

    def model_metadata(self) -> ModelMetadata:
        return ModelMetadata.from_json(self.metadata.read_bytes())


def get_converted_model(tmp_root: Path, quantize: str, io_type: str = "float32") -> ConvertedModel:
    """Convert the sample model into ``tmp_root/<quantize>-<io_type>/`` unless already there."""
    directory = tmp_root / f"{quantize}-{io_type}"
    paths = {
        "tflite": directory / "digits.tflite",
        "metadata": directory / "metadata.json",
        "canary": directory / "canary.npz",
        "report": directory / "report.json",
    }
    if not all(p.exists() for p in paths.values()):
        _convert(directory, quantize, io_type, paths)
    return ConvertedModel(
        quantize=quantize,
        io_type=io_type,
        tflite=paths["tflite"],
        metadata=paths["metadata"],
        canary=paths["canary"],
        report=json.loads(paths["report"].read_text()),
    )


def _convert(directory: Path, quantize: str, io_type: str, paths: dict[str, Path]) -> None:
    from convert.api import ConvertOptions, convert_keras

    directory.mkdir(parents=True, exist_ok=True)
    options = ConvertOptions(
        quantize=quantize,
        io_type=io_type,
        representative=CALIBRATION if quantize == "int8" else None,
        validate=HELDOUT,
        labels=tuple(LABELS.read_text().split()),
    )
    result = convert_keras(DIGITS_KERAS, paths["tflite"], options)
    assert result.canary is not None
    atomic_write(paths["metadata"], result.metadata.to_json())
    atomic_write(paths["canary"], result.canary.to_npz())
    atomic_write(paths["report"], json.dumps(result.report, indent=2).encode())


ModelFactory = Callable[..., ConvertedModel]


@pytest.fixture(scope="session")
def sample_models(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    """``sample_models(quantize, io_type="float32") -> ConvertedModel``, cached per session."""
    root = tmp_path_factory.mktemp("sample-models")

    def converted_model(quantize: str, io_type: str = "float32") -> ConvertedModel:
        return get_converted_model(root, quantize, io_type)

    return converted_model


@pytest.fixture(scope="session")
def converted_model(sample_models: ModelFactory) -> ModelFactory:
    """The same factory as :func:`sample_models`, under the name the issue uses."""
    return sample_models
