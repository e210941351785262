"""Train the sample model: a small CNN on scikit-learn's handwritten digits (8x8 grayscale).

The data ships inside scikit-learn, so nothing is downloaded. Run from the repository root::

    .venv/bin/python models/train_digits.py

It writes, under ``models/digits/``:

* ``digits.keras``       the trained Keras model (input 8x8x1 float in [0, 1], softmax over 10)
* ``labels.txt``         one label per line, in output order
* ``calibration.npz``    ``x``: 300 training images for int8 calibration
* ``heldout.npz``        ``x``, ``y``: the held-out test split, never seen in training
* ``train.npz``          ``x``, ``y``: the training split, for pruning, QAT and distillation
* ``student.keras``      an untrained small CNN (about 1/30 of the parameters) to distill into

``--data-only`` rewrites ``train.npz`` and ``student.keras`` without retraining the model.

Pixels: scikit-learn's digits are 0..16; the model sees ``pixel / 16``. A camera frame (0..255)
maps onto the same range with ``mean=0, std=255`` in the model metadata.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

OUT = Path(__file__).resolve().parent / "digits"
SEED = 0


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=SEED, stratify=y
    )
    return x_train, x_test, y_train, y_test


def build_model():  # type: ignore[no-untyped-def]
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1), name="image"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="digits_cnn",
    )


def build_student():  # type: ignore[no-untyped-def]
    """A small CNN for distillation: about 4.7k parameters against the teacher's 137k."""
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1), name="image"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
            layers.Dense(10, activation="softmax", name="probabilities"),
        ],
        name="digits_student",
    )


def write_training_files(out: Path, x_train: np.ndarray, y_train: np.ndarray) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    np.savez_compressed(out / "train.npz", x=x_train, y=y_train)
    build_student().save(out / "student.keras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--data-only", action="store_true", help="only train.npz, student.keras")
    args = parser.parse_args()

    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test = load_split()
    args.out.mkdir(parents=True, exist_ok=True)
    write_training_files(args.out, x_train, y_train)
    if args.data_only:
        print(f"wrote {args.out / 'train.npz'} and {args.out / 'student.keras'}")
        return
    tf.keras.utils.set_random_seed(SEED)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    # Save an uncompiled copy: the optimizer state would triple the file and is not needed.
    inference = tf.keras.models.clone_model(model)
    inference.set_weights(model.get_weights())
    inference.save(args.out / "digits.keras")
    (args.out / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    np.savez_compressed(args.out / "calibration.npz", x=x_train[:300])
    np.savez_compressed(args.out / "heldout.npz", x=x_test, y=y_test)
    print(f"held-out accuracy {accuracy:.4f} on {len(y_test)} images; wrote {args.out}")


if __name__ == "__main__":
    main()
