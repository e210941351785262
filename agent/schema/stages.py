"""A model chain's stages as the metadata declares them (``metadata.stages``; pure).

``[{"name": "melspectrogram", "file": "stage_1.tflite", "window": 1760, "hop": 1280,
"scale": 32768.0, "input_shape": [1, 1760]}, ..., {"name": "hey_jarvis", "file":
"model.tflite", "window": 16, "hop": 1}]``: the last stage is the bundle's ``model.tflite`` (the
one ``inputs``/``outputs``/``labels`` describe); the others are ``stage_1.tflite`` ...
``stage_4.tflite`` in the same signed bundle. Semantics: :mod:`agent.pipeline.chain`.

A *crop stage* (image chains) carries ``"crop": {"max_crops": 4, "threshold": 0.5, "scale": 1.5,
"rotation_keypoints": [0, 1], "target_angle": 0}``: each detection of the stage before it is
cropped from the frame and run through this stage (:mod:`agent.pipeline.crop_stage`); its
``window``/``hop`` default to 1. The detector before it carries its own metadata as ``"model"``
(what ``edge-convert describe --json`` gives for it: inputs, outputs, preprocess, decoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import InputError

STAGE_FILES = ("stage_1.tflite", "stage_2.tflite", "stage_3.tflite", "stage_4.tflite")
FINAL_FILE = "model.tflite"
MAX_WINDOW = 1 << 22
MAX_CROPS = 64


class StageError(InputError):
    """A stage declaration is malformed; the message names the field."""


@dataclass(frozen=True)
class CropSpec:
    """How detections of the previous stage are cropped for this one (angles in degrees)."""

    max_crops: int = 4
    threshold: float = 0.5
    scale: float = 1.5
    rotation_keypoints: tuple[int, int] | None = (0, 1)
    target_angle: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        keypoints = None if self.rotation_keypoints is None else list(self.rotation_keypoints)
        return {
            "max_crops": self.max_crops, "threshold": self.threshold, "scale": self.scale,
            "rotation_keypoints": keypoints, "target_angle": self.target_angle,
        }  # fmt: skip


def parse_crop(value: object, where: str) -> CropSpec:
    if not isinstance(value, dict):
        raise StageError(f"{where} must be an object")
    unknown = sorted(set(value) - set(CropSpec().to_dict()))
    if unknown:
        raise StageError(f"{where}: unknown key {unknown[0]!r}")
    threshold = _num(value.get("threshold", 0.5), f"{where}.threshold")
    scale = _num(value.get("scale", 1.5), f"{where}.scale")
    if not 0.0 <= threshold <= 1.0:
        raise StageError(f"{where}.threshold must be between 0 and 1")
    if not 0.1 <= scale <= 10.0:
        raise StageError(f"{where}.scale must be between 0.1 and 10")
    pair = value.get("rotation_keypoints", [0, 1])
    if pair is not None and (
        not isinstance(pair, list) or len(pair) != 2 or len(set(pair)) != 2
        or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 64 for k in pair)
    ):  # fmt: skip
        raise StageError(f"{where}.rotation_keypoints must be two distinct indices 0-63 or null")
    return CropSpec(
        max_crops=_int(value.get("max_crops", 4), f"{where}.max_crops", MAX_CROPS),
        threshold=threshold,
        scale=scale,
        rotation_keypoints=None if pair is None else (pair[0], pair[1]),
        target_angle=_num(value.get("target_angle", 0.0), f"{where}.target_angle"),
    )


@dataclass(frozen=True)
class StageSpec:
    name: str
    file: str
    window: int
    hop: int
    scale: float = 1.0
    offset: float = 0.0
    input_shape: tuple[int, ...] | None = None  # resize a dynamic input before allocation
    crop: CropSpec | None = None  # a crop stage: runs on crops of the previous stage's detections
    model: dict[str, Any] | None = None  # an image stage's own metadata (checked by ModelMetadata)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "file": self.file, "window": self.window, "hop": self.hop,
            "scale": self.scale, "offset": self.offset,
        }  # fmt: skip
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        if self.crop is not None:
            out["crop"] = self.crop.to_dict()
        if self.model is not None:
            out["model"] = self.model
        return out


def _int(value: object, where: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise StageError(f"{where} must be an integer 1-{hi}")
    return value


def _num(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StageError(f"{where} must be a number")
    return float(value)


def parse_stages(value: object) -> tuple[StageSpec, ...]:
    if not isinstance(value, list | tuple):
        raise StageError("metadata.stages must be a list")
    if len(value) == 1 or len(value) > len(STAGE_FILES) + 1:
        raise StageError(f"metadata.stages must hold 2-{len(STAGE_FILES) + 1} stages")
    specs = []
    for i, raw in enumerate(value):
        where = f"metadata.stages[{i}]"
        if not isinstance(raw, dict):
            raise StageError(f"{where} must be an object")
        allowed = {"name", "file", "window", "hop", "scale", "offset", "input_shape", "crop",
                   "model"}  # fmt: skip
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise StageError(f"{where}: unknown key {unknown[0]!r}")
        name, file = raw.get("name"), raw.get("file")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise StageError(f"{where}.name must be a string of 1-64 characters")
        expected = FINAL_FILE if i == len(value) - 1 else STAGE_FILES[i]
        if file != expected:
            raise StageError(f"{where}.file must be {expected!r}")
        shape = raw.get("input_shape")
        if shape is not None and (
            not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):  # fmt: skip
            raise StageError(f"{where}.input_shape must be a list of positive integers")
        crop = None if raw.get("crop") is None else parse_crop(raw["crop"], f"{where}.crop")
        if crop is not None and i == 0:
            raise StageError(f"{where}.crop: the first stage has no detections to crop")
        model = raw.get("model")
        if model is not None and (not isinstance(model, dict) or i == len(value) - 1):
            raise StageError(f"{where}.model must be an object, on a stage before the last")
        one = 1 if crop is not None or model is not None else None
        specs.append(
            StageSpec(
                name=name,
                file=file,
                window=_int(raw.get("window", one), f"{where}.window", MAX_WINDOW),
                hop=_int(raw.get("hop", one), f"{where}.hop", MAX_WINDOW),
                scale=_num(raw.get("scale", 1.0), f"{where}.scale"),
                offset=_num(raw.get("offset", 0.0), f"{where}.offset"),
                input_shape=None if shape is None else tuple(shape),
                crop=crop,
                model=model,
            )
        )
    if len({s.name for s in specs}) != len(specs):
        raise StageError("metadata.stages names must be distinct")
    return tuple(specs)
