"""The pure parts of the compression reports: XNNPACK verdict, comparison table, epoch ticks."""

from __future__ import annotations

import numpy as np
import pytest

from convert._training import outputs_probabilities
from convert._worker import _epoch_tick
from convert.comparison import Row, format_markdown
from convert.progress import parse_tick
from convert.sparse_path import summarize

LATENCY = {
    "converted/xnnpack": 0.01,
    "converted/builtin": 0.03,
    "dense_float32/xnnpack": 0.02,
    "dense_float32/builtin": 0.1,
    "sparse_float32/xnnpack": 0.01,
    "sparse_float32/builtin": 0.1,
}


def test_no_pointwise_convolution_means_no_sparse_path_whatever_the_timing() -> None:
    summary = summarize(LATENCY, {"sparse_float_filters": 4, "sparse_1x1_convolutions": 0}, 2, 20)
    assert summary["sparse_path_used"] is False
    assert summary["sparse_speedup"] == 2.0
    assert summary["note"].endswith(
        "no 1x1 convolution, the only layer its sparse (NCHW) kernels run, so it densifies "
        "the weights at load time (measured dense/sparse time ratio 2.00)"
    )
    assert summary["runs"] == 100


def test_sparse_pointwise_convolutions_that_run_faster_use_the_sparse_path() -> None:
    summary = summarize(LATENCY, {"sparse_float_filters": 5, "sparse_1x1_convolutions": 3}, 2, 20)
    assert summary["sparse_path_used"] is True
    assert summary["note"] == "the sparse float32 model runs 2.00x faster with XNNPACK than dense"


def test_sparse_model_no_faster_than_dense_is_not_called_sparse() -> None:
    latency = {**LATENCY, "sparse_float32/xnnpack": 0.019}
    summary = summarize(latency, {"sparse_float_filters": 5, "sparse_1x1_convolutions": 3}, 2, 20)
    assert summary["sparse_path_used"] is False
    assert "only 1.05x" in summary["note"]


def test_nothing_stored_sparse_gets_no_hint() -> None:
    summary = summarize(LATENCY, {"sparse_float_filters": 0, "sparse_1x1_convolutions": 0}, 2, 20)
    assert summary["sparse_path_used"] is False
    assert summary["note"].startswith("no float filter was stored in the sparse format")


def _row(variant: str, accuracy: float | None) -> Row:
    return Row(
        variant, "ptq", f"{variant}.tflite", 2048, 1024, 0.5, None, 0.0123, accuracy, 0.99, None
    )


def test_markdown_table_has_sizes_in_kib_and_drop_against_keras() -> None:
    table = format_markdown(0.98, [_row("int8-ptq", 0.97), _row("broken", None)])
    lines = table.splitlines()
    assert lines[0].startswith("| variant | size KiB | deflated KiB | zero weights |")
    assert lines[2] == "| int8-ptq | 2.0 | 1.0 | 50.0% | 0.0123 | 97.00% | +1.00 | 99.00% |"
    assert lines[3] == "| broken | 2.0 | 1.0 | 50.0% | 0.0123 | - | - | 99.00% |"


def test_softmax_outputs_are_probabilities_logits_are_not() -> None:
    probabilities = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    assert outputs_probabilities(probabilities)
    assert not outputs_probabilities(np.array([[2.0, -1.0], [0.3, 0.1]], np.float32))


def test_training_epochs_reach_the_parent_as_counted_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _epoch_tick("epoch", 3, 15, "accuracy 0.9986, loss 0.0110")
    line = capsys.readouterr().err
    assert line == "PROGRESS TICK epoch 3 15\n"
    assert parse_tick(line.removeprefix("PROGRESS ").strip()) == ("epoch", 3, 15)


def test_distillation_table_names_the_teacher_as_the_reference() -> None:
    from convert.report import format_table

    report = {
        "source": "teacher.keras",
        "output": "student.tflite",
        "quantization": "int8",
        "io_type": "float32",
        "inputs": [],
        "outputs": [],
        "size_bytes": 9000,
        "float32_size_bytes": 36000,
        "size_ratio": 0.25,
        "operators": [],
        "min_runtime_version": "",
        "latency": {"median_ms": 0.003, "threads": 2, "runs": 20},
        "calibration_samples": 300,
        "validation": {
            "samples": 360,
            "top1_agreement": 0.97,
            "max_abs_error": 0.9,
            "mean_abs_error": 0.006,
            "keras_accuracy": 0.9778,
            "tflite_accuracy": 0.9667,
            "accuracy_drop_points": 1.11,
        },
        "edgetpu": None,
        "training": {
            "method": "distill",
            "epochs": 40,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "seed": 0,
            "samples": 1437,
            "temperature": 4.0,
            "alpha": 0.1,
            "student_parameters": 4538,
            "teacher_parameters": 136586,
            "parameter_ratio": 0.0332,
        },
    }
    lines = format_table(report).splitlines()
    assert "accuracy         teacher 97.78%, TFLite 96.67% (drop 1.11 points)" in lines
    assert (
        "distillation     T 4, alpha 0.1; student 4538 parameters, teacher 136586 (0.033x)" in lines
    )
