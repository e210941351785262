"""Model metadata: one schema written by the converter and read by the agent.

It describes what the agent needs to feed a model and read its answer without guessing:
tensor names, shapes, dtypes and quantization parameters, how camera pixels become the input
tensor, and the labels. The converter derives it from the converted ``.tflite`` file; the bundle
carries it signed; the agent's pre- and post-processing read it.

Pixel convention: a frame is ``uint8`` in ``0..255``. The float the model sees is
``(pixel - mean[c]) / std[c]``; for a quantized input tensor the agent then applies
``q = round(x / scale) + zero_point``, clipped to the dtype's range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from agent.errors import InputError
from agent.jsonutil import StrictJSONError, dumps_canonical, loads_strict
from agent.schema.decoding import DecoderSpec, DecoderSpecError
from agent.schema.stages import StageError, StageSpec, parse_stages

MAX_METADATA_BYTES = 1 << 20

DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")
Task = Literal["classification", "detection", "segmentation", "landmarks", "raw"]
TASKS: tuple[str, ...] = ("classification", "detection", "segmentation", "landmarks", "raw")
Quantization = Literal["float32", "float16", "dynamic", "int8"]
QUANTIZATIONS: tuple[str, ...] = ("float32", "float16", "dynamic", "int8")
ColorOrder = Literal["rgb", "bgr", "gray"]
ResizeMode = Literal["stretch", "letterbox"]
Scores = Literal["probabilities", "logits", "sigmoid"]


class MetadataError(InputError, ValueError):
    """Model metadata is malformed or inconsistent; the message names the field."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor. ``scale == 0`` means the tensor is not quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8", "int16")


@dataclass(frozen=True)
class Preprocess:
    """How a uint8 image becomes the model's float input (before quantization)."""

    color: ColorOrder = "rgb"
    resize: ResizeMode = "stretch"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (255.0,)


