"""Build a model that passes its canary but produces NaN on real frames (run as a subprocess).

``python -m tests.update.nanmodel OUT`` writes ``OUT/nan.tflite`` and ``OUT/metadata.json``: the
sample digits network whose output is replaced by NaN whenever the brightest input pixel exceeds
0.5. A digit frame always has such a pixel; an all-zero canary input never does. Converted with
our own converter (float32), so it is the real kind of artefact a device receives.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent.fsutil import atomic_write
from tests.support.models import DIGITS_KERAS, LABELS


def build(out: Path) -> None:
    import keras

    from convert.api import ConvertOptions, convert_keras

    base = keras.models.load_model(DIGITS_KERAS)
    x = keras.Input((8, 8, 1), name="x")
    y = base(x)
    peak = keras.ops.reshape(keras.ops.max(x, axis=(1, 2, 3)), (-1, 1))
    out_tensor = keras.ops.where(peak > 0.5, keras.ops.full_like(y, float("nan")), y)
    out.mkdir(parents=True, exist_ok=True)
    keras.Model(x, out_tensor).save(out / "nan.keras")
    options = ConvertOptions(quantize="float32", labels=tuple(LABELS.read_text().split()))
    result = convert_keras(out / "nan.keras", out / "nan.tflite", options)
    atomic_write(out / "metadata.json", result.metadata.to_json())


if __name__ == "__main__":
    build(Path(sys.argv[1]))
