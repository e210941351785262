"""Rebuild a Keras 3 model as a tf-keras (Keras 2) model: tfmot only follows tf-keras.

Worker-side only (imports TensorFlow lazily). ``tensorflow-model-optimization`` wraps tf-keras
layers; our users save Keras 3 ``.keras`` files, which tf-keras cannot load. The bridge rebuilds
the layer stack layer by layer from each layer's config (keeping only the arguments tf-keras
knows, initializers dropped since the weights are copied) and copies the weights, then checks
both models give the same outputs. It handles ``Sequential`` models and functional models whose
layers form a single chain; anything else is refused with the reason.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from agent.errors import InputError

_BASE_ARGUMENTS = frozenset({"name", "trainable", "dtype"})
MAX_BRIDGE_ERROR = 1e-4


def to_tf_keras(model: Any, probe: np.ndarray) -> Any:
    """The tf-keras twin of the Keras 3 ``model``; ``probe`` is a batch to check outputs on."""
    import tf_keras

    layers = _chain(model)
    rebuilt = [_layer(tf_keras, layer) for layer in layers]
    shape = tuple(model.inputs[0].shape[1:])
    twin = tf_keras.Sequential([tf_keras.Input(shape), *rebuilt], name=model.name)
    for source, target in zip(layers, rebuilt, strict=True):
        target.set_weights(source.get_weights())
    expected = np.asarray(model(probe, training=False))
    got = np.asarray(twin(probe, training=False))
    error = float(np.abs(expected - got).max())
    if error > MAX_BRIDGE_ERROR:
        raise InputError(
            f"the tf-keras copy of the model differs from it (max abs error {error:.3g}): "
            "a layer option tf-keras does not support"
        )
    return twin


def _chain(model: Any) -> list[Any]:
    """The model's layers (without the input layer), in order, if they form one chain."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if type(model).__name__ == "Sequential":
        return layers
    previous = model.inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1:
            raise _not_a_chain(layer.name)
        inputs = layer._inbound_nodes[0].input_tensors
        if len(inputs) != 1 or inputs[0] is not previous:
            raise _not_a_chain(layer.name)
        previous = layer.output
    if previous is not model.outputs[0]:
        raise _not_a_chain(layers[-1].name if layers else model.name)
    return layers


def _not_a_chain(name: str) -> InputError:
    return InputError(
        f"pruning and quantization-aware training need a Sequential model or a functional model "
        f"whose layers form a single chain (tensorflow-model-optimization works on tf-keras); "
        f"layer {name!r} has several inputs or outputs"
    )


def _layer(tf_keras: Any, layer: Any) -> Any:
    kind = type(layer).__name__
    cls = getattr(tf_keras.layers, kind, None)
    if cls is None:
        raise InputError(
            f"layer {layer.name!r} ({kind}) has no tf-keras equivalent: "
            "tensorflow-model-optimization cannot wrap it"
        )
    config = _plain(layer.get_config())
    accepted = set(inspect.signature(cls.__init__).parameters) | _BASE_ARGUMENTS
    kept = {
        key: value
        for key, value in config.items()
        if key in accepted and not key.endswith("_initializer")
    }
    return cls.from_config(kept)


def _plain(value: Any) -> Any:
    """Keras 3 config values tf-keras reads: dtype policies become their names."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and "config" in value:
            return value["config"]["name"]
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
