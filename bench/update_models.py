"""The two models the update benchmark swaps, as ConvertedModel files an AgentWorld bundles.

``digits``: the sample model, int8, from our converter (with the converter's own canary).
``mobilenet``: MobileNetV2 with ``weights=None`` (nothing downloaded), int8, converted by the same
code :mod:`bench.agent_models` has; its canary is the converted model's own output for a fixed
input, with the converter's default tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.fsutil import atomic_write
from agent.pipeline.tensors import dequantize
from agent.runtime import open_model
from bench.agent_models import convert_mobilenet
from convert.artifacts import Canary, default_atol
from tests.support.models import ConvertedModel, get_converted_model

MODELS = ("digits", "mobilenet")


def converted(name: str, work: Path) -> ConvertedModel:
    """``name`` (one of :data:`MODELS`) converted under ``work``."""
    if name == "digits":
        return get_converted_model(work / "digits", "int8")
    return _mobilenet(work / "mobilenet")


def _mobilenet(directory: Path) -> ConvertedModel:
    paths = {name: directory / f"mobilenet.{name}" for name in ("tflite", "json", "npz")}
    result = ConvertedModel("int8", "float32", paths["tflite"], paths["json"], paths["npz"], {})
    if all(path.exists() for path in paths.values()):
        return result  # converted before, in this directory
    directory.mkdir(parents=True, exist_ok=True)
    tflite, metadata = convert_mobilenet(directory)
    model = open_model(tflite, backend="litert", accelerator="cpu", threads=1)
    spec, out_spec = model.inputs[0], model.outputs[0]
    rng = np.random.default_rng(0)
    if np.dtype(spec.dtype).kind == "f":
        sample = rng.uniform(-1.0, 1.0, spec.shape).astype(spec.dtype)
    else:
        info = np.iinfo(np.dtype(spec.dtype))
        sample = rng.integers(info.min, info.max, spec.shape, endpoint=True).astype(spec.dtype)
    expected = dequantize(model.invoke([sample])[0], out_spec).astype(np.float32)
    canary = Canary(sample, expected, default_atol(out_spec.scale))
    atomic_write(paths["tflite"], tflite)
    atomic_write(paths["json"], metadata.to_json())
    atomic_write(paths["npz"], canary.to_npz())
    return result
