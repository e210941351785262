"""Acceptance on the digits model: pruning, QAT and distillation with real TensorFlow and LiteRT.

One ``edge-convert compare`` run (a single worker process, trained once per module) produces
every variant; the tests read its JSON and the per-variant reports. Accuracy is on
``heldout.npz``, the split the training (``train.npz``) never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from convert.cli import main
from convert.tflite_info import read_weights

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    code = main(
        [
            "compare",
            str(DIGITS / "digits.keras"),
            "-o",
            str(out),
            "--data",
            str(DIGITS / "train.npz"),
            "--validate",
            str(DIGITS / "heldout.npz"),
            "--representative",
            str(DIGITS / "calibration.npz"),
            "--student",
            str(DIGITS / "student.keras"),
            "--variants",
            "float32,int8-ptq,int8-qat,pruned-int8,distilled-int8",
            "--runs",
            "20",
        ]
    )
    assert code == 0
    return out


def _report(directory: Path, variant: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((directory / f"{variant}.json").read_text())
    return report


def test_pruned_int8_keeps_accuracy_within_one_point_with_three_quarters_zeros(
    comparison: Path,
) -> None:
    report = _report(comparison, "pruned-int8")
    validation = report["validation"]
    assert validation["samples"] == 360
    assert validation["accuracy_drop_points"] <= 1.0
    assert report["weight_sparsity"]["zero_fraction"] >= 0.75
    assert report["training"]["sparsity_target"] == 0.8
    assert report["training"]["kept_dense"] == ["conv2d", "probabilities"]


def test_pruned_file_keeps_its_zeros_as_int8_and_deflates_far_smaller(comparison: Path) -> None:
    weights = read_weights((comparison / "pruned-int8.tflite").read_bytes())
    dense = next(w for w in weights if w.shape == (64, 2048))
    assert dense.dtype == "int8"
    assert dense.data.count(0) >= 0.79 * len(dense.data)
    pruned, ptq = _report(comparison, "pruned-int8"), _report(comparison, "int8-ptq")
    assert pruned["size_bytes"] == pytest.approx(ptq["size_bytes"], rel=0.02)
    assert pruned["deflate_size_bytes"] <= 0.6 * ptq["deflate_size_bytes"]


def test_pruned_report_says_the_xnnpack_sparse_path_cannot_help_this_model(
    comparison: Path,
) -> None:
    xnnpack = _report(comparison, "pruned-int8")["xnnpack"]
    assert xnnpack["sparse_float_filters"] == 2  # the two pruned layers; small ones stay dense
    assert xnnpack["sparse_1x1_convolutions"] == 0
    assert xnnpack["sparse_path_used"] is False
    assert set(xnnpack["latency_ms"]) == {
        f"{model}/{kernels}"
        for model in ("converted", "dense_float32", "sparse_float32")
        for kernels in ("xnnpack", "builtin")
    }
    assert all(value > 0 for value in xnnpack["latency_ms"].values())
    weights = read_weights((comparison / "pruned-int8.tflite").read_bytes())
    assert not any(w.sparse for w in weights)  # int8 stays dense-format: zeros, no DENSIFY


def test_qat_int8_is_at_least_as_accurate_as_ptq_int8(comparison: Path) -> None:
    qat = _report(comparison, "int8-qat")["validation"]
    ptq = _report(comparison, "int8-ptq")["validation"]
    assert qat["tflite_accuracy"] >= ptq["tflite_accuracy"]
    assert qat["samples"] == ptq["samples"] == 360


def test_distilled_student_has_a_quarter_of_the_parameters_within_two_points(
    comparison: Path,
) -> None:
    report = _report(comparison, "distilled-int8")
    training = report["training"]
    assert training["student_parameters"] * 4 <= training["teacher_parameters"]
    assert report["validation"]["accuracy_drop_points"] <= 2.0
    assert report["size_bytes"] * 4 <= _report(comparison, "int8-ptq")["size_bytes"]


def test_comparison_writes_json_table_and_plot(comparison: Path) -> None:
    document = json.loads((comparison / "compare.json").read_text())
    variants = [row["variant"] for row in document["variants"]]
    assert variants == ["float32", "int8-ptq", "int8-qat", "pruned-int8", "distilled-int8"]
    assert document["keras_accuracy"] == pytest.approx(0.9778, abs=1e-4)
    assert all(row["latency_ms"] > 0 for row in document["variants"])
    table = (comparison / "compare.md").read_text().splitlines()
    assert len(table) == 2 + len(variants)
    assert (comparison / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
