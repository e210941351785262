"""A trivial sensor model for the end-to-end results bench (run as a subprocess: TensorFlow).

``python -m bench.sensor_model OUT`` writes ``OUT/sensor.tflite``, ``OUT/metadata.json``,
``OUT/canary.npz`` and ``OUT/report.json``: four values in, two classes out (one dense layer),
converted by our own converter (float32), so the agent serves it like any sensor model. The
model costs microseconds; what the bench measures is the agent around it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.fsutil import atomic_write
from tests.support.models import ConvertedModel

FIELDS = ("a", "b", "c", "d")


def paths(out: Path) -> dict[str, Path]:
    names = {"tflite": "sensor.tflite", "metadata": "metadata.json", "canary": "canary.npz"}
    return {key: out / name for key, name in {**names, "report": "report.json"}.items()}


def build(out: Path) -> None:
    import keras
    import numpy as np

    from convert.api import ConvertOptions, convert_keras

    out.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((len(FIELDS),)), keras.layers.Dense(2, "softmax")])
    model.save(out / "sensor.keras")
    samples = np.random.default_rng(0).random((16, len(FIELDS)), dtype=np.float32)
    np.savez(out / "validate.npz", x=samples)  # the canary comes from validation
    where = paths(out)
    options = ConvertOptions(labels=("low", "high"), validate=out / "validate.npz")
    result = convert_keras(out / "sensor.keras", where["tflite"], options)
    assert result.canary is not None
    atomic_write(where["metadata"], result.metadata.to_json())
    atomic_write(where["canary"], result.canary.to_npz())
    atomic_write(where["report"], json.dumps(result.report).encode())


def load(out: Path) -> ConvertedModel:
    where = paths(out)
    return ConvertedModel(
        quantize="float32",
        io_type="float32",
        tflite=where["tflite"],
        metadata=where["metadata"],
        canary=where["canary"],
        report=json.loads(where["report"].read_text()),
    )


if __name__ == "__main__":
    build(Path(sys.argv[1]))
