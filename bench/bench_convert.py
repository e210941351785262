"""Conversion benchmark: file size, ratio to float32 and median LiteRT invoke latency per mode.

Two models: the bundled digits CNN, and a MobileNetV2-shaped model
(``tf.keras.applications.MobileNetV2(weights=None)``, random weights, nothing downloaded)
calibrated on scikit-image sample photos with flips and crops (~100 images).

Run: ``.venv/bin/python -m bench.bench_convert [--runs N] [--threads N] [--only digits]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

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


def _bench(
    name: str, src: Path, representative: Path, base: ConvertOptions, out: Path
) -> list[str]:
    rows = []
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
        report = convert_keras(src, out / f"{name}_{mode}.tflite", options).report
        float32_size = float32_size or report["size_bytes"]
        rows.append(
            f"| {name} | {mode} | {report['size_bytes'] / 1024:,.1f} KiB | "
            f"{report['size_bytes'] / float32_size:.3f} | {report['latency']['median_ms']:.3f} ms |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed invocations per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("digits", "mobilenet_v2"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows = [
        "| model | mode | size | ratio to float32 | median invoke |",
        "| --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        if args.only in (None, "digits"):
            base = ConvertOptions(threads=args.threads, latency_runs=args.runs)
            rows += _bench(
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
            rows += _bench("mobilenet_v2", src, _calibration_images(work), base, work)
    print(
        f"{args.threads} threads, median of {args.runs} invocations; {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
