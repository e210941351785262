"""The conversion worker: the only place TensorFlow is imported.

Run as ``python -m convert._worker REQUEST.json [REQUEST.json ...]`` by :mod:`convert.api`; the
TFLite converter leaks memory per call, so each command gets a fresh process (a comparison runs
its handful of variants in one, to start TensorFlow once). The request names a work
directory; the worker writes the ``.tflite`` files, the Keras outputs on the validation data and
``result.json`` there. Lines starting with ``PROGRESS`` on stderr are progress for the user; all
other stderr output (TensorFlow's logging) is kept by the parent for ``-v``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import BackendError, EdgeError, InputError
from agent.schema.meta import Preprocess
from convert.datasets import MIN_RECOMMENDED_SAMPLES, load_representative, load_validation
from convert.progress import tick_line

PROGRESS_PREFIX = "PROGRESS "
_SELECT_OPS = re.compile(r"TF Select ops: ([^\n]+)")
_TF_OP = re.compile(r"\btf\.([A-Z][A-Za-z0-9]*)\(")


KERAS_BATCH = 64


def _progress(message: str) -> None:
    print(PROGRESS_PREFIX + message, file=sys.stderr, flush=True)


def _tick(stage: str, done: int, total: int) -> None:
    print(PROGRESS_PREFIX + tick_line(stage, done, total), file=sys.stderr, flush=True)


def _epoch_tick(stage: str, done: int, total: int, _text: str = "") -> None:
    """Training epochs as counted progress (the per-epoch loss text is not shown)."""
    _tick(stage, done, total)


def flex_ops_in(message: str) -> list[str]:
    """The TensorFlow ops a converter error says need Flex (TF Select) kernels."""
    found = _SELECT_OPS.search(message)
    if found:
        return [name.strip() for name in found.group(1).split(",") if name.strip()]
    return sorted(set(_TF_OP.findall(message)))


class _Model:
    """A loaded Keras model or SavedModel signature, called with a float32 batch."""

    def __init__(self, fn: Callable[[Any], Any], input_shape: tuple[int, ...], obj: Any) -> None:
        self.fn = fn
        self.input_shape = input_shape
        self.obj = obj


def _load(src: Path) -> _Model:
    if not src.exists():
        raise InputError(f"model {src} does not exist")
    if src.is_dir():
        return _load_saved_model(src)
    model = load_keras(str(src), "model")
    shape = tuple(model.inputs[0].shape[1:])
    return _Model(lambda x: model(x, training=False), shape, model)


def load_keras(path: str, what: str) -> Any:
    """A single-input Keras model with a fully known input shape (no SavedModel)."""
    src = Path(path)
    if not src.is_file():
        raise InputError(f"{what} {src} does not exist")
    if src.suffix not in (".keras", ".h5", ".hdf5"):
        raise InputError(
            f"{what} {src} must be a .keras file, a .h5 file or a SavedModel directory"
        )
    import keras

    try:
        model = keras.models.load_model(src, compile=False)
    except Exception as exc:
        raise InputError(f"{src} is not a loadable Keras model ({_first_line(exc)})") from exc
    inputs = model.inputs
    if len(inputs) != 1:
        raise InputError(f"{what} {src} has {len(inputs)} inputs; only single-input models work")
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise InputError(f"{what} {src} has an input with unknown dimensions {shape}")
    return model


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_saved_model(src: Path) -> _Model:
    import tensorflow as tf

    if not (src / "saved_model.pb").exists():
        raise InputError(f"{src} is a directory but not a SavedModel (no saved_model.pb)")
    try:
        loaded = tf.saved_model.load(str(src))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise InputError(f"{src} is not a loadable SavedModel ({_first_line(exc)})") from exc
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise InputError(f"SavedModel {src} has {len(specs)} inputs; only single-input models work")
    name, spec = next(iter(specs.items()))
    shape = tuple(spec.shape[1:])
    if any(d is None for d in shape):
        raise InputError(f"SavedModel {src} has an input with unknown dimensions {shape}")

    def call(x: Any) -> Any:
        outputs = signature(**{name: tf.convert_to_tensor(x)})
        return next(iter(outputs.values()))

    return _Model(call, shape, loaded)


def _convert(
    model: _Model, mode: str, io_type: str, calibration: Any, sparse: bool = False
) -> bytes:
    """``sparse``: store sparse weights in the TFLite sparse format (a DENSIFY op per weight)."""
    import tensorflow as tf

    # A fixed batch of 1 in the signature: the .tflite gets a static input shape (no -1).
    serve = tf.function(model.fn, input_signature=[tf.TensorSpec([1, *model.input_shape])])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
    optimizations = [] if mode == "float32" else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        converter.representative_dataset = lambda: _samples(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type != "float32":
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
    try:
        result: bytes = converter.convert()
    except Exception as exc:
        ops = flex_ops_in(str(exc))
        if "ERROR_NEEDS_FLEX_OPS" in str(exc) or "TF Select" in str(exc):
            raise InputError(
                "the model needs TensorFlow-only (Flex) ops that TFLite builtins do not have: "
                + ", ".join(ops or ["<unknown>"])
            ) from exc
        raise BackendError(f"the TFLite converter failed: {str(exc).splitlines()[0]}") from exc
    return result


def _samples(calibration: Any) -> Iterator[list[Any]]:
    for done, sample in enumerate(calibration, 1):
        yield [sample[None, ...]]
        _tick("calibration", done, len(calibration))


def _keras_outputs(model: _Model, x: Any) -> Any:
    """Keras on the validation samples in batches, one progress tick per batch."""
    outputs = []
    for start in range(0, len(x), KERAS_BATCH):
        outputs.append(np.asarray(model.fn(x[start : start + KERAS_BATCH]), np.float32))
        _tick("validation-keras", min(start + KERAS_BATCH, len(x)), len(x))
    return np.concatenate(outputs, axis=0)


def _run(request: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(request["workdir"])
    mode, io_type = request["quantize"], request["io_type"]
    _progress(f"loading {request['src']}")
    reference = _load(Path(request["src"]))
    model, training = _train(request.get("train"), reference)
    if training is not None and request["train"].get("save_keras"):
        suffix = Path(request["train"]["save_keras"]).suffix
        _progress(f"saving the trained Keras model ({suffix})")
        model.obj.save(workdir / f"trained{suffix}")
    preprocess = Preprocess(**request["preprocess"])
    validation = None
    if request["validate"]:
        validation = load_validation(Path(request["validate"]), model.input_shape)
    calibration = None
    if mode == "int8":
        calibration = load_representative(
            Path(request["representative"]), model.input_shape, preprocess, request["samples"]
        )
        if len(calibration) < MIN_RECOMMENDED_SAMPLES:
            _progress(f"warning: only {len(calibration)} calibration samples (100-500 recommended)")
        _progress(f"calibrating and converting to int8 with {len(calibration)} samples")
    else:
        _progress(f"converting to {mode}")
    (workdir / "model.tflite").write_bytes(_convert(model, mode, io_type, calibration))
    if request["reference_float32"] and (mode != "float32" or training is not None):
        _progress("converting the original model to float32 for the size reference")
        (workdir / "float32.tflite").write_bytes(_convert(reference, "float32", "float32", None))
    if request.get("sparse_variants"):
        _progress("converting to float32, dense and in the TFLite sparse format")
        (workdir / "dense_float32.tflite").write_bytes(_convert(model, "float32", "float32", None))
        sparse = _convert(model, "float32", "float32", None, sparse=True)
        (workdir / "sparse_float32.tflite").write_bytes(sparse)
    if validation is not None:
        _progress(f"running Keras on {len(validation.x)} validation samples")
        np.save(workdir / "validate_x.npy", validation.x)
        np.save(workdir / "keras_outputs.npy", _keras_outputs(reference, validation.x))
        if training is not None:
            np.save(workdir / "trained_outputs.npy", _keras_outputs(model, validation.x))
        if validation.y is not None:
            np.save(workdir / "validate_y.npy", validation.y)
    samples = 0 if calibration is None else len(calibration)
    return {
        "ok": True,
        "input_shape": list(model.input_shape),
        "calibration_samples": samples,
        "training": training,
    }


def _train(train: dict[str, Any] | None, reference: _Model) -> tuple[_Model, dict[str, Any] | None]:
    """Prune, QAT-fine-tune or distill ``reference`` when asked; else convert it as it is."""
    if train is None:
        return reference, None
    from convert._training import train as run_training

    if not hasattr(reference.obj, "layers"):
        raise InputError("training needs a Keras model file (.keras or .h5), not a SavedModel")
    data = load_validation(Path(train["data"]), reference.input_shape, "training data")
    _progress(f"training ({train['method']}) on {len(data.x)} samples for {train['epochs']} epochs")
    trained = run_training({**train, "samples": len(data.x)}, reference.obj, data, _epoch_tick)
    return _Model(trained.fn, reference.input_shape, trained.obj), trained.facts


def main(argv: list[str]) -> int:
    """Run each request file in turn (one TensorFlow start-up for several conversions)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for path in argv:
        _main_one(json.loads(Path(path).read_text()))
    return 0


def _main_one(request: dict[str, Any]) -> None:
    try:
        result = _run(request)
    except EdgeError as exc:
        kind = "input" if isinstance(exc, InputError) else "backend"
        result = {"ok": False, "kind": kind, "message": str(exc), "traceback": _trace(exc)}
    except Exception as exc:  # a bug or an unexpected TensorFlow failure: report it, never hang
        result = {
            "ok": False,
            "kind": "backend",
            "message": f"conversion worker failed: {type(exc).__name__}: {exc}".splitlines()[0],
            "traceback": _trace(exc),
        }
    (Path(request["workdir"]) / "result.json").write_text(json.dumps(result))


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
