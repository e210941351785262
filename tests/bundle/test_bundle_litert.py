"""The real thing: bundle the converted float32 and int8 sample models, verify, decrypt in
memory, load them into LiteRT and run their canaries and held-out digits."""

from __future__ import annotations

import numpy as np
import pytest

from agent.bundle import RecipientKey, open_bundle
from agent.pipeline.tensors import dequantize, quantize
from agent.runtime import open_model
from agent.schema.canary import check_canary, load_canary
from agent.schema.meta import ModelMetadata
from tests.bundle.world import World
from tests.support.models import HELDOUT, LABELS, ModelFactory


@pytest.mark.tensorflow
@pytest.mark.parametrize(("quantization", "io_type"), [("float32", "float32"), ("int8", "int8")])
def test_sample_model_bundle_verifies_decrypts_and_runs_in_litert(
    world: World, sample_models: ModelFactory, quantization: str, io_type: str
) -> None:
    converted = sample_models(quantization, io_type)
    files = {
        "model.tflite": converted.tflite.read_bytes(),
        "metadata.json": converted.metadata.read_bytes(),
        "canary.npz": converted.canary.read_bytes(),
        "labels.txt": LABELS.read_bytes(),
    }
    data = world.bundle(
        files=files,
        metadata=ModelMetadata.from_json(files["metadata.json"]),
        recipients=[RecipientKey("device-a", world.device_a.public_key())],
    )
    bundle = open_bundle(data, world.verifier())
    assert bundle.verified.manifest.metadata == converted.model_metadata()
    model = open_model(bytes(bundle.files["model.tflite"]), backend="auto", accelerator="cpu")
    try:
        assert model.inputs[0].dtype == io_type
        canary = load_canary(bundle.files["canary.npz"])
        output = model.invoke([canary.input])[0]
        result = check_canary(dequantize(output, model.outputs[0]), canary)
        assert result.passed, result
        heldout = np.load(HELDOUT)
        x, y = heldout["x"][:200], heldout["y"][:200]
        spec = model.inputs[0]
        correct = 0
        for image, label in zip(x, y, strict=True):
            batch = quantize(image[np.newaxis].astype(np.float32).reshape(spec.shape), spec)
            scores = dequantize(model.invoke([batch])[0], model.outputs[0])
            correct += int(np.argmax(scores) == label)
        assert correct / len(y) >= 0.95
    finally:
        model.close()
