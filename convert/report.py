"""The conversion report: one JSON-ready dict, and a plain-text table of it (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convert.tflite_info import TensorInfo, TFLiteInfo
from convert.validation import Validation


@dataclass(frozen=True)
class ReportInputs:
    """Facts gathered by the converter that are not in the ``.tflite`` file itself."""

    source: str
    output: str
    quantization: str
    io_type: str
    size_bytes: int
    float32_size_bytes: int
    latency_ms: float
    threads: int
    latency_runs: int
    calibration_samples: int


def build_report(
    facts: ReportInputs,
    info: TFLiteInfo,
    validation: Validation | None,
    edgetpu: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "source": facts.source,
        "output": facts.output,
        "quantization": facts.quantization,
        "io_type": facts.io_type,
        "inputs": [_tensor(t) for t in info.inputs],
        "outputs": [_tensor(t) for t in info.outputs],
        "size_bytes": facts.size_bytes,
        "float32_size_bytes": facts.float32_size_bytes,
        "size_ratio": round(facts.size_bytes / facts.float32_size_bytes, 4),
        "operators": [{"name": c.name, "version": c.version} for c in info.operator_codes],
        "min_runtime_version": info.min_runtime_version,
        "latency": {
            "median_ms": round(facts.latency_ms, 4),
            "threads": facts.threads,
            "runs": facts.latency_runs,
        },
        "calibration_samples": facts.calibration_samples,
        "validation": None if validation is None else validation.to_dict(),
        "edgetpu": edgetpu,
    }


def _tensor(t: TensorInfo) -> dict[str, Any]:
    return {
        "name": t.spec.name,
        "shape": list(t.spec.shape),
        "shape_signature": list(t.shape_signature),
        "dtype": t.spec.dtype,
        "scale": t.spec.scale,
        "zero_point": t.spec.zero_point,
    }


def format_table(report: dict[str, Any]) -> str:
    """A human-readable, two-column summary of the report."""
    rows: list[tuple[str, str]] = [
        ("source", report["source"]),
        ("output", report["output"]),
        ("quantization", f"{report['quantization']} (io {report['io_type']})"),
    ]
    for kind in ("inputs", "outputs"):
        for t in report[kind]:
            rows.append((kind[:-1], _tensor_text(t)))
    rows += [
        ("size", f"{report['size_bytes']} bytes"),
        ("float32 size", f"{report['float32_size_bytes']} bytes"),
        ("size ratio", f"{report['size_ratio']:.3f}x float32"),
        ("operators", ", ".join(f"{o['name']} v{o['version']}" for o in report["operators"])),
        ("min runtime", report["min_runtime_version"] or "(not recorded)"),
        (
            "latency",
            f"{report['latency']['median_ms']:.3f} ms median of {report['latency']['runs']} runs,"
            f" {report['latency']['threads']} threads",
        ),
    ]
    if report["calibration_samples"]:
        rows.append(("calibration", f"{report['calibration_samples']} samples"))
    rows += _compression_rows(report)
    training = report.get("training") or {}
    reference = "teacher" if training.get("method") == "distill" else "Keras"
    rows += _validation_rows(report["validation"], reference)
    rows += _training_rows(report.get("training"))
    rows += _xnnpack_rows(report.get("xnnpack"))
    rows += _edgetpu_rows(report["edgetpu"])
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in rows)


def _tensor_text(t: dict[str, Any]) -> str:
    text = f"{t['name']} {t['dtype']}{t['shape']}"
    if t["scale"]:
        text += f" scale={t['scale']:.6g} zero_point={t['zero_point']}"
    return text


def _validation_rows(v: dict[str, Any] | None, reference: str = "Keras") -> list[tuple[str, str]]:
    if v is None:
        return []
    rows = [
        ("validated on", f"{v['samples']} samples"),
        ("top-1 agreement", f"{v['top1_agreement'] * 100:.2f}%"),
        ("abs error", f"max {v['max_abs_error']:.6f}, mean {v['mean_abs_error']:.6f}"),
    ]
    if v["keras_accuracy"] is not None:
        rows.append(
            (
                "accuracy",
                f"{reference} {v['keras_accuracy'] * 100:.2f}%, "
                f"TFLite {v['tflite_accuracy'] * 100:.2f}%"
                f" (drop {v['accuracy_drop_points']:.2f} points)",
            )
        )
    return rows


def _compression_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if "deflate_size_bytes" in report:
        rows.append(("deflated size", f"{report['deflate_size_bytes']} bytes (zlib level 9)"))
    sparsity = report.get("weight_sparsity")
    if sparsity and sparsity["weights"]:
        rows.append(
            (
                "zero weights",
                f"{sparsity['zero_fraction'] * 100:.1f}% of {sparsity['weights']} "
                "conv/fully-connected weights",
            )
        )
    return rows


def _training_rows(t: dict[str, Any] | None) -> list[tuple[str, str]]:
    if t is None:
        return []
    text = (
        f"{t['method']}: {t['epochs']} epochs, batch {t['batch_size']}, lr {t['learning_rate']:g},"
        f" seed {t['seed']}, {t['samples']} samples"
    )
    rows = [("training", text)]
    if t["method"] == "prune":
        rows.append(("pruning", f"target {t['sparsity_target']:g}, {t['schedule']} schedule"))
    if t["method"] == "distill":
        rows.append(
            (
                "distillation",
                f"T {t['temperature']:g}, alpha {t['alpha']:g}; student "
                f"{t['student_parameters']} parameters, teacher {t['teacher_parameters']} "
                f"({t['parameter_ratio']:.3f}x)",
            )
        )
    if t.get("trained_keras_accuracy") is not None:
        rows.append(("trained Keras", f"{t['trained_keras_accuracy'] * 100:.2f}% held-out"))
    return rows


def _xnnpack_rows(x: dict[str, Any] | None) -> list[tuple[str, str]]:
    if x is None:
        return []
    ms = x["latency_ms"]
    pairs = ", ".join(
        f"{name} {ms[name + '/xnnpack']:.4f}/{ms[name + '/builtin']:.4f}"
        for name in ("converted", "dense_float32", "sparse_float32")
    )
    return [
        ("xnnpack/builtin", f"{pairs} ms ({x['threads']} threads)"),
        ("sparse path", ("used: " if x["sparse_path_used"] else "not used: ") + x["note"]),
    ]


def _edgetpu_rows(e: dict[str, Any] | None) -> list[tuple[str, str]]:
    if e is None:
        return []
    return [
        ("edge tpu", f"compiler {e['compiler_version'] or 'unknown'}"),
        (
            "edge tpu ops",
            f"{e['tpu_ops']} on TPU, {e['cpu_ops']} on CPU ({e['coverage'] * 100:.1f}% coverage)",
        ),
    ]
