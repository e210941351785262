"""Convert a Keras model to TFLite and prove the result still works (orchestration).

:func:`convert_keras` runs the TensorFlow part in a worker process (:mod:`convert._worker`),
then loads the result with the real LiteRT interpreter to validate it, time it and describe it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from agent.errors import BackendError, InputError
from agent.fsutil import atomic_write
from agent.pipeline.tensors import quantize
from agent.schema.meta import ModelMetadata, Preprocess, Quantization
from convert._worker import PROGRESS_PREFIX
from convert.artifacts import Canary, build_metadata, default_atol
from convert.datasets import IMAGE_SUFFIXES
from convert.edgetpu_compiler import compile_for_edgetpu
from convert.litert_run import LiteRTModel
from convert.progress import parse_tick
from convert.report import ReportInputs, build_report
from convert.sparse_path import xnnpack_report
from convert.sparsity import deflate_size, weight_sparsity
from convert.tflite_info import TFLiteInfo, read_tflite
from convert.trained import save_trained, training_facts
from convert.validation import Validation, compare

logger = logging.getLogger(__name__)

QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8")
IO_TYPES = ("float32", "int8", "uint8")
DEFAULT_CALIBRATION_SAMPLES = 300
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _quiet(_: str) -> None:
    """Default progress sink: say nothing."""


def _quiet_tick(_stage: str, _done: int, _total: int) -> None:
    """Default counted-progress sink: say nothing."""


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert. ``color=None`` picks gray for 1 channel, else rgb."""

    quantize: str = "float32"
    io_type: str = "float32"
    representative: Path | None = None
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    validate: Path | None = None
    max_accuracy_drop: float | None = None
    threads: int = 2
    latency_runs: int = 20
    color: str | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)
    labels: tuple[str, ...] = ()
    edgetpu: bool = False
    min_tpu_coverage: float | None = None
    reference_float32: bool = True
    float32_size_bytes: int | None = None  # known float32 size: skips the reference conversion
    training: dict[str, Any] | None = None  # convert.compress.TrainOptions.request(): train first
    sparse_variants: bool = False  # also time float32 dense/sparse-format variants (XNNPACK)
    progress: Callable[[str], None] = field(default=_quiet, compare=False)
    # (stage, done, total) for calibration and validation: convert.progress draws bars from it.
    tick: Callable[[str, int, int], None] = field(default=_quiet_tick, compare=False)


@dataclass(frozen=True)
class ConversionResult:
    tflite_path: Path
    report: dict[str, Any]
    metadata: ModelMetadata
    validation: Validation | None = None
    canary: Canary | None = None


class WorkerTraceback(Exception):
    """Carries the worker's traceback text so ``-v`` can show it as the cause."""


def check_options(options: ConvertOptions) -> None:
    """Reject inconsistent options before any slow work starts."""
    if options.quantize not in QUANTIZE_MODES:
        raise InputError(f"--quantize must be one of {', '.join(QUANTIZE_MODES)}")
    if options.io_type not in IO_TYPES:
        raise InputError(f"--io-type must be one of {', '.join(IO_TYPES)}")
    if options.io_type != "float32" and options.quantize != "int8":
        raise InputError(f"--io-type {options.io_type} needs --quantize int8")
    if options.quantize == "int8" and options.representative is None:
        raise InputError(
            "int8 needs --representative (a directory of images, or a .npy/.npz of samples): "
            "random calibration silently ruins accuracy"
        )
    if options.edgetpu and options.quantize != "int8":
        raise InputError("--edgetpu needs full-integer quantization: use --quantize int8")
    if options.max_accuracy_drop is not None and options.validate is None:
        raise InputError("--max-accuracy-drop needs --validate with labelled data")
    if not 1 <= options.calibration_samples <= 100_000:
        raise InputError("--calibration-samples must be between 1 and 100000")
    if options.threads < 1:
        raise InputError("--threads must be at least 1")
    if options.min_tpu_coverage is not None and not 0.0 <= options.min_tpu_coverage <= 1.0:
        raise InputError("--min-tpu-coverage is a fraction between 0 and 1")


def check_paths(src: Path, out: Path, options: ConvertOptions) -> None:
    """Fail fast, before starting TensorFlow, on paths that cannot work."""
    if not src.exists():
        raise InputError(f"model {src} does not exist")
    if src.is_dir() and not (src / "saved_model.pb").exists():
        raise InputError(f"model {src} is a directory but not a SavedModel (no saved_model.pb)")
    if src.is_file():
        _check_model_file(src)
    if not out.parent.is_dir():
        raise InputError(f"output directory {out.parent} does not exist")
    for flag, path in (
        ("--representative", options.representative),
        ("--validate", options.validate),
    ):
        if path is not None and not path.exists():
            raise InputError(f"{flag} {path} does not exist")
    rep = options.representative
    if rep is not None and rep.is_dir() and not _has_images(rep):
        raise InputError(f"--representative directory {rep} contains no images")


