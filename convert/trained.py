"""What the worker's training left in the work directory: facts for the report, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agent.fsutil import atomic_write
from convert.validation import Validation


def training_facts(
    worker: dict[str, Any], workdir: Path, validation: Validation | None
) -> dict[str, Any] | None:
    """The worker's training facts plus the trained Keras model's held-out accuracy."""
    facts: dict[str, Any] | None = worker.get("training")
    if facts is None:
        return None
    trained = workdir / "trained_outputs.npy"
    y_path = workdir / "validate_y.npy"
    if validation is not None and trained.exists() and y_path.exists():
        outputs = np.load(trained)
        labels = np.load(y_path)
        accuracy = float(np.mean(outputs.reshape(len(outputs), -1).argmax(axis=1) == labels))
        facts = {**facts, "trained_keras_accuracy": accuracy}
    return facts


def save_trained(workdir: Path, training: dict[str, Any] | None) -> None:
    """Copy the trained Keras model the worker saved to where ``--save-keras`` asked."""
    target = (training or {}).get("save_keras")
    if target is not None:
        saved = Path(target)
        atomic_write(saved, (workdir / f"trained{saved.suffix}").read_bytes())
