"""Conversion benchmark: file size, ratio to float32 and median LiteRT invoke latency per mode.

Two models: the bundled digits CNN, and a MobileNetV2-shaped model
(``tf.keras.applications.MobileNetV2(weights=None)``, random weights, nothing downloaded)
calibrated on scikit-image sample photos with flips and crops (~100 images).

Run: ``.venv/bin/python -m bench.bench_convert [--runs N] [--threads N] [--only digits]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.report import BenchResult, Measure, Target, report
from convert.api import ConvertOptions, convert_keras

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
MODES = ("float32", "float16", "dynamic", "int8")
SAMPLE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")


def _mobilenet(directory: Path) -> Path:
    import tensorflow as tf

    path = directory / "mobilenet_v2.keras"
    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000)
    model.save(path)
    return path


def _calibration_images(directory: Path, count: int = 100) -> Path:
    """Sample photos shipped with scikit-image, flipped and cropped into ``count`` PNGs."""
    import cv2
    from skimage import data

    out = directory / "calibration"
    out.mkdir()
    rng = np.random.default_rng(0)
    photos = [getattr(data, name)() for name in SAMPLE_IMAGES]
    for i in range(count):
        rgb = photos[i % len(photos)]
        h, w = rgb.shape[:2]
        size = int(min(h, w) * rng.uniform(0.5, 1.0))
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = rgb[top : top + size, left : left + size]
        if i % 2:
            crop = crop[:, ::-1]
        cv2.imwrite(
            str(out / f"{i:03}.png"), cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR)
        )
    return out


_SIZE_TARGETS = {"int8": 0.3, "float16": 0.6, "dynamic": 0.3}

NOTES = """
`digits` is `models/digits/digits.keras`, calibrated on `models/digits/calibration.npz` (300
samples). `mobilenet_v2` is `tf.keras.applications.MobileNetV2(weights=None,
input_shape=(224, 224, 3), classes=1000)` (random weights, nothing downloaded), int8-calibrated
from an image directory: 100 flipped/cropped scikit-image sample photos (astronaut, coffee,
chelsea, rocket, cat, immunohistochemistry) with `mean 127.5, std 127.5`. Each mode is converted
by `edge-convert`'s own worker; latency is the median of the timed `invoke()` calls after 3
warm-up calls, LiteRT with the given threads.

On an x86 CPU, float16 weights are expanded to float32 at run time, so float16 saves space but
not time, and `dynamic` (int8 weights, float activations, hybrid kernels) can be the slowest mode
for MobileNetV2; full int8 is the mode to use on ARM devices (and the only one the Edge TPU
accepts). A Raspberry Pi is several times slower in absolute terms; rerun the benchmark there for
real figures.
"""


def _bench(
    name: str, src: Path, representative: Path, base: ConvertOptions, out: Path
) -> list[Measure]:
    measures = []
    float32_size: int | None = None
    for mode in MODES:
        options = ConvertOptions(
            quantize=mode,
            representative=representative if mode == "int8" else None,
            calibration_samples=base.calibration_samples,
            threads=base.threads,
            latency_runs=base.latency_runs,
            mean=base.mean,
            std=base.std,
            float32_size_bytes=float32_size,
            reference_float32=False,
        )
        print(f"bench: {name} {mode}", file=sys.stderr, flush=True)
        converted = convert_keras(src, out / f"{name}_{mode}.tflite", options).report
        float32_size = float32_size or converted["size_bytes"]
        bound = _SIZE_TARGETS.get(mode)
        measures += [
            Measure(
                f"{name} {mode}: size",
                "KiB",
                [converted["size_bytes"] / 1024],
                [float32_size / 1024],
                "float32",
                Target(bound, at_least=False) if bound else None,
            ),
            Measure(
                f"{name} {mode}: median invoke",
                "ms",
                [converted["latency"]["median_ms"]],
                digits=3,
            ),
        ]
    return measures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed invocations per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("digits", "mobilenet_v2"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        if args.only in (None, "digits"):
            base = ConvertOptions(threads=args.threads, latency_runs=args.runs)
            measures += _bench(
                "digits", DIGITS / "digits.keras", DIGITS / "calibration.npz", base, work
            )
        if args.only in (None, "mobilenet_v2"):
            base = ConvertOptions(
                threads=args.threads,
                latency_runs=args.runs,
                mean=(127.5,),
                std=(127.5,),
                calibration_samples=100,
            )
            src = _mobilenet(work)
            measures += _bench("mobilenet_v2", src, _calibration_images(work), base, work)
    only = f" --only {args.only}" if args.only else ""
    return report(
        BenchResult(
            key="convert",
            title="Conversion: size and invoke latency per quantization mode",
            command=f"python -m bench.bench_convert --runs {args.runs} --threads {args.threads}"
            + only,
            setup=f"Sizes are ratios to the float32 conversion of the same model; latency is the "
            f"median of {args.runs} invocations with {args.threads} threads.",
            measures=measures,
            notes=NOTES,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
