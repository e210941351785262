"""Accuracy against size for the variants of one model, as a PNG (matplotlib, imported lazily).

matplotlib is in the ``bench`` and ``dev`` extras, not ``convert``: without it the comparison
still writes its JSON and table and says the plot was skipped.
"""

from __future__ import annotations

import io
from typing import Any

from agent.errors import InputError
from convert.comparison import Row


def accuracy_size_png(rows: list[Row], keras_accuracy: float | None, title: str) -> bytes:
    """File size (filled) and deflated size (hollow) in KiB on a log axis vs held-out accuracy."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(
            "the plot needs matplotlib (pip install 'edge-agent[bench]'); use --no-plot"
        ) from None
    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    plotted = [row for row in rows if row.accuracy is not None]
    for index, row in enumerate(plotted):
        color = f"C{index % 10}"
        accuracy = _percent(row.accuracy)
        size, deflated = row.size_bytes / 1024, row.deflate_size_bytes / 1024
        axes.scatter([size], [accuracy], color=color, s=60, label=row.variant, zorder=3)
        axes.scatter([deflated], [accuracy], facecolors="none", edgecolors=color, s=60, zorder=3)
        axes.plot([deflated, size], [accuracy, accuracy], color=color, alpha=0.4, lw=1)
    for (size, accuracy), names in _clusters(plotted).items():
        axes.annotate(
            ", ".join(names),
            (size, accuracy),
            xytext=(0, 8),
            textcoords="offset points",
            fontsize=8,
            ha="right",
        )
    if keras_accuracy is not None:
        axes.axhline(_percent(keras_accuracy), color="gray", ls="--", lw=1, label="Keras model")
    axes.set_xscale("log")
    axes.margins(x=0.08, y=0.12)
    axes.set_xlabel("size, KiB (filled: .tflite file, hollow: deflated)")
    axes.set_ylabel("held-out accuracy, %")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _clusters(rows: list[Row]) -> dict[tuple[float, float], list[str]]:
    """Variants at the same accuracy and within 5% in size share one label."""
    clusters: dict[tuple[float, float], list[str]] = {}
    for row in rows:
        size, accuracy = row.size_bytes / 1024, _percent(row.accuracy)
        key = next(
            (k for k in clusters if k[1] == accuracy and abs(k[0] - size) <= 0.05 * k[0]),
            (size, accuracy),
        )
        clusters.setdefault(key, []).append(row.variant)
    return clusters


def _percent(value: Any) -> float:
    return float(value) * 100.0