def _check_model_file(src: Path) -> None:
    if src.suffix == ".keras" and not zipfile.is_zipfile(src):
        raise InputError(f"{src} is not a Keras model: a .keras file is a zip archive")
    if src.suffix in (".h5", ".hdf5"):
        with open(src, "rb") as handle:
            if handle.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                raise InputError(f"{src} is not a Keras model: a .h5 file is an HDF5 file")


def _has_images(directory: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in directory.iterdir())


Job = tuple[Path, Path, ConvertOptions]  # source, output, options


def convert_keras(src: Path, out: Path, options: ConvertOptions) -> ConversionResult:
    """Convert ``src`` to ``out`` (written atomically) and build the report, metadata, canary.

    The accuracy limit is not enforced here, so a caller can still save the report first; call
    :func:`check_accuracy` with ``options.max_accuracy_drop`` afterwards.
    """
    return convert_many([(src, out, options)])[0]


def convert_many(jobs: Sequence[Job]) -> list[ConversionResult]:
    """Several conversions in one worker process: TensorFlow starts once for all of them.

    Every job is checked before the worker starts; the first failing job raises. Progress goes
    to the first job's sinks.
    """
    if not jobs:
        return []
    for src, out, options in jobs:
        check_options(options)
        check_paths(src, out, options)
    with contextlib.ExitStack() as stack:
        workdirs = [
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-convert-")))
            for _ in jobs
        ]
        requests = [
            _write_request(src, workdir, options)
            for (src, _, options), workdir in zip(jobs, workdirs, strict=True)
        ]
        noise = _stream_worker(requests, jobs[0][2].progress, jobs[0][2].tick)
        return [
            _finish(src, out, options, workdir, _read_result(workdir, noise))
            for (src, out, options), workdir in zip(jobs, workdirs, strict=True)
        ]


def _finish(
    src: Path, out: Path, options: ConvertOptions, workdir: Path, worker: dict[str, Any]
) -> ConversionResult:
    """Validate, time and describe what the worker wrote in ``workdir``; write ``out``."""
    model = (workdir / "model.tflite").read_bytes()
    info = read_tflite(model)
    if info.has_dynamic_shapes:
        raise BackendError("the converted model still has a dynamic input or output shape")
    reference = workdir / "float32.tflite"
    float32_size = options.float32_size_bytes or (
        reference.stat().st_size if reference.exists() else len(model)
    )
    runtime = LiteRTModel(model, options.threads)
    validation, canary = _validate(workdir, runtime, options)
    training = training_facts(worker, workdir, validation)
    xnnpack = None
    if options.sparse_variants:
        options.progress("timing with and without XNNPACK, dense and sparse-format float32")
        xnnpack = xnnpack_report(workdir, model, options.threads, options.latency_runs)
    edgetpu = _edgetpu(workdir, model, out, options)
    atomic_write(out, model)
    save_trained(workdir, options.training)
    options.progress(f"timing {options.latency_runs} invocations on {options.threads} threads")
    facts = ReportInputs(
        source=str(src),
        output=str(out),
        quantization=options.quantize,
        io_type=options.io_type,
        size_bytes=len(model),
        float32_size_bytes=float32_size,
        latency_ms=runtime.median_latency_ms(options.latency_runs),
        threads=options.threads,
        latency_runs=options.latency_runs,
        calibration_samples=int(worker["calibration_samples"]),
    )
    report = build_report(facts, info, validation, edgetpu)
    report["deflate_size_bytes"] = deflate_size(model)
    report["weight_sparsity"] = weight_sparsity(model)
    report["training"] = training
    report["xnnpack"] = xnnpack
    metadata = _metadata(info, options, src)
    return ConversionResult(out, report, metadata, validation, canary)


def _metadata(info: TFLiteInfo, options: ConvertOptions, src: Path) -> ModelMetadata:
    channels = info.inputs[0].spec.shape[-1] if info.inputs[0].spec.shape else 1
    color = options.color or ("gray" if channels == 1 else "rgb")
    preprocess = Preprocess(color=cast(Any, color), mean=options.mean, std=options.std)
    return build_metadata(
        info, cast(Quantization, options.quantize), preprocess, options.labels, src.name
    )


