"""Compression benchmark: every method on the digits model, through ``edge-convert compare``.

fp32, fp16, dynamic, int8 post-training, int8 after quantization-aware training, pruned (0.8)
+ int8, and a distilled student (``models/digits/student.keras``) + int8: file size, deflated
size, zero-weight share, median invoke latency (all variants timed in interleaved rounds with
the same threads), held-out accuracy and agreement with the Keras model.

Run: ``.venv/bin/python -m bench.bench_compress [--runs N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchResult, Measure, Plot, Target, plot_path, report
from convert.api import ConvertOptions, convert_many
from convert.compare import CompareOptions, compare
from convert.comparison import Row
from convert.compress import TrainOptions, qat_job
from convert.litert_run import LiteRTModel, interleaved_latency_ms
from convert.plot import accuracy_size_png
from convert.sparse_path import sparse_candidates

OUTLIER_SCALE = 1000.0

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"

NOTES = """
Training data `models/digits/train.npz` (1437 images), held-out `models/digits/heldout.npz`
(360 images, never trained on), calibration `models/digits/calibration.npz` (300 training
images). Defaults of the commands: prune 15 epochs, Adam 5e-4 with cosine decay, polynomial
schedule to 0.8 over half the steps, layers under 1000 weights kept dense; QAT 2 epochs at 1e-5;
distillation 40 epochs at 1e-3, T 4, alpha 0.1; seed 0. The digits model is tiny (8x8 input), so
invoke latency is a few microseconds and dominated by call overhead; the size columns are what
matter here. Post-training int8 is already at the float accuracy on this model, so QAT can only
match it.

XNNPACK's sparse path: the digits CNN has no 1x1 convolution, so it cannot use it (see each
prune report's `xnnpack` section). The MobileNetV2 probe is the pattern the sparse kernels are
written for (1x1 convolutions between depthwise ones, 80% zeros by magnitude, random weights:
latency does not depend on training). A ratio near or above 1 for the sparse-format model means
XNNPACK's sparse kernels gave nothing on this host; whether the pip build of LiteRT compiles
XNNPACK's sparse (NCHW) kernels in for x86 could not be told from outside. Not run on ARM,
where those kernels are tuned.
"""


def _measures(rows: list[Row], keras_accuracy: float) -> list[Measure]:
    by = {row.variant: row for row in rows}
    f32 = by["float32"]
    measures = []
    for row in rows:
        measures += [
            Measure(
                f"{row.variant}: deflated size",
                "KiB",
                [row.deflate_size_bytes / 1024],
                [f32.size_bytes / 1024],
                "float32 file",
            ),
            Measure(f"{row.variant}: median invoke", "ms", [row.latency_ms], digits=4),
            Measure(
                f"{row.variant}: held-out accuracy",
                "%",
                [(row.accuracy or 0.0) * 100],
                [keras_accuracy * 100],
                "Keras",
                digits=2,
            ),
        ]
    pruned = by["pruned-int8"]
    measures.append(
        Measure(
            "pruned-int8: zero weights",
            "%",
            [pruned.zero_fraction * 100],
            target=Target(75.0, on_ratio=False),
            digits=1,
        )
    )
    return measures


def _outlier_model(path: Path) -> Path:
    """The digits model with conv channel 0 scaled by OUTLIER_SCALE and the next layer's
    weights for it scaled back: the same function (ReLU is positively homogeneous), one
    activation channel far wider than the rest."""
    import keras

    model = keras.models.load_model(DIGITS / "digits.keras", compile=False)
    first, second = model.layers[0], model.layers[1]
    kernel, bias = first.get_weights()
    kernel[..., 0] *= OUTLIER_SCALE
    bias[0] *= OUTLIER_SCALE
    next_kernel, next_bias = second.get_weights()
    next_kernel[:, :, 0, :] /= OUTLIER_SCALE
    first.set_weights([kernel, bias])
    second.set_weights([next_kernel, next_bias])
    model.save(path)
    return path


def _outlier_measures(directory: Path) -> tuple[list[Measure], str]:
    src = _outlier_model(directory / "outlier.keras")
    options = ConvertOptions(
        quantize="int8",
        representative=DIGITS / "calibration.npz",
        validate=DIGITS / "heldout.npz",
    )
    train = TrainOptions(DIGITS / "train.npz", epochs=2, learning_rate=1e-5)
    ptq, qat = convert_many(
        [
            (src, directory / "outlier_ptq.tflite", options),
            qat_job(src, directory / "outlier_qat.tflite", options, train),
        ]
    )
    assert ptq.validation is not None
    assert qat.validation is not None
    keras_accuracy = (ptq.validation.keras_accuracy or 0.0) * 100
    measures = [
        Measure(
            f"outlier-channel digits: {name} held-out accuracy",
            "%",
            [(result.validation.tflite_accuracy or 0.0) * 100],
            [keras_accuracy],
            "Keras",
            digits=2,
        )
        for name, result in (("int8-ptq", ptq), ("int8-qat", qat))
        if result.validation is not None
    ]
    text = (
        f"QAT where it matters: the digits model with one first-layer channel scaled by "
        f"{OUTLIER_SCALE:g} (and the next layer's weights for it by 1/{OUTLIER_SCALE:g}) "
        "computes the same function, but its int8 post-training conversion collapses; QAT "
        "(2 epochs, lr 1e-5) recovers it."
    )
    return measures, text


def _pruned_mobilenet() -> tuple[bytes, bytes]:
    """MobileNetV2 0.35 at 96x96 (random weights, nothing downloaded) with 80% of every 1x1
    convolution's and the classifier's weights zeroed by magnitude, as dense and as sparse-format
    float32 .tflite: the pattern XNNPACK's sparse kernels are written for."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )
    for layer in model.layers:
        pointwise = type(layer) is keras.layers.Conv2D and layer.kernel_size == (1, 1)
        if pointwise or isinstance(layer, keras.layers.Dense):
            weights = layer.get_weights()
            kernel = weights[0]
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0.0
            layer.set_weights(weights)
    serve = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, 96, 96, 3])]
    )

    def convert(sparse: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()])
        if sparse:
            converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        data: bytes = converter.convert()
        return data

    return convert(False), convert(True)


