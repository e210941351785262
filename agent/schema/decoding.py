"""The ``decoder`` part of the model metadata: how output tensors become results.

Every field has a default, so a bundle only names what differs. ``kind`` selects the family:

* ``ssd_postprocess``: the 4 outputs of ``TFLite_Detection_PostProcess`` -> detections;
* ``ssd_anchors``: raw box encodings ``[1,N,4]`` and class scores ``[1,N,C]`` -> detections;
* ``blazeface``: regressors ``[1,N,4+2K]`` and scores ``[1,N,C]`` (MediaPipe detectors) ->
  detections with keypoints;
* ``yolov5``: ``[1,N,5+C]`` (x, y, w, h, objectness, classes) -> detections;
* ``yolov8``: ``[1,4+C,N]`` (x, y, w, h, classes; no objectness) -> detections;
* ``segmentation``: ``[1,H,W,C]`` (``C == 1``: foreground score) -> per-class share, box, mask;
* ``landmarks``: points ``[1, P*V]`` (model-input pixels) and an optional score -> points.

Anchors come from :class:`AnchorOptions` (the options of MediaPipe's ``SsdAnchorsCalculator``)
or an explicit ``anchor_table`` of ``[y_center, x_center, h, w]`` rows shipped in the metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

from agent.errors import InputError

KINDS: tuple[str, ...] = (
    "ssd_postprocess",
    "ssd_anchors",
    "blazeface",
    "yolov5",
    "yolov8",
    "segmentation",
    "landmarks",
)
DETECTION_KINDS = ("ssd_postprocess", "ssd_anchors", "blazeface", "yolov5", "yolov8")
KIND_TASK = dict.fromkeys(DETECTION_KINDS, "detection") | {
    "segmentation": "segmentation",
    "landmarks": "landmarks",
}
MAX_ANCHORS = 1 << 17
_CHOICES: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "nms": ("greedy", "weighted"),
    "box_format": ("yxhw", "xywh"),
    "coordinates": ("auto", "pixels", "normalized"),
}


class DecoderSpecError(InputError):
    """The decoder options are malformed; the message names the field."""


@dataclass(frozen=True)
class AnchorOptions:
    """SSD anchor generation (MediaPipe ``SsdAnchorsCalculatorOptions``, same names/defaults)."""

    num_layers: int
    input_size_height: int
    input_size_width: int
    strides: tuple[int, ...]
    min_scale: float = 0.2
    max_scale: float = 0.95
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = False


@dataclass(frozen=True)
class DecoderSpec:
    kind: str
    #: Output indices: boxes/regressors/points/mask tensor and the score tensor (-1: none).
    box_output: int = 0
    score_output: int = 1
    #: Minimum score; the agent config's ``output.score_threshold`` can raise it (``None``: the
    #: config's alone).
    threshold: float | None = None
    iou_threshold: float = 0.5
    max_detections: int = 100
    nms: str = "greedy"
    class_wise: bool = True
    #: Class column 0 is a background class (dropped; labels index the remaining columns).
    background: bool = False
    box_format: str = "yxhw"
    #: Box coder scales in (y, x, h, w) order; SSD's are 10, 10, 5, 5, MediaPipe's the input size.
    box_scale: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    exp_size: bool = True
    num_keypoints: int = 0
    keypoint_offset: int = 4
    values_per_keypoint: int = 2
    #: Clip raw scores to ``[-score_clip, score_clip]`` before the sigmoid (0: no clipping).
    score_clip: float = 0.0
    anchors: AnchorOptions | None = None
    anchor_table: tuple[tuple[float, float, float, float], ...] = ()
    coordinates: str = "auto"
    #: Segmentation: longest side of the compact mask in the result (0: no mask).
    mask_size: int = 0
    mask_threshold: float = 0.5
    #: Landmarks: values per point (x, y[, z, visibility, presence]) and which one is a score.
    values_per_point: int = 3
    point_score_index: int = -1

    @property
    def task(self) -> str:
        return KIND_TASK[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults (plus ``kind``)."""
        defaults = DecoderSpec(self.kind)
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kind" or value != getattr(defaults, f.name):
                out[f.name] = asdict(value) if isinstance(value, AnchorOptions) else value
        return out

    @classmethod
    def from_dict(cls, raw: object) -> DecoderSpec:
        obj = _object(raw, "metadata.decoder")
        if "kind" not in obj:
            raise DecoderSpecError("metadata.decoder.kind is missing")
        values = _typed(cls, obj, "metadata.decoder", skip=frozenset({"anchors"}))
        if obj.get("anchors") is not None:
            anchors = _object(obj["anchors"], "metadata.decoder.anchors")
            values["anchors"] = AnchorOptions(**_typed(AnchorOptions, anchors, "decoder.anchors"))
        spec = cls(**values)
        _check(spec)
        return spec


