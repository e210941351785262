"""The models, the video and the device files of ``bench/bench_agent.py``, made as a user would.

* Models: the Coral COCO SSD and the MediaPipe selfie segmenter out of their registry packages
  (``tests/support/thirdparty.py``, sha256-pinned), and a random-weight MobileNetV2 converted to
  int8 by our converter.
* Video: 640×480 scikit-image photos, shifted a little per frame, as an MJPG AVI (OpenCV) or
  as raw concatenated JPEGs (``.mjpeg``, what an MJPEG camera or HTTP stream sends).
* Bundle: the BYOM path of docs/byom.md — ``edge-convert keygen``, ``edge-agent keygen``,
  ``edge-convert bundle MODEL.tflite`` with the metadata derived from the file (the SSD gets
  its label file; MobileNetV2 the converter's own ``metadata.json``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "bench-1"
MODELS = ("coco_ssd", "selfie", "mobilenet")
VIDEO_FORMATS = ("avi", "mjpeg")


@dataclass(frozen=True)
class Case:
    """One model ready for all three sides: its ``.tflite``, bundle, video and normalisation."""

    name: str
    tflite: Path
    bundle: Path
    keys: Path
    video: Path
    frames: int
    fps: float
    mean: float
    std: float


def write_video(path: Path, frames: list[np.ndarray], fps: float, fmt: str) -> Path:
    """``frames`` as an MJPG AVI (``avi``) or as concatenated JPEG images (``mjpeg``)."""
    if fmt == "mjpeg":
        with path.open("wb") as out:
            for frame in frames:
                ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if not ok:
                    raise OSError(f"OpenCV cannot encode frame for {path}")
                out.write(jpeg.tobytes())
        return path
    from convert.samples import write_video as write_avi

    return write_avi(path, frames, fps)


def _cli(*args: str | Path) -> None:
    command = [str(a) for a in args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-800:]}")


def _tool(name: str) -> Path:
    return Path(sys.executable).with_name(name)


def _mobilenet(work: Path) -> tuple[Path, list[str]]:
    from bench.agent_models import convert_mobilenet

    _, metadata = convert_mobilenet(work)
    (work / "mobilenet.metadata.json").write_bytes(metadata.to_json())
    return work / "mobilenet.tflite", ["--metadata", str(work / "mobilenet.metadata.json")]


def _model(name: str, work: Path) -> tuple[Path, list[str], float, float]:
    """The ``.tflite``, the ``bundle`` options a user passes, and the script's mean/std."""
    from tests.support.thirdparty import third_party

    if name == "coco_ssd":  # uint8 input: raw pixels, mean/std unused
        return third_party("coco_ssd"), ["--labels", str(third_party("coco_labels"))], 0.0, 1.0
    if name == "selfie":  # its own NormalizationOptions: mean 0, std 255
        return third_party("selfie"), [], 0.0, 255.0
    if name == "mobilenet":
        tflite, options = _mobilenet(work)
        return tflite, options, 127.5, 127.5
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def prepare(name: str, work: Path, video: Path, frames: int, fps: float) -> Case:
    """Keys, the model and its signed, encrypted bundle under ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    keys = work / "keys"
    _cli(_tool("edge-convert"), "keygen", "--out", keys, "--name", "release")
    _cli(_tool("edge-agent"), "keygen", "--out", keys, "--device-id", DEVICE, "--name", "device")
    tflite, options, mean, std = _model(name, work)
    bundle = work / f"{name}-1.edgepkg"
    _cli(
        *(_tool("edge-convert"), "bundle", tflite, "--name", name.replace("_", "-")),
        *("--version", "1", "--signing-key", str(keys / "release.key")),
        *("--recipient", str(keys / "device.pub"), "-o", str(bundle), *options),
    )
    return Case(name, tflite, bundle, keys, video, frames, fps, mean, std)


def agent_config(
    case: Case, work: Path, broker_url: str, threads: int, *, realtime: bool, source: str
) -> Path:
    """The ``edge-agent run`` config: this bundle, this many threads, the video as ``source``."""
    config = work / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\nstate_dir = "{work / "state"}"\n'
        f'[mqtt]\nurl = "{broker_url}"\n'
        f'[keys]\ntrusted_keys = ["{case.keys / "release.pub"}"]\n'
        f'device_key = "{case.keys / "device.key"}"\n'
        f'[model]\nbundle = "{case.bundle}"\nthreads = {threads}\n'
        f'[source]\ntype = "{source}"\npath = "{case.video}"\n'
        f"realtime = {'true' if realtime else 'false'}\n"
        "[output]\ntop_k = 1\n[status]\ninterval_s = 1.0\n"
    )
    return config
