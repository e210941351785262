"""Edge TPU compiler log parsing (captured output written from Coral's documented format) and
the missing-compiler path, run for real with an empty PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import BackendError
from convert.cli import main
from convert.edgetpu import parse_compiler_log
from convert.edgetpu_compiler import compile_for_edgetpu

LOGS = Path(__file__).parent / "edgetpu_logs"
DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def test_fully_mapped_log_counts_ops_from_the_operator_table() -> None:
    log = parse_compiler_log((LOGS / "fully_mapped.log").read_text())
    assert log.compiler_version == "16.0.384591198"
    assert log.succeeded
    assert (log.tpu_ops, log.cpu_ops) == (6, 0)
    assert log.coverage == 1.0
    assert [(o.op, o.count) for o in log.operations] == [
        ("CONV_2D", 2),
        ("RESHAPE", 1),
        ("FULLY_CONNECTED", 2),
        ("SOFTMAX", 1),
    ]
    assert log.unmapped == ()


def test_partially_mapped_log_reports_cpu_ops_with_their_reasons() -> None:
    log = parse_compiler_log((LOGS / "partially_mapped.log").read_text())
    assert log.succeeded
    assert (log.tpu_ops, log.cpu_ops) == (68, 4)
    assert log.coverage == pytest.approx(68 / 72)
    assert [(o.op, o.count, o.status) for o in log.unmapped] == [
        ("SQUARED_DIFFERENCE", 1, "Operation not supported"),
        ("RSQRT", 1, "Operation not supported"),
        ("MUL", 2, "More than one subgraph is not supported"),
    ]
    assert log.to_dict()["coverage"] == 0.9444


def test_failed_compilation_is_not_success_and_keeps_the_error_lines() -> None:
    log = parse_compiler_log((LOGS / "failed.log").read_text())
    assert not log.succeeded
    assert log.errors[0].startswith("ERROR: Attempting to use a delegate")
    assert "Compilation failed: Model failed in Tflite interpreter." in log.errors[1]
    assert (log.tpu_ops, log.cpu_ops, log.coverage) == (0, 0, 0.0)


def test_missing_compiler_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BackendError, match=r"apt-get install edgetpu-compiler.*") as caught:
        compile_for_edgetpu(tmp_path / "model.tflite", tmp_path)
    assert "x86-64" in str(caught.value)


def test_edgetpu_without_int8_is_rejected_before_converting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["convert", str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite"), "--edgetpu"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "edge-convert: error: --edgetpu needs full-integer quantization: use --quantize int8"
    )


@pytest.mark.tensorflow
def test_cli_with_edgetpu_and_no_compiler_exits_nonzero_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "m.tflite"
    argv = ["convert", str(DIGITS / "digits.keras"), "-o", str(out), "--quantize", "int8"]
    argv += ["--representative", str(DIGITS / "calibration.npz"), "--edgetpu"]
    assert main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith("edge-convert: error: edgetpu_compiler is not on PATH.")
    assert not out.exists()
