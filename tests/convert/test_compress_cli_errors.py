"""Bad input to prune, distill, convert --qat and compare: one line, exit 2, before TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from convert.cli import main

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
MODEL = str(DIGITS / "digits.keras")
TRAIN = str(DIGITS / "train.npz")
HELDOUT = str(DIGITS / "heldout.npz")
CALIBRATION = str(DIGITS / "calibration.npz")


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("edge-convert: error:")]
    assert len(errors) == 1, err
    return code, errors[0].removeprefix("edge-convert: error: ")


def _prune(tmp_path: Path, *extra: str) -> list[str]:
    out = str(tmp_path / "m.tflite")
    return ["prune", MODEL, "-o", out, "--representative", CALIBRATION, *extra]


def test_sparsity_outside_the_range_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _prune(tmp_path, "--sparsity", "1.2", "--data", TRAIN)
    assert _error(argv, capsys) == (2, "--sparsity must be between 0.05 and 0.95")


def test_training_on_the_heldout_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _prune(tmp_path, "--sparsity", "0.8", "--data", HELDOUT, "--validate", HELDOUT)
    code, message = _error(argv, capsys)
    assert code == 2
    assert message == (
        "--data and --validate are the same file: held-out accuracy needs data the "
        "training never saw"
    )


def test_missing_training_data_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "train.npz"
    argv = _prune(tmp_path, "--sparsity", "0.8", "--data", str(missing))
    assert _error(argv, capsys) == (2, f"--data {missing} does not exist")


def test_convert_data_without_qat_says_what_it_is_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["convert", MODEL, "-o", str(tmp_path / "m.tflite"), "--data", TRAIN]
    assert _error(argv, capsys) == (
        2,
        "--data is for training: add --qat (or use prune / distill)",
    )


def test_qat_needs_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert", MODEL, "-o", str(tmp_path / "m.tflite"), "--qat", "--data", TRAIN]
    assert _error(argv, capsys) == (
        2,
        "--qat trains for full-integer quantization: use --quantize int8",
    )


def test_qat_auto_needs_an_accuracy_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        *("convert", MODEL, "-o", str(tmp_path / "m.tflite"), "--quantize", "int8"),
        *("--representative", CALIBRATION, "--validate", HELDOUT),
        *("--qat", "auto", "--data", TRAIN),
    ]
    assert _error(argv, capsys) == (
        2,
        "--qat auto needs --validate with labels and --max-accuracy-drop",
    )


def test_distill_alpha_is_a_fraction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *("distill", "--teacher", MODEL, "--student", str(DIGITS / "student.keras")),
        *("-o", str(tmp_path / "s.tflite"), "--representative", CALIBRATION),
        *("--data", TRAIN, "--alpha", "1.5"),
    ]
    assert _error(argv, capsys) == (
        2,
        "--alpha (the weight of the hard-label loss) must be between 0 and 1",
    )


def test_compare_distilled_variant_needs_a_student(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        *("compare", MODEL, "-o", str(tmp_path), "--data", TRAIN, "--validate", HELDOUT),
        *("--representative", CALIBRATION, "--variants", "int8-ptq,distilled-int8"),
    ]
    assert _error(argv, capsys) == (
        2,
        "the distilled-int8 variant needs --student (or leave it out)",
    )


def test_pruned_model_is_saved_as_hdf5_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keras_out = str(tmp_path / "pruned.keras")
    argv = _prune(tmp_path, "--sparsity", "0.8", "--data", TRAIN, "--save-keras", keras_out)
    code, message = _error(argv, capsys)
    assert code == 2
    assert message.startswith("--save-keras for a pruned model must be a .h5 file")
