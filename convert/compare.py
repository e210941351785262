"""Compare compression methods on one model: every variant converted, validated and timed alike.

Variants: float32, float16, dynamic, int8 post-training (PTQ), int8 after quantization-aware
training (QAT), pruned + int8, and a distilled student + int8 (when a student is given). Each
is produced by the same converter as ``edge-convert convert``/``prune``/``distill``; accuracy
and agreement are measured against the original Keras model on the held-out data; latency is
re-measured at the end for all variants in interleaved rounds (same threads), so host load
falls on all of them alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.errors import InputError
from convert.api import ConvertOptions, Job, convert_many
from convert.comparison import Row, format_markdown, row_from_report, to_json
from convert.compress import TrainOptions, distill_job, prune_job, qat_job
from convert.litert_run import LiteRTModel, interleaved_latency_ms

VARIANTS = (
    "float32",
    "float16",
    "dynamic",
    "int8-ptq",
    "int8-qat",
    "pruned-int8",
    "distilled-int8",
)
ROUNDS = 5


def _quiet(_: str) -> None:
    """Say nothing."""


def _no_tick(_stage: str, _done: int, _total: int) -> None:
    """Draw nothing."""


@dataclass(frozen=True)
class CompareOptions:
    data: Path
    validate: Path
    representative: Path
    student: Path | None = None
    sparsity: float = 0.8
    schedule: str = "polynomial"
    prune_training: TrainOptions | None = None  # None: TrainOptions(data, epochs=15, lr=5e-4)
    qat_training: TrainOptions | None = None  # None: TrainOptions(data, epochs=2, lr=1e-5)
    distill_training: TrainOptions | None = None  # None: TrainOptions(data, epochs=40)
    temperature: float = 4.0
    alpha: float = 0.1
    threads: int = 2
    runs: int = 100
    variants: tuple[str, ...] = VARIANTS
    convert: ConvertOptions = field(default_factory=ConvertOptions)
    progress: Callable[[str], None] = field(default=_quiet, compare=False)
    tick: Callable[[str, int, int], None] = field(default=_no_tick, compare=False)


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]
    keras_accuracy: float | None
    document: dict[str, Any]
    reports: dict[str, dict[str, Any]]

    def markdown(self) -> str:
        return format_markdown(self.keras_accuracy, self.rows)


def check(options: CompareOptions) -> None:
    unknown = sorted(set(options.variants) - set(VARIANTS))
    if unknown:
        raise InputError(f"unknown variants {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if "distilled-int8" in options.variants and options.student is None:
        raise InputError("the distilled-int8 variant needs --student (or leave it out)")
    if options.runs < 1:
        raise InputError("--runs must be at least 1")


def compare(src: Path, outdir: Path, options: CompareOptions) -> Comparison:
    """Produce every variant into ``outdir`` and compare them."""
    check(options)
    if not outdir.parent.is_dir():
        raise InputError(f"the parent directory of {outdir} does not exist")
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir} exists and is not a directory")
    outdir.mkdir(exist_ok=True)
    jobs = [_variant(v, src, outdir / f"{v}.tflite", options) for v in options.variants]
    options.progress(f"converting {len(jobs)} variants in one worker")
    results = dict(zip(options.variants, convert_many(jobs), strict=True))
    options.progress(f"timing all variants: {ROUNDS} interleaved rounds of {options.runs} runs")
    latency = interleaved_latency(
        {v: r.tflite_path.read_bytes() for v, r in results.items()}, options.threads, options.runs
    )
    rows = [row_from_report(v, _method(v), r.report, latency[v]) for v, r in results.items()]
    keras_accuracy = next(
        (r.validation.keras_accuracy for r in results.values() if r.validation is not None), None
    )
    setup = {
        "threads": options.threads,
        "latency": f"median of {ROUNDS} interleaved rounds x median of {options.runs} invokes",
        "validate": str(options.validate),
        "data": str(options.data),
        "representative": str(options.representative),
        "sparsity": options.sparsity,
    }
    document = to_json(str(src), keras_accuracy, rows, setup)
    reports = {v: r.report for v, r in results.items()}
    return Comparison(rows, keras_accuracy, document, reports)


def _method(variant: str) -> str:
    return {
        "int8-qat": "qat",
        "pruned-int8": "prune",
        "distilled-int8": "distill",
    }.get(variant, "ptq")


def _variant(variant: str, src: Path, out: Path, options: CompareOptions) -> Job:
    quantize = variant if variant in ("float32", "float16", "dynamic") else "int8"
    base = replace(
        options.convert,
        quantize=quantize,
        representative=options.representative if quantize == "int8" else None,
        validate=options.validate,
        threads=options.threads,
        progress=options.progress,
        tick=options.tick,
    )
    data = options.data
    if variant == "int8-qat":
        return qat_job(src, out, base, options.qat_training or TrainOptions(data, 2, 32, 1e-5))
    if variant == "pruned-int8":
        train = options.prune_training or TrainOptions(data, 15, 32, 5e-4)
        return prune_job(
            src, out, base, train, sparsity=options.sparsity, schedule=options.schedule
        )
    if variant == "distilled-int8":
        assert options.student is not None
        train = options.distill_training or TrainOptions(data, 40, 32, 1e-3)
        return distill_job(
            src,
            out,
            base,
            train,
            student=options.student,
            temperature=options.temperature,
            alpha=options.alpha,
        )
    return src, out, base


def interleaved_latency(models: dict[str, bytes], threads: int, runs: int) -> dict[str, float]:
    """Median invoke time (ms) per model, default delegates (XNNPACK), same threads."""
    runtimes = {name: LiteRTModel(data, threads) for name, data in models.items()}
    return interleaved_latency_ms(runtimes, runs, ROUNDS)
