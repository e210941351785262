"""``edge-convert prune`` and ``convert --qat auto`` end to end through the CLI (real TF)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convert.cli import main

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
CONVERSION = [
    *("--validate", str(DIGITS / "heldout.npz")),
    *("--representative", str(DIGITS / "calibration.npz")),
]
COMMON = ["--data", str(DIGITS / "train.npz"), *CONVERSION]


def test_prune_prints_zero_weights_and_the_sparse_path_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report_path = tmp_path / "pruned.tflite", tmp_path / "pruned.json"
    keras_out = tmp_path / "pruned.h5"
    argv = [
        *("prune", str(DIGITS / "digits.keras"), "-o", str(out), "--report", str(report_path)),
        *("--save-keras", str(keras_out)),
        *("--sparsity", "0.5", "--schedule", "constant", "--epochs", "2", *COMMON),
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["training"]["schedule"] == "constant"
    assert report["training"]["epochs"] == 2
    assert report["weight_sparsity"]["zero_fraction"] == pytest.approx(0.5, abs=0.02)
    assert report["quantization"] == "int8"
    assert out.read_bytes()[4:8] == b"TFL3"
    assert keras_out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    rows = {line.split("  ")[0].strip() for line in table.splitlines()}
    assert {"zero weights", "deflated size", "training", "pruning", "sparse path"} <= rows
    assert re.search(r"^sparse path +not used: XNNPACK gets the sparse hint", table, re.M)


def test_qat_auto_keeps_post_training_int8_when_it_is_within_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    argv = [
        *("convert", str(DIGITS / "digits.keras"), "-o", str(tmp_path / "m.tflite")),
        *("--quantize", "int8", "--qat", "auto", "--max-accuracy-drop", "1"),
        *("--report", str(report_path), *COMMON),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads(report_path.read_text())
    assert report["qat_auto"]["kept"] == "ptq"
    assert report["qat_auto"]["ptq_drop_points"] <= 1.0
    assert report["qat_auto"]["ptq_tflite_accuracy"] == report["validation"]["tflite_accuracy"]
    assert report["training"] is None


def _functional(path: Path, residual: bool) -> Path:
    """A small functional digits classifier; with ``residual`` its layers do not form a chain."""
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv_b")(x)
    if residual:
        y = keras.layers.Add(name="skip")([x, y])
    y = keras.layers.Flatten()(y)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(y)
    keras.Model(inputs, outputs).save(path)
    return path


def test_functional_chain_is_pruned_like_a_sequential_model(tmp_path: Path) -> None:
    from convert.api import ConvertOptions
    from convert.compress import TrainOptions, prune

    src = _functional(tmp_path / "chain.keras", residual=False)
    options = ConvertOptions(
        quantize="int8",
        representative=DIGITS / "calibration.npz",
        validate=DIGITS / "heldout.npz",
    )
    train = TrainOptions(DIGITS / "train.npz", epochs=1)
    result = prune(src, tmp_path / "chain.tflite", options, train, sparsity=0.6)
    assert result.report["training"]["kept_dense"] == ["conv_a", "conv_b"]  # < 1000 weights
    assert result.report["weight_sparsity"]["tensors"][2]["zero_fraction"] == pytest.approx(
        0.6, abs=0.01
    )


def test_model_whose_layers_do_not_form_a_chain_is_refused_naming_the_layer(
    tmp_path: Path,
) -> None:
    from agent.errors import InputError
    from convert.api import ConvertOptions
    from convert.compress import TrainOptions, prune

    src = _functional(tmp_path / "residual.keras", residual=True)
    options = ConvertOptions(quantize="int8", representative=DIGITS / "calibration.npz")
    with pytest.raises(InputError) as caught:
        prune(src, tmp_path / "r.tflite", options, TrainOptions(DIGITS / "train.npz"), sparsity=0.5)
    assert str(caught.value).startswith(
        "pruning and quantization-aware training need a Sequential model or a functional model "
        "whose layers form a single chain"
    )
    assert "layer 'skip' has several inputs or outputs" in str(caught.value)
    assert not (tmp_path / "r.tflite").exists()


def _outlier_channel_model(path: Path, scale: float = 1000.0) -> Path:
    """The digits model with one conv channel scaled up by ``scale`` and the next layer's
    weights for it scaled down: the same function (ReLU is positively homogeneous), but one
    activation channel ``scale`` times wider than the rest, which per-tensor int8 activation
    quantization cannot represent together with the others."""
    import keras

    model = keras.models.load_model(DIGITS / "digits.keras", compile=False)
    first, second = model.layers[0], model.layers[1]
    kernel, bias = first.get_weights()
    kernel[..., 0] *= scale
    bias[0] *= scale
    next_kernel, next_bias = second.get_weights()
    next_kernel[:, :, 0, :] /= scale
    first.set_weights([kernel, bias])
    second.set_weights([next_kernel, next_bias])
    model.save(path)
    return path


def test_qat_auto_trains_when_post_training_int8_breaks_and_recovers_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _outlier_channel_model(tmp_path / "outlier.keras")
    report_path = tmp_path / "auto.json"
    argv = [
        *("convert", str(src), "-o", str(tmp_path / "qat.tflite"), "--report", str(report_path)),
        *("--quantize", "int8", "--qat", "auto", "--max-accuracy-drop", "1", *COMMON),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads(report_path.read_text())
    auto, validation = report["qat_auto"], report["validation"]
    assert auto["ptq_drop_points"] > 10.0
    assert auto["kept"] == "qat"
    assert report["training"]["method"] == "qat"
    assert validation["tflite_accuracy"] >= auto["ptq_tflite_accuracy"]
    assert validation["accuracy_drop_points"] <= 2.0