@dataclass(frozen=True)
class ModelMetadata:
    task: Task
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    quantization: Quantization = "float32"
    preprocess: Preprocess = field(default_factory=Preprocess)
    labels: tuple[str, ...] = ()
    scores: Scores = "probabilities"
    source: str = ""
    #: How the outputs are decoded (``None``: classification/raw, or SSD post-process detection).
    decoder: DecoderSpec | None = None
    #: Audio models: the rate (Hz) the input samples are at; 0 for other models.
    sample_rate: int = 0
    #: A model chain's stages (:mod:`agent.schema.stages`); empty for a single model.
    stages: tuple[StageSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # Optional fields are absent when unset: older agents reject unknown keys.
        out.pop("decoder")
        if self.decoder is not None:
            out["decoder"] = self.decoder.to_dict()
        if not self.sample_rate:
            del out["sample_rate"]
        out["stages"] = [s.to_dict() for s in self.stages]
        if not self.stages:
            del out["stages"]
        return out

    def to_json(self) -> bytes:
        return dumps_canonical(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes) -> ModelMetadata:
        try:
            raw = loads_strict(data, MAX_METADATA_BYTES)
        except StrictJSONError as exc:
            raise MetadataError(f"model metadata: {exc}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> ModelMetadata:
        obj = _object(raw, "metadata")
        _only_keys(obj, "metadata", set(cls.__dataclass_fields__))
        task = _choice(obj.get("task"), TASKS, "metadata.task")
        inputs = _tensors(obj.get("inputs"), "metadata.inputs")
        outputs = _tensors(obj.get("outputs"), "metadata.outputs")
        quant = _choice(obj.get("quantization", "float32"), QUANTIZATIONS, "metadata.quantization")
        pre = _preprocess(obj.get("preprocess", {}))
        labels = _str_list(obj.get("labels", []), "metadata.labels")
        scores = _choice(
            obj.get("scores", "probabilities"),
            ("probabilities", "logits", "sigmoid"),
            "metadata.scores",
        )
        source = obj.get("source", "")
        if not isinstance(source, str):
            raise MetadataError("metadata.source must be a string")
        decoder = _decoder(obj.get("decoder"), task)
        rate = obj.get("sample_rate", 0)
        if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= 1_000_000:
            raise MetadataError("metadata.sample_rate must be an integer 0-1000000 (Hz)")
        try:
            stages = parse_stages(obj.get("stages", []))
        except StageError as exc:
            raise MetadataError(str(exc)) from None
        for i, stage in enumerate(stages):
            if stage.model is not None:
                try:
                    nested = cls.from_dict(stage.model)
                except MetadataError as exc:
                    raise MetadataError(f"metadata.stages[{i}].model: {exc}") from None
                if nested.stages:
                    raise MetadataError(f"metadata.stages[{i}].model cannot declare stages")
        if any(s.crop is not None for s in stages):
            _check_crop_chain(stages)
        return cls(
            stages=stages,
            sample_rate=rate,
            task=cast(Task, task),
            inputs=inputs,
            outputs=outputs,
            quantization=cast(Quantization, quant),
            preprocess=pre,
            labels=labels,
            scores=cast(Scores, scores),
            source=source,
            decoder=decoder,
        )


def _decoder(raw: object, task: str) -> DecoderSpec | None:
    if raw is None:
        if task in ("segmentation", "landmarks"):
            raise MetadataError(f"metadata.decoder is required for task {task}")
        return None
    try:
        decoder = DecoderSpec.from_dict(raw)
    except DecoderSpecError as exc:
        raise MetadataError(str(exc)) from None
    if decoder.task != task:
        raise MetadataError(
            f"metadata.decoder.kind {decoder.kind} decodes {decoder.task}, but task is {task}"
        )
    return decoder


def _object(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MetadataError(f"{where} must be an object")
    return cast(dict[str, Any], raw)


def _only_keys(obj: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise MetadataError(f"{where}: unknown key {unknown[0]!r}")


def _choice(value: object, allowed: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise MetadataError(f"{where} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _str_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where} must be a list of strings")
    return tuple(cast(list[str], value))


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetadataError(f"{where} must be a number")
    return float(value)


def _tensors(value: object, where: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise MetadataError(f"{where} must be a non-empty list")
    specs = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        obj = _object(item, here)
        _only_keys(obj, here, {"name", "shape", "dtype", "scale", "zero_point"})
        name = obj.get("name")
        if not isinstance(name, str):
            raise MetadataError(f"{here}.name must be a string")
        shape = obj.get("shape")
        if (
            not isinstance(shape, list | tuple)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):
            raise MetadataError(f"{here}.shape must be a list of positive integers")
        dtype = _choice(obj.get("dtype"), DTYPES, f"{here}.dtype")
        scale = _number(obj.get("scale", 0.0), f"{here}.scale")
        zero_point = obj.get("zero_point", 0)
        if not isinstance(zero_point, int) or isinstance(zero_point, bool):
            raise MetadataError(f"{here}.zero_point must be an integer")
        specs.append(TensorSpec(name, tuple(shape), dtype, scale, zero_point))
    return tuple(specs)


def _preprocess(value: object) -> Preprocess:
    obj = _object(value, "metadata.preprocess")
    _only_keys(obj, "metadata.preprocess", {"color", "resize", "mean", "std"})
    color = _choice(obj.get("color", "rgb"), ("rgb", "bgr", "gray"), "metadata.preprocess.color")
    resize = _choice(
        obj.get("resize", "stretch"), ("stretch", "letterbox"), "metadata.preprocess.resize"
    )
    mean = tuple(_number(v, "metadata.preprocess.mean") for v in _seq(obj.get("mean", [0.0])))
    std = tuple(_number(v, "metadata.preprocess.std") for v in _seq(obj.get("std", [255.0])))
    if not mean or not std or any(s == 0.0 for s in std):
        raise MetadataError("metadata.preprocess: mean and std must be non-empty, std non-zero")
    return Preprocess(cast(ColorOrder, color), cast(ResizeMode, resize), mean, std)


def _seq(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise MetadataError("metadata.preprocess mean/std must be lists of numbers")
    return list(value)


def _check_crop_chain(stages: tuple[StageSpec, ...]) -> None:
    """A crop chain is a detector with its own metadata, then the crop stage."""
    model = stages[0].model
    if len(stages) != 2 or stages[1].crop is None or model is None:
        raise MetadataError(
            "metadata.stages: a crop chain is two stages, a detector with its own 'model' "
            "metadata, then the crop stage (model.tflite)"
        )
    if model.get("task") != "detection":
        raise MetadataError("metadata.stages[0].model.task must be 'detection' for a crop chain")
