"""The report, metadata and canary of a real int8 conversion hold the right values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.pipeline.tensors import dequantize
from convert.cli import main
from convert.litert_run import LiteRTModel
from convert.tflite_info import read_tflite
from tests.support.models import ModelFactory

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"

pytestmark = pytest.mark.tensorflow


def test_report_describes_the_int8_file(sample_models: ModelFactory) -> None:
    model = sample_models("int8", "int8")
    report = model.report
    info = read_tflite(model.model_bytes())
    assert report["quantization"] == "int8"
    assert report["io_type"] == "int8"
    assert report["size_bytes"] == model.tflite.stat().st_size
    assert report["size_ratio"] == round(report["size_bytes"] / report["float32_size_bytes"], 4)
    assert report["inputs"] == [
        {
            "name": info.inputs[0].spec.name,
            "shape": [1, 8, 8, 1],
            "shape_signature": [1, 8, 8, 1],
            "dtype": "int8",
            "scale": info.inputs[0].spec.scale,
            "zero_point": info.inputs[0].spec.zero_point,
        }
    ]
    # An input in [0, 1] calibrated over real digits spans the whole int8 range.
    assert report["inputs"][0]["zero_point"] == -128
    assert report["inputs"][0]["scale"] == pytest.approx(1 / 255, rel=1e-3)
    assert report["outputs"][0]["dtype"] == "int8"
    names = {op["name"] for op in report["operators"]}
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= names
    assert all(op["version"] >= 1 for op in report["operators"])
    assert report["min_runtime_version"] == info.min_runtime_version
    assert report["min_runtime_version"].count(".") == 2
    assert report["latency"]["threads"] == 2
    assert report["latency"]["median_ms"] > 0
    assert report["calibration_samples"] == 300
    assert report["validation"]["top1_agreement"] >= 0.98
    assert report["edgetpu"] is None


def test_metadata_matches_the_converted_tensors(sample_models: ModelFactory) -> None:
    model = sample_models("int8", "int8")
    meta = model.model_metadata()
    info = read_tflite(model.model_bytes())
    assert meta.task == "classification"
    assert meta.scores == "probabilities"
    assert meta.quantization == "int8"
    assert meta.inputs == (info.inputs[0].spec,)
    assert meta.outputs == (info.outputs[0].spec,)
    assert (meta.preprocess.color, meta.preprocess.mean, meta.preprocess.std) == (
        "gray",
        (0.0,),
        (255.0,),
    )
    assert meta.labels == tuple(str(d) for d in range(10))


def test_canary_reproduces_on_a_fresh_interpreter(sample_models: ModelFactory) -> None:
    model = sample_models("int8", "int8")
    runtime = LiteRTModel(model.model_bytes(), threads=1)
    with np.load(model.canary) as canary:
        output = dequantize(runtime.invoke_raw(canary["input"]), runtime.output_spec)
        np.testing.assert_allclose(output, canary["expected"], atol=float(canary["atol"]))


def test_cli_writes_report_metadata_and_canary_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "digits.tflite"
    argv = ["convert", str(DIGITS / "digits.keras"), "-o", str(out), "--quantize", "dynamic"]
    argv += ["--validate", str(DIGITS / "heldout.npz"), "--max-accuracy-drop", "1"]
    argv += ["--report", str(tmp_path / "r.json"), "--metadata", str(tmp_path / "m.json")]
    argv += ["--canary", str(tmp_path / "c.npz"), "--threads", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "top-1 agreement" in captured.out
    assert "edge-convert: converting to dynamic..." in captured.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["quantization"] == "dynamic"
    assert report["latency"]["threads"] == 1
    assert json.loads((tmp_path / "m.json").read_text())["quantization"] == "dynamic"
    with np.load(tmp_path / "c.npz") as canary:
        assert canary["input"].dtype == np.float32
        assert float(canary["atol"]) == pytest.approx(1e-4)
