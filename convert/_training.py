"""Training before conversion, in the worker: magnitude pruning, quantization-aware training,
knowledge distillation. Imports TensorFlow, tf-keras and tensorflow-model-optimization lazily.

Each method takes the loaded Keras 3 model and labelled training data and returns the model to
convert (a callable on a float32 batch) and facts for the report. Pruning and QAT go through
tfmot, which needs tf-keras (:mod:`convert._tfkeras`); distillation is plain Keras 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import InputError
from convert.datasets import Labeled

Step = Callable[[str, int, int, str], None]  # bar name, done, total, text
_PROBABILITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Trained:
    """The model to convert and what training did."""

    fn: Callable[[Any], Any]
    obj: Any
    facts: dict[str, Any]


def train(request: dict[str, Any], model: Any, data: Labeled, step: Step) -> Trained:
    """Dispatch on ``request['method']``; ``model`` is the loaded Keras 3 model."""
    if data.y is None:
        raise InputError(f"training data {request['data']} needs integer labels 'y'")
    import keras

    keras.utils.set_random_seed(int(request["seed"]))
    method = request["method"]
    if method == "prune":
        return _prune(request, model, data, step)
    if method == "qat":
        return _qat(request, model, data, step)
    if method == "distill":
        return _distill(request, model, data, step)
    raise InputError(f"unknown training method {method!r}")


def outputs_probabilities(outputs: np.ndarray) -> bool:
    """Whether a classifier's outputs are probabilities (softmax) rather than logits."""
    flat = outputs.reshape(len(outputs), -1)
    return bool(
        (flat >= 0).all() and np.allclose(flat.sum(axis=1), 1.0, atol=_PROBABILITY_TOLERANCE)
    )


def _classes(model: Any, data: Labeled) -> tuple[int, bool]:
    probe = np.asarray(model(data.x[:32], training=False))
    if probe.ndim != 2:
        raise InputError(
            f"training needs a classifier with outputs (N, classes); the model gives "
            f"{tuple(probe.shape)}"
        )
    classes = int(probe.shape[1])
    assert data.y is not None
    if int(data.y.max()) >= classes or int(data.y.min()) < 0:
        raise InputError(f"training labels must be in 0..{classes - 1} for this model")
    return classes, outputs_probabilities(probe)


def _epoch_callback(base: type, step: Step, epochs: int, bar: str) -> Any:
    class Epochs(base):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            text = ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()))
            step(bar, epoch + 1, epochs, text)

    return Epochs()


def _fit_tf_keras(
    model: Any,
    request: dict[str, Any],
    data: Labeled,
    probabilities: bool,
    *,
    step: Step,
    extra: tuple[Any, ...] = (),
) -> dict[str, float]:
    import tf_keras

    epochs, batch = int(request["epochs"]), int(request["batch_size"])
    steps = epochs * -(-len(data.x) // batch)
    rate = tf_keras.optimizers.schedules.CosineDecay(float(request["learning_rate"]), steps)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities),
        metrics=["accuracy"],
    )
    callback = _epoch_callback(tf_keras.callbacks.Callback, step, epochs, "epoch")
    history = model.fit(
        data.x, data.y, epochs=epochs, batch_size=batch, verbose=0, callbacks=[*extra, callback]
    )
    return {key: float(values[-1]) for key, values in history.history.items()}


def _prune(request: dict[str, Any], model: Any, data: Labeled, step: Step) -> Trained:
    import tensorflow_model_optimization as tfmot

    from convert._tfkeras import to_tf_keras

    _, probabilities = _classes(model, data)
    twin = to_tf_keras(model, data.x[:32])
    sparsity = float(request["sparsity"])
    epochs, batch = int(request["epochs"]), int(request["batch_size"])
    steps = epochs * -(-len(data.x) // batch)
    if request["schedule"] == "constant":
        schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=10)
    else:  # polynomial: reach the target after half the steps, fine-tune the rest at it
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            0.0, sparsity, begin_step=0, end_step=max(1, steps // 2), frequency=10
        )
    minimum = int(request["min_layer_weights"])
    kept_dense: list[str] = []

    def wrap(layer: Any) -> Any:
        size = sum(int(np.prod(w.shape)) for w in layer.trainable_weights if "kernel" in w.name)
        if size == 0:
            return layer
        if size < minimum:
            kept_dense.append(layer.name)
            return layer
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    import tf_keras

    wrapped = tf_keras.models.clone_model(twin, clone_function=wrap)
    for source, target in zip(twin.layers, wrapped.layers, strict=True):
        (getattr(target, "layer", target)).set_weights(source.get_weights())
    final = _fit_tf_keras(
        wrapped,
        request,
        data,
        probabilities,
        step=step,
        extra=(tfmot.sparsity.keras.UpdatePruningStep(),),
    )
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    kernels = [w.numpy() for w in stripped.trainable_weights if "kernel" in w.name]
    zeros = sum(int((k == 0).sum()) for k in kernels)
    total = sum(k.size for k in kernels)
    facts = {
        "method": "prune",
        "sparsity_target": sparsity,
        "schedule": request["schedule"],
        "min_layer_weights": minimum,
        "kept_dense": kept_dense,
        "keras_kernel_zero_fraction": round(zeros / total, 4) if total else 0.0,
        **_common(request, final),
    }
    return Trained(lambda x: stripped(x, training=False), stripped, facts)


