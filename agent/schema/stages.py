"""A model chain's stages as the metadata declares them (``metadata.stages``; pure).

``[{"name": "melspectrogram", "file": "stage_1.tflite", "window": 1760, "hop": 1280,
"scale": 32768.0, "input_shape": [1, 1760]}, ..., {"name": "hey_jarvis", "file":
"model.tflite", "window": 16, "hop": 1}]``: the last stage is the bundle's ``model.tflite`` (the
one ``inputs``/``outputs``/``labels`` describe); the others are ``stage_1.tflite`` ...
``stage_4.tflite`` in the same signed bundle. Semantics: :mod:`agent.pipeline.chain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import InputError

STAGE_FILES = ("stage_1.tflite", "stage_2.tflite", "stage_3.tflite", "stage_4.tflite")
FINAL_FILE = "model.tflite"
MAX_WINDOW = 1 << 22


class StageError(InputError):
    """A stage declaration is malformed; the message names the field."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    file: str
    window: int
    hop: int
    scale: float = 1.0
    offset: float = 0.0
    input_shape: tuple[int, ...] | None = None  # resize a dynamic input before allocation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "file": self.file, "window": self.window, "hop": self.hop,
            "scale": self.scale, "offset": self.offset,
        }  # fmt: skip
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
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
        allowed = {"name", "file", "window", "hop", "scale", "offset", "input_shape"}
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
        specs.append(
            StageSpec(
                name=name,
                file=file,
                window=_int(raw.get("window"), f"{where}.window", MAX_WINDOW),
                hop=_int(raw.get("hop"), f"{where}.hop", MAX_WINDOW),
                scale=_num(raw.get("scale", 1.0), f"{where}.scale"),
                offset=_num(raw.get("offset", 0.0), f"{where}.offset"),
                input_shape=None if shape is None else tuple(shape),
            )
        )
    if len({s.name for s in specs}) != len(specs):
        raise StageError("metadata.stages names must be distinct")
    return tuple(specs)
