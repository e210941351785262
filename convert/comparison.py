"""The comparison of one model's variants: rows from conversion reports, JSON, a table (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One variant. Accuracies and agreement are fractions 0..1 on the held-out data."""

    variant: str
    method: str
    file: str
    size_bytes: int
    deflate_size_bytes: int
    zero_fraction: float
    parameters: int | None
    latency_ms: float
    accuracy: float | None
    agreement: float
    trained_keras_accuracy: float | None


def row_from_report(variant: str, method: str, report: dict[str, Any], latency_ms: float) -> Row:
    validation = report["validation"] or {}
    training = report.get("training") or {}
    return Row(
        variant=variant,
        method=method,
        file=report["output"],
        size_bytes=int(report["size_bytes"]),
        deflate_size_bytes=int(report["deflate_size_bytes"]),
        zero_fraction=float(report["weight_sparsity"]["zero_fraction"]),
        parameters=training.get("student_parameters"),
        latency_ms=latency_ms,
        accuracy=validation.get("tflite_accuracy"),
        agreement=float(validation.get("top1_agreement", 0.0)),
        trained_keras_accuracy=training.get("trained_keras_accuracy"),
    )


def to_json(
    source: str, keras_accuracy: float | None, rows: list[Row], setup: dict[str, Any]
) -> dict[str, Any]:
    return {
        "source": source,
        "keras_accuracy": keras_accuracy,
        "setup": setup,
        "variants": [asdict(row) for row in rows],
    }


def format_markdown(keras_accuracy: float | None, rows: list[Row]) -> str:
    """A Markdown table; sizes in KiB, accuracy drop against the original Keras model."""
    header = (
        "| variant | size KiB | deflated KiB | zero weights | invoke ms (median) | "
        "held-out accuracy | drop (points) | agreement with Keras |"
    )
    lines = [header, "|" + " --- |" * 8]
    for row in rows:
        drop = (
            f"{(keras_accuracy - row.accuracy) * 100:+.2f}"
            if keras_accuracy is not None and row.accuracy is not None
            else "-"
        )
        accuracy = "-" if row.accuracy is None else f"{row.accuracy * 100:.2f}%"
        lines.append(
            f"| {row.variant} | {row.size_bytes / 1024:.1f} | {row.deflate_size_bytes / 1024:.1f}"
            f" | {row.zero_fraction * 100:.1f}% | {row.latency_ms:.4f} | {accuracy} | {drop} |"
            f" {row.agreement * 100:.2f}% |"
        )
    return "\n".join(lines)
