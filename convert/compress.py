"""Compression that needs training: pruning, quantization-aware training, distillation.

Each entry point checks its options here (before TensorFlow starts), then runs the normal
conversion (:func:`convert.api.convert_keras`) with a training request that the worker carries
out first. The report is the usual one plus ``training`` (what was done, the trained Keras
model's held-out accuracy) and, for pruning, ``xnnpack`` (:mod:`convert.sparse_path`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.errors import InputError
from convert.api import ConversionResult, ConvertOptions, Job, convert_keras

SCHEDULES = ("polynomial", "constant")
MIN_SPARSITY, MAX_SPARSITY = 0.05, 0.95
DEFAULT_MIN_LAYER_WEIGHTS = 1000


@dataclass(frozen=True)
class TrainOptions:
    """How to train before converting. ``data`` is an ``.npz`` with ``x`` and integer ``y``."""

    data: Path
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    save_keras: Path | None = None  # also keep the trained Keras model here (.keras or .h5)

    def check(self, validate: Path | None) -> None:
        if self.save_keras is not None and not self.save_keras.parent.is_dir():
            raise InputError(f"--save-keras directory {self.save_keras.parent} does not exist")
        if not self.data.is_file():
            raise InputError(f"--data {self.data} does not exist")
        if validate is not None and validate.resolve() == self.data.resolve():
            raise InputError(
                "--data and --validate are the same file: held-out accuracy needs data the "
                "training never saw"
            )
        if not 1 <= self.epochs <= 10_000:
            raise InputError("--epochs must be between 1 and 10000")
        if not 1 <= self.batch_size <= 65_536:
            raise InputError("--batch-size must be between 1 and 65536")
        if not 0.0 < self.learning_rate < 1.0:
            raise InputError("--learning-rate must be between 0 and 1")

    def request(self, method: str, **extra: Any) -> dict[str, Any]:
        return {
            "method": method,
            "data": str(self.data),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "save_keras": None if self.save_keras is None else str(self.save_keras),
            **extra,
        }


def prune(
    src: Path,
    out: Path,
    options: ConvertOptions,
    train: TrainOptions,
    *,
    sparsity: float,
    schedule: str = "polynomial",
    min_layer_weights: int = DEFAULT_MIN_LAYER_WEIGHTS,
) -> ConversionResult:
    """Magnitude pruning to ``sparsity`` with fine-tuning, stripped, then converted.

    Layers with fewer than ``min_layer_weights`` kernel weights stay dense: pruning a tiny
    first or last layer costs the most accuracy and saves next to nothing.
    """
    job = prune_job(
        src,
        out,
        options,
        train,
        sparsity=sparsity,
        schedule=schedule,
        min_layer_weights=min_layer_weights,
    )
    return convert_keras(*job)


def prune_job(
    src: Path,
    out: Path,
    options: ConvertOptions,
    train: TrainOptions,
    *,
    sparsity: float,
    schedule: str = "polynomial",
    min_layer_weights: int = DEFAULT_MIN_LAYER_WEIGHTS,
) -> Job:
    """The checked conversion job of :func:`prune` (for :func:`convert.api.convert_many`)."""
    if not MIN_SPARSITY <= sparsity <= MAX_SPARSITY:
        raise InputError(f"--sparsity must be between {MIN_SPARSITY} and {MAX_SPARSITY}")
    if schedule not in SCHEDULES:
        raise InputError(f"--schedule must be one of {', '.join(SCHEDULES)}")
    train.check(options.validate)
    if min_layer_weights < 0:
        raise InputError("--min-layer-weights must be 0 or more")
    if train.save_keras is not None and train.save_keras.suffix != ".h5":
        raise InputError(
            "--save-keras for a pruned model must be a .h5 file: tfmot trains tf-keras models, "
            "and Keras 3 loads tf-keras models from HDF5"
        )
    request = train.request(
        "prune", sparsity=sparsity, schedule=schedule, min_layer_weights=min_layer_weights
    )
    return src, out, replace(options, training=request, sparse_variants=True)


def qat(src: Path, out: Path, options: ConvertOptions, train: TrainOptions) -> ConversionResult:
    """Quantization-aware fine-tuning, then the full-integer conversion."""
    return convert_keras(*qat_job(src, out, options, train))


def qat_job(src: Path, out: Path, options: ConvertOptions, train: TrainOptions) -> Job:
    """The checked conversion job of :func:`qat`."""
    if train.save_keras is not None:
        raise InputError("--save-keras is for prune and distill; QAT's product is the .tflite")
    if options.quantize != "int8":
        raise InputError("--qat trains for full-integer quantization: use --quantize int8")
    train.check(options.validate)
    return src, out, replace(options, training=train.request("qat"))


def auto_qat(
    src: Path, out: Path, options: ConvertOptions, train: TrainOptions
) -> ConversionResult:
    """Post-training int8 first; quantization-aware training only if it drops too much.

    The report's ``qat_auto`` says what the post-training conversion lost and which was kept.
    """
    limit = options.max_accuracy_drop
    if options.quantize != "int8":
        raise InputError("--qat auto trains for full-integer quantization: use --quantize int8")
    if limit is None or options.validate is None:
        raise InputError("--qat auto needs --validate with labels and --max-accuracy-drop")
    train.check(options.validate)
    ptq = convert_keras(src, out, options)
    drop = None if ptq.validation is None else ptq.validation.accuracy_drop_points
    if drop is None:
        raise InputError("--qat auto needs labels: the validation .npz has no 'y'")
    assert ptq.validation is not None
    facts = {
        "ptq_drop_points": drop,
        "ptq_tflite_accuracy": ptq.validation.tflite_accuracy,
        "limit": limit,
    }
    if drop <= limit:
        ptq.report["qat_auto"] = {**facts, "kept": "ptq"}
        return ptq
    options.progress(f"post-training int8 dropped {drop:.2f} points (> {limit:g}): trying QAT")
    result = qat(src, out, options, train)
    result.report["qat_auto"] = {**facts, "kept": "qat"}
    return result


def distill(
    teacher: Path,
    out: Path,
    options: ConvertOptions,
    train: TrainOptions,
    *,
    student: Path,
    temperature: float = 4.0,
    alpha: float = 0.1,
) -> ConversionResult:
    """Train ``student`` on the teacher's soft targets and the labels; convert the student.

    The validation compares the converted student against the teacher.
    """
    job = distill_job(
        teacher, out, options, train, student=student, temperature=temperature, alpha=alpha
    )
    return convert_keras(*job)


def distill_job(
    teacher: Path,
    out: Path,
    options: ConvertOptions,
    train: TrainOptions,
    *,
    student: Path,
    temperature: float = 4.0,
    alpha: float = 0.1,
) -> Job:
    """The checked conversion job of :func:`distill`."""
    if train.save_keras is not None and train.save_keras.suffix not in (".keras", ".h5"):
        raise InputError("--save-keras must be a .keras or .h5 file")
    if not student.is_file():
        raise InputError(f"--student {student} does not exist")
    if not 0.5 <= temperature <= 100.0:
        raise InputError("--temperature must be between 0.5 and 100")
    if not 0.0 <= alpha <= 1.0:
        raise InputError("--alpha (the weight of the hard-label loss) must be between 0 and 1")
    train.check(options.validate)
    request = train.request("distill", student=str(student), temperature=temperature, alpha=alpha)
    return teacher, out, replace(options, training=request)
