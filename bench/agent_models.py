"""Models and frames shared by the agent benchmarks (bench_agent, frame_work, update_models).

``convert_digits`` / ``convert_mobilenet``: the sample digits model and a random-weight
(``weights=None``, nothing downloaded) MobileNetV2, both int8 by our converter.
``photo_frames``: 640×480 scikit-image sample photos. ``frame_case``: a model with a video,
for ``bench/frame_work.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from agent.schema.meta import ModelMetadata
from convert.api import ConvertOptions, convert_keras
from convert.samples import digit_frames, write_video

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 640, 480


@dataclass
class FrameCase:
    name: str
    tflite: bytes
    metadata: ModelMetadata
    video: Path
    frames: int
    fps: float


def convert_digits(work: Path) -> tuple[bytes, ModelMetadata]:
    models = ROOT / "models" / "digits"
    result = convert_keras(
        models / "digits.keras",
        work / "digits.tflite",
        ConvertOptions(
            quantize="int8",
            representative=models / "calibration.npz",
            color="gray",
            mean=(0.0,),
            std=(255.0,),
            labels=tuple((models / "labels.txt").read_text().split()),
        ),
    )
    return result.tflite_path.read_bytes(), result.metadata


def convert_mobilenet(work: Path) -> tuple[bytes, ModelMetadata]:
    from bench.bench_convert import _calibration_images, _mobilenet

    source = _mobilenet(work)
    images = _calibration_images(work)
    result = convert_keras(
        source,
        work / "mobilenet.tflite",
        ConvertOptions(
            quantize="int8",
            representative=images,
            color="rgb",
            mean=(127.5,),
            std=(127.5,),
        ),
    )
    return result.tflite_path.read_bytes(), result.metadata


def photo_frames(count: int) -> list[np.ndarray]:
    """``count`` BGR 640×480 frames of scikit-image sample photos, each shifted 3 px more."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    frames = []
    for i in range(count):
        rgb = photos[i % len(photos)]
        frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (WIDTH, HEIGHT))
        frames.append(np.roll(frame, i * 3, axis=1))
    return frames


def frame_case(name: str, work: Path) -> FrameCase:
    """digits on 600 64×64 frames at 30 fps, or MobileNetV2 on 300 photos at 15 fps."""
    work.mkdir(parents=True, exist_ok=True)
    if name == "digits":
        tflite, meta = convert_digits(work)
        images, _ = digit_frames(600, side=64)
        video = write_video(work / "digits.avi", images, 30.0)
        return FrameCase(name, tflite, meta, video, 600, 30.0)
    tflite, meta = convert_mobilenet(work)
    video = write_video(work / "photos.avi", photo_frames(300), 15.0)
    return FrameCase(name, tflite, meta, video, 300, 15.0)