def _validate(
    workdir: Path, runtime: LiteRTModel, options: ConvertOptions
) -> tuple[Validation | None, Canary | None]:
    if options.validate is None:
        return None, None
    x = np.load(workdir / "validate_x.npy")
    keras_out = np.load(workdir / "keras_outputs.npy")
    y_path = workdir / "validate_y.npy"
    y = np.load(y_path) if y_path.exists() else None
    options.progress(f"running the TFLite model on {len(x)} validation samples")
    tflite_out = runtime.predict(
        x, on_sample=lambda done: options.tick("validation-tflite", done, len(x))
    )
    validation = compare(keras_out.reshape(tflite_out.shape), tflite_out, y)
    canary = Canary(
        input=quantize(x[:1], runtime.input_spec),
        expected=tflite_out[:1].astype(np.float32),
        atol=default_atol(runtime.output_spec.scale if runtime.output_spec.quantized else 0.0),
    )
    return validation, canary


def check_accuracy(validation: Validation | None, limit: float | None) -> None:
    """Raise :class:`BackendError` with the numbers when accuracy dropped more than ``limit``."""
    if limit is None or validation is None:
        return
    drop = validation.accuracy_drop_points
    if drop is None:
        raise InputError("--max-accuracy-drop needs labels: the validation .npz has no 'y'")
    if drop > limit:
        raise BackendError(
            f"accuracy dropped {drop:.2f} points (Keras {validation.keras_accuracy:.4f}, "
            f"TFLite {validation.tflite_accuracy:.4f}), more than --max-accuracy-drop {limit:g}"
        )


def _edgetpu(
    workdir: Path, model: bytes, out: Path, options: ConvertOptions
) -> dict[str, Any] | None:
    if not options.edgetpu:
        return None
    options.progress("compiling for the Edge TPU")
    staged = workdir / out.name
    staged.write_bytes(model)
    log, _ = compile_for_edgetpu(staged, out.parent)
    if options.min_tpu_coverage is not None and log.coverage < options.min_tpu_coverage:
        names = ", ".join(f"{o.op} ({o.status})" for o in log.unmapped) or "none listed"
        raise BackendError(
            f"Edge TPU coverage {log.coverage:.2f} is below --min-tpu-coverage "
            f"{options.min_tpu_coverage:g}: {log.tpu_ops} ops on TPU, {log.cpu_ops} on CPU; "
            f"not mapped: {names}"
        )
    return log.to_dict()


def _write_request(src: Path, workdir: Path, options: ConvertOptions) -> Path:
    request = {
        "src": str(src),
        "workdir": str(workdir),
        "quantize": options.quantize,
        "io_type": options.io_type,
        "representative": None if options.representative is None else str(options.representative),
        "samples": options.calibration_samples,
        "validate": None if options.validate is None else str(options.validate),
        "reference_float32": options.reference_float32 and options.float32_size_bytes is None,
        "train": options.training,
        "sparse_variants": options.sparse_variants,
        "preprocess": {
            "color": options.color or "rgb",
            "mean": list(options.mean),
            "std": list(options.std),
        },
    }
    request_path = workdir / "request.json"
    request_path.write_text(json.dumps(request))
    return request_path


def _read_result(workdir: Path, noise: str) -> dict[str, Any]:
    result_path = workdir / "result.json"
    if not result_path.exists():
        raise BackendError("the conversion worker died without a result") from WorkerTraceback(
            noise
        )
    result: dict[str, Any] = json.loads(result_path.read_text())
    if not result["ok"]:
        error = InputError if result["kind"] == "input" else BackendError
        raise error(result["message"]) from WorkerTraceback(result["traceback"])
    return result


def _stream_worker(
    requests: Sequence[Path], progress: Callable[[str], None], tick: Callable[[str, int, int], None]
) -> str:
    """Run the worker, forwarding its progress lines; return the rest of its stderr."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    noise: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "convert._worker", *map(str, requests)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(PROGRESS_PREFIX):
                text = line[len(PROGRESS_PREFIX) :].rstrip("\n")
                counted = parse_tick(text)
                if counted is not None:
                    tick(*counted)
                else:
                    progress(text)
            else:
                noise.append(line)
    logger.debug("conversion worker exited with %s", proc.returncode)
    return "".join(noise[-200:])


__all__ = [
    "ConversionResult",
    "ConvertOptions",
    "Job",
    "check_accuracy",
    "check_options",
    "convert_keras",
    "convert_many",
]