def _object(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DecoderSpecError(f"{where} must be an object")
    return cast(dict[str, Any], raw)


def _typed(
    cls: type, obj: dict[str, Any], where: str, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(obj) - set(known))
    if unknown:
        raise DecoderSpecError(f"{where}: unknown key {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, value in obj.items():
        if name in skip:
            continue
        values[name] = _coerce(value, str(known[name].type), f"{where}.{name}")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise DecoderSpecError(
                f"{where}.{name} must be one of {', '.join(_CHOICES[name])}; got {value!r}"
            )
    return values


def _coerce(value: object, type_name: str, where: str) -> Any:
    scalar = _SCALARS.get(type_name)
    if scalar is not None:
        if value is None and type_name == "float | None":
            return None
        return scalar(value, where)
    if not isinstance(value, list | tuple):
        raise DecoderSpecError(f"{where} must be a list")
    if type_name == "tuple[int, ...]":
        return tuple(_integer(v, where) for v in value)
    if type_name in ("tuple[float, ...]", "tuple[float, float, float, float]"):
        items = tuple(_finite(v, where) for v in value)
        if type_name.endswith("float]") and len(items) != 4:
            raise DecoderSpecError(f"{where} must have 4 numbers")
        return items
    return _rows(value, where)


def _rows(value: list[Any] | tuple[Any, ...], where: str) -> tuple[tuple[float, ...], ...]:
    if len(value) > MAX_ANCHORS:
        raise DecoderSpecError(f"{where} has more than {MAX_ANCHORS} rows")
    rows = []
    for row in value:
        if not isinstance(row, list | tuple) or len(row) != 4:
            raise DecoderSpecError(f"{where} rows must be [y_center, x_center, h, w]")
        rows.append(tuple(_finite(v, where) for v in row))
    return tuple(rows)


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise DecoderSpecError(f"{where} must be true or false")
    return value


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecoderSpecError(f"{where} must be an integer")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise DecoderSpecError(f"{where} must be a string")
    return value


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DecoderSpecError(f"{where} must be a finite number")
    return float(value)


def _check(spec: DecoderSpec) -> None:
    if spec.max_detections < 1 or spec.max_detections > 10_000:
        raise DecoderSpecError("metadata.decoder.max_detections must be in 1..10000")
    if not 0.0 <= spec.iou_threshold <= 1.0:
        raise DecoderSpecError("metadata.decoder.iou_threshold must be in 0..1")
    if spec.num_keypoints < 0 or spec.values_per_keypoint < 2:
        raise DecoderSpecError("metadata.decoder: num_keypoints >= 0, values_per_keypoint >= 2")
    if not 0 <= spec.mask_size <= 256:
        raise DecoderSpecError("metadata.decoder.mask_size must be in 0..256")
    if spec.values_per_point < 2:
        raise DecoderSpecError("metadata.decoder.values_per_point must be >= 2")
    if any(s == 0.0 for s in spec.box_scale):
        raise DecoderSpecError("metadata.decoder.box_scale must be non-zero")
    if spec.kind in ("ssd_anchors", "blazeface") and spec.anchors is None and not spec.anchor_table:
        raise DecoderSpecError(
            f"metadata.decoder: kind {spec.kind} needs anchors (options) or an anchor_table"
        )
    a = spec.anchors
    if a is not None and (
        a.num_layers != len(a.strides)
        or a.num_layers < 1
        or min(a.strides) < 1
        or a.input_size_height < 1
        or a.input_size_width < 1
        or not a.aspect_ratios
        or min(a.aspect_ratios) <= 0
    ):
        raise DecoderSpecError(
            "metadata.decoder.anchors: num_layers must equal the number of strides, strides, "
            "input sizes and aspect ratios must be positive"
        )


_SCALARS: dict[str, Callable[[object, str], Any]] = {
    "bool": _boolean,
    "int": _integer,
    "float": _finite,
    "float | None": _finite,
    "str": _string,
}