def _qat(request: dict[str, Any], model: Any, data: Labeled, step: Step) -> Trained:
    import tensorflow_model_optimization as tfmot

    from convert._tfkeras import to_tf_keras

    _, probabilities = _classes(model, data)
    twin = to_tf_keras(model, data.x[:32])
    quantized = tfmot.quantization.keras.quantize_model(twin)
    final = _fit_tf_keras(quantized, request, data, probabilities, step=step)
    facts = {"method": "qat", **_common(request, final)}
    return Trained(lambda x: quantized(x, training=False), quantized, facts)


def _common(request: dict[str, Any], final: dict[str, float]) -> dict[str, Any]:
    return {
        "epochs": int(request["epochs"]),
        "batch_size": int(request["batch_size"]),
        "learning_rate": float(request["learning_rate"]),
        "seed": int(request["seed"]),
        "samples": int(request["samples"]),
        "final_loss": round(final.get("loss", float("nan")), 6),
        "final_train_accuracy": round(final.get("accuracy", float("nan")), 6),
    }


def _distill(request: dict[str, Any], teacher: Any, data: Labeled, step: Step) -> Trained:
    import keras
    import tensorflow as tf

    from convert._worker import load_keras

    student = load_keras(request["student"], "student")
    if tuple(student.inputs[0].shape[1:]) != tuple(teacher.inputs[0].shape[1:]):
        raise InputError(
            f"student input {tuple(student.inputs[0].shape[1:])} differs from the teacher's "
            f"{tuple(teacher.inputs[0].shape[1:])}"
        )
    classes, teacher_probs = _classes(teacher, data)
    student_classes, student_probs = _classes(student, data)
    if student_classes != classes:
        raise InputError(f"student has {student_classes} outputs, the teacher {classes}")
    temperature, alpha = float(request["temperature"]), float(request["alpha"])
    teacher_out = np.asarray(teacher.predict(data.x, verbose=0, batch_size=256), np.float64)
    logits = np.log(np.clip(teacher_out, 1e-12, None)) if teacher_probs else teacher_out
    soft = _softmax(logits / temperature)
    assert data.y is not None
    targets = np.concatenate([np.eye(classes)[data.y], soft], axis=1).astype(np.float32)

    def loss(y_true: Any, y_pred: Any) -> Any:
        hard, soft_t = y_true[:, :classes], y_true[:, classes:]
        z = tf.math.log(tf.clip_by_value(y_pred, 1e-12, 1.0)) if student_probs else y_pred
        ce = keras.losses.categorical_crossentropy(hard, tf.nn.softmax(z))
        log_student = tf.nn.log_softmax(z / temperature)
        kl = tf.reduce_sum(soft_t * (tf.math.log(soft_t + 1e-12) - log_student), axis=1)
        return alpha * ce + (1.0 - alpha) * temperature**2 * kl

    epochs, batch = int(request["epochs"]), int(request["batch_size"])
    student.compile(optimizer=keras.optimizers.Adam(float(request["learning_rate"])), loss=loss)
    callback = _epoch_callback(keras.callbacks.Callback, step, epochs, "epoch")
    history = student.fit(
        data.x, targets, epochs=epochs, batch_size=batch, verbose=0, callbacks=[callback]
    )
    final = {key: float(values[-1]) for key, values in history.history.items()}
    predictions = np.asarray(student.predict(data.x, verbose=0, batch_size=256))
    final["accuracy"] = float(np.mean(predictions.argmax(axis=1) == data.y))
    teacher_params, student_params = teacher.count_params(), student.count_params()
    facts = {
        "method": "distill",
        "student": request["student"],
        "temperature": temperature,
        "alpha": alpha,
        "teacher_parameters": int(teacher_params),
        "student_parameters": int(student_params),
        "parameter_ratio": round(student_params / teacher_params, 4),
        **_common(request, final),
    }
    return Trained(lambda x: student(x, training=False), student, facts)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    result: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return result