def _sparse_path_measures(runs: int, threads: int) -> tuple[list[Measure], str]:
    dense, sparse = _pruned_mobilenet()
    runtimes = {
        "dense": LiteRTModel(dense, threads),
        "sparse": LiteRTModel(sparse, threads),
        "dense builtin": LiteRTModel(dense, threads, xnnpack=False),
    }
    rounds = [interleaved_latency_ms(runtimes, runs, 1) for _ in range(5)]
    candidates = sparse_candidates(sparse)
    measures = [
        Measure(
            "mobilenet_v2 0.35 pruned: sparse-format float32, XNNPACK",
            "ms",
            [r["sparse"] for r in rounds],
            [r["dense"] for r in rounds],
            "same model dense-format, XNNPACK",
            digits=3,
        ),
        Measure(
            "mobilenet_v2 0.35 pruned: dense, built-in kernels (no XNNPACK)",
            "ms",
            [r["dense builtin"] for r in rounds],
            digits=3,
        ),
    ]
    text = (
        f"Sparse path probe: {candidates['sparse_1x1_convolutions']} of the sparse-format "
        f"filters are 1x1 convolutions; sizes {len(dense) / 1024:.0f} KiB dense, "
        f"{len(sparse) / 1024:.0f} KiB sparse-format."
    )
    return measures, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="invokes per timing round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        options = CompareOptions(
            data=DIGITS / "train.npz",
            validate=DIGITS / "heldout.npz",
            representative=DIGITS / "calibration.npz",
            student=DIGITS / "student.keras",
            threads=args.threads,
            runs=args.runs,
            progress=lambda message: print(f"bench: {message}", file=sys.stderr, flush=True),
        )
        result = compare(DIGITS / "digits.keras", Path(tmp), options)
        png = plot_path("compress_digits.png")
        png.write_bytes(accuracy_size_png(result.rows, result.keras_accuracy, "digits CNN"))
        outlier_measures, outlier_text = _outlier_measures(Path(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    keras_accuracy = result.keras_accuracy or 0.0
    sparse_measures, sparse_text = _sparse_path_measures(max(20, args.runs // 10), args.threads)
    return report(
        BenchResult(
            key="compress",
            title="Compression: pruning, QAT and distillation against post-training quantization",
            command=f"python -m bench.bench_compress --runs {args.runs} --threads {args.threads}",
            setup="Same as `edge-convert compare models/digits/digits.keras -o OUT --data "
            "models/digits/train.npz --validate models/digits/heldout.npz --representative "
            "models/digits/calibration.npz --student models/digits/student.keras`. Deflated "
            "size is zlib level 9 of the .tflite; latency is the median of 5 interleaved rounds "
            f"of {args.runs} invokes, {args.threads} threads, XNNPACK on.",
            measures=_measures(result.rows, keras_accuracy) + outlier_measures + sparse_measures,
            extra="\n\n".join((result.markdown(), outlier_text, sparse_text)),
            notes=NOTES,
            plots=[Plot(png, "held-out accuracy against size, digits CNN variants")],
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
