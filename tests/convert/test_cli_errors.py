"""Bad input through the real CLI: one line naming the problem, a non-zero exit, no traceback."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from convert.cli import main

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["convert", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("edge-convert: error:")]
    assert len(errors) == 1, err
    return code, errors[0].removeprefix("edge-convert: error: ")


def test_missing_model_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, message = _run([str(tmp_path / "nope.keras"), "-o", str(tmp_path / "m.tflite")], capsys)
    assert code == 2
    assert message == f"model {tmp_path / 'nope.keras'} does not exist"


def test_int8_without_representative_explains_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite"), "--quantize", "int8"]
    code, message = _run(argv, capsys)
    assert code == 2
    assert message.startswith("int8 needs --representative")
    assert message.endswith("random calibration silently ruins accuracy")


def test_empty_representative_directory_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "images"
    empty.mkdir()
    argv = [str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite"), "--quantize", "int8"]
    code, message = _run([*argv, "--representative", str(empty)], capsys)
    assert code == 2
    assert message == f"--representative directory {empty} contains no images"


def test_empty_directory_as_model_is_not_a_savedmodel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, message = _run([str(tmp_path), "-o", str(tmp_path / "m.tflite")], capsys)
    assert code == 2
    assert message == f"model {tmp_path} is a directory but not a SavedModel (no saved_model.pb)"


def test_canary_without_validation_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite")]
    code, message = _run([*argv, "--canary", str(tmp_path / "c.npz")], capsys)
    assert code == 2
    assert message == "--canary needs --validate: the canary is the first validation sample"


def test_file_that_is_not_a_keras_model_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"this is not a zip archive")
    code, message = _run([str(fake), "-o", str(tmp_path / "m.tflite")], capsys)
    assert code == 2
    assert message == f"{fake} is not a Keras model: a .keras file is a zip archive"
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.tensorflow
def test_zip_that_is_not_a_keras_model_is_rejected_by_keras(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.keras"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras model")
    code, message = _run([str(fake), "-o", str(tmp_path / "m.tflite")], capsys)
    assert code == 2
    assert message.startswith(f"{fake} is not a loadable Keras model (")
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.tensorflow
def test_representative_of_wrong_shape_names_expected_and_got(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((20, 8, 8), np.float32))
    argv = [str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite"), "--quantize", "int8"]
    code, message = _run([*argv, "--representative", str(wrong)], capsys)
    assert code == 2
    assert message == (
        f"representative data {wrong}: expected shape (N, 8, 8, 1) float32 to match the model "
        "input, got (20, 8, 8) float32"
    )


@pytest.mark.tensorflow
def test_accuracy_drop_above_the_limit_fails_with_the_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A negative limit: even the lossless float32 conversion (drop 0.00) exceeds it, so the
    # failure path runs on real numbers.
    argv = [str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite")]
    argv += ["--validate", str(DIGITS / "heldout.npz"), "--max-accuracy-drop", "-1"]
    code, message = _run(argv, capsys)
    assert code == 1
    assert message == (
        "accuracy dropped 0.00 points (Keras 0.9778, TFLite 0.9778), "
        "more than --max-accuracy-drop -1"
    )
