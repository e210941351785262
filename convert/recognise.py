"""Recognise what a third-party ``.tflite`` is and derive the metadata a bundle needs (pure).

Input: the file's own tables (:mod:`convert.tflite_info`), the output shapes after
``allocate_tensors`` (custom ops such as ``TFLite_Detection_PostProcess`` only know theirs
then), the embedded TFLite metadata and associated files, and the user's options. Output: a
:class:`~agent.schema.meta.ModelMetadata` plus the reasons for each choice, or an
:class:`~agent.errors.InputError` saying which option to change.

Rules, in order (``--task``/``--decoder`` override them; an override that does not fit the
outputs is refused):

* a ``TFLite_Detection_PostProcess`` op and 4 outputs: detection, ``ssd_postprocess``;
* two outputs ``[1,N,K]`` and ``[1,N,C]``: ``K == 4`` is a raw SSD (``ssd_anchors``), ``K = 4+2k``
  with ``k > 0`` a MediaPipe-style detector with ``k`` keypoints (``blazeface``); anchors come
  from the first standard layout whose anchor count equals ``N`` (or the command line);
* one ``[1,H,W,C]`` output: segmentation; one ``[1,A,B]`` output with ``A < B``: ``yolov8``,
  ``A > B``: ``yolov5``;
* a flat output whose size is a multiple of 3 next to a single-value output: landmarks;
* one ``[1,N]`` output: classification; anything else: raw tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

from agent.errors import InputError
from agent.pipeline.decoders.anchors import anchor_count
from agent.schema.decoding import KIND_TASK, AnchorOptions, DecoderSpec
from agent.schema.meta import (
    ColorOrder,
    MetadataError,
    ModelMetadata,
    Preprocess,
    Scores,
    Task,
    TensorSpec,
)
from convert.anchor_layouts import find_anchors
from convert.tflite_info import TFLiteInfo
from convert.tflite_metadata import EmbeddedMetadata

EDGETPU_OP = "edgetpu-custom-op"
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
_PASS_THROUGH = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "CONCATENATION"}


@dataclass(frozen=True)
class Options:
    """What the user said on the command line (``None``: not said)."""

    task: str | None = None
    decoder: str | None = None
    labels: tuple[str, ...] | None = None
    color: str | None = None
    resize: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    mask_size: int | None = None
    background: bool | None = None
    anchors: AnchorOptions | None = None
    anchor_table: tuple[tuple[float, float, float, float], ...] = ()
    num_keypoints: int | None = None
    scores: Scores | None = None
    values_per_point: int | None = None
    point_score_index: int | None = None


@dataclass
class Recognised:
    metadata: ModelMetadata
    reasons: list[str] = field(default_factory=list)
    edgetpu_only: bool = False
    custom_ops: tuple[str, ...] = ()


def recognise(
    info: TFLiteInfo,
    outputs: tuple[TensorSpec, ...],
    embedded: EmbeddedMetadata | None,
    embedded_labels: tuple[str, ...],
    options: Options,
) -> Recognised:
    """The metadata for this model, or an :class:`InputError` naming the option to change."""
    inputs = tuple(t.spec for t in info.inputs)
    if len(inputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs; the agent feeds exactly one")
    ops = {o.name for o in info.operator_codes}
    custom = tuple(sorted(o.name for o in info.operator_codes if o.custom))
    reasons: list[str] = []
    decoder = _decoder(info, inputs[0], outputs, ops, options, reasons)
    task = _task(decoder, outputs, info, options, reasons)
    if task in ("landmarks", "raw"):
        embedded_labels = ()  # an embedded file names another output (handedness), not points
    labels = options.labels if options.labels is not None else embedded_labels
    if options.labels is None and embedded_labels:
        reasons.append(f"labels: {len(embedded_labels)} from the model's associated label file")
    elif options.labels is not None:
        named = sum(1 for name in options.labels if name)
        reasons.append(f"labels: {named} names over class ids 0..{len(options.labels) - 1}")
    pre = _preprocess(inputs[0], embedded, options, reasons)
    scores = options.scores or _scores(info, task, decoder, outputs)
    meta = ModelMetadata(
        task=task,
        inputs=inputs,
        outputs=outputs,
        quantization="int8" if inputs[0].quantized else "float32",
        preprocess=pre,
        labels=labels,
        scores=scores,
        source=embedded.name if embedded else "",
        decoder=decoder,
    )
    _check_labels(meta, outputs)
    try:  # the agent parses it again on load: refuse now what it would refuse then
        ModelMetadata.from_json(meta.to_json())
    except MetadataError as exc:
        raise InputError(f"the options give invalid metadata: {exc}") from None
    return Recognised(meta, reasons, EDGETPU_OP in ops, custom)


def _decoder(  # noqa: PLR0917 - one step of recognise(), called once
    info: TFLiteInfo,
    spec: TensorSpec,
    outputs: tuple[TensorSpec, ...],
    ops: set[str],
    options: Options,
    reasons: list[str],
) -> DecoderSpec | None:
    kind = options.decoder or _guess_kind(outputs, ops, options.task)
    if kind is None:
        return None
    if options.task is not None and KIND_TASK[kind] != options.task:
        raise InputError(f"--decoder {kind} decodes {KIND_TASK[kind]}, not --task {options.task}")
    reasons.append(f"decoder {kind}: outputs {_shapes(outputs)}")
    d = DecoderSpec(kind)
    if kind in ("ssd_anchors", "blazeface"):
        d = _anchored(d, spec, outputs, options, reasons)
    elif kind == "ssd_postprocess" and (POSTPROCESS_OP not in ops or len(outputs) != 4):
        raise InputError(
            f"--decoder ssd_postprocess needs the 4 outputs of {POSTPROCESS_OP}; "
            f"this model has {len(outputs)} output(s): {_shapes(outputs)}"
        )
    elif kind in ("yolov5", "yolov8"):
        d = replace(d, threshold=0.25, iou_threshold=0.45)  # Ultralytics' predict defaults
    elif kind == "segmentation":
        d = replace(d, mask_size=32)
    elif kind == "landmarks":
        d = _landmarks(d, outputs)
    return _apply(d, options)


def _guess_kind(outputs: tuple[TensorSpec, ...], ops: set[str], task: str | None) -> str | None:
    shapes = [o.shape for o in outputs]
    if POSTPROCESS_OP in ops and len(outputs) == 4:
        kind: str | None = "ssd_postprocess"
    elif len(shapes) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1]:
        box = max(shapes, key=lambda s: s[2])
        kind = "ssd_anchors" if box[2] == 4 else "blazeface"
    elif len(shapes) == 1 and len(shapes[0]) == 4 and min(shapes[0][1:3]) > 1:
        kind = "segmentation"
    elif len(shapes) == 1 and len(shapes[0]) == 3 and max(shapes[0][1:]) >= 64:
        kind = "yolov8" if shapes[0][1] < shapes[0][2] else "yolov5"
    elif _looks_like_landmarks(shapes) or task == "landmarks":
        kind = "landmarks"
    else:
        kind = None
    if task is not None and (kind is None or KIND_TASK[kind] != task):
        if task in ("classification", "raw"):
            return None
        raise InputError(
            f"--task {task} does not fit this model's outputs {_shapes(outputs)}; "
            "name the decoder with --decoder ("
            + ", ".join(k for k, t in KIND_TASK.items() if t == task)
            + ")"
        )
    return kind


def _looks_like_landmarks(shapes: list[tuple[int, ...]]) -> bool:
    """A flat first output with a multiple of 3 values next to a one-value (score) output."""
    sizes = [_size(s) for s in shapes]
    flat = sum(1 for n in shapes[0] if n > 1) <= 1 if shapes else False
    return len(shapes) >= 2 and flat and sizes[0] % 3 == 0 and sizes[0] >= 15 and 1 in sizes[1:]


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _shapes(outputs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(str(list(o.shape)) for o in outputs)


def _anchored(
    d: DecoderSpec,
    spec: TensorSpec,
    outputs: tuple[TensorSpec, ...],
    options: Options,
    reasons: list[str],
) -> DecoderSpec:
    shapes = [o.shape for o in outputs]
    if len(shapes) != 2 or any(len(s) != 3 for s in shapes) or shapes[0][1] != shapes[1][1]:
        raise InputError(f"--decoder {d.kind} needs [1,N,K] and [1,N,C] outputs, got {shapes}")
    box_index = 0 if shapes[0][2] >= shapes[1][2] else 1
    n, k = shapes[box_index][1], shapes[box_index][2]
    h, w = spec.shape[1], spec.shape[2]
    if d.kind == "blazeface":
        keypoints = options.num_keypoints if options.num_keypoints is not None else (k - 4) // 2
        d = replace(
            d,
            box_format="xywh",
            box_scale=(float(h), float(w), float(h), float(w)),
            exp_size=False,
            num_keypoints=keypoints,
            score_clip=100.0,
            nms="weighted",
            iou_threshold=0.3,
            threshold=0.5,
        )
    else:
        d = replace(d, background=True, class_wise=True, iou_threshold=0.6, threshold=0.5)
    d = replace(d, box_output=box_index, score_output=1 - box_index)
    if options.anchor_table:
        if len(options.anchor_table) != n:
            raise InputError(f"--anchors has {len(options.anchor_table)} rows, the model {n}")
        return replace(d, anchor_table=options.anchor_table)
    anchors = options.anchors or find_anchors(d.kind, h, w, n)
    if anchors is None:
        raise InputError(
            f"no standard anchor layout gives {n} anchors for a {w}x{h} input; pass "
            "--anchor-strides/--anchor-scales/--aspect-ratios or --anchors FILE.npy"
        )
    if anchor_count(anchors) != n:
        raise InputError(
            f"the anchor options give {anchor_count(anchors)} anchors but the model has {n}; "
            "fix --anchor-strides/--aspect-ratios"
        )
    reasons.append(f"anchors: strides {list(anchors.strides)} give the model's {n} anchors")
    return replace(d, anchors=anchors)


def _landmarks(d: DecoderSpec, outputs: tuple[TensorSpec, ...]) -> DecoderSpec:
    """Points: the first flat output (one dimension over 1) with a multiple of 3 values;
    score: the first one-value output. Heatmaps and masks next to them are left alone."""
    flat = [i for i, o in enumerate(outputs) if sum(1 for n in o.shape if n > 1) <= 1]
    points = next(
        (i for i in flat if _size(outputs[i].shape) % 3 == 0 and _size(outputs[i].shape) >= 15),
        max(range(len(outputs)), key=lambda i: _size(outputs[i].shape)),
    )
    score = next((i for i, o in enumerate(outputs) if _size(o.shape) == 1), -1)
    return replace(d, box_output=points, score_output=score, values_per_point=3)


def _apply(d: DecoderSpec, o: Options) -> DecoderSpec:
    changes: dict[str, object] = {}
    names: tuple[str, ...] = (
        "threshold",
        "iou_threshold",
        "max_detections",
        "mask_size",
        "background",
    )
    if d.kind == "landmarks":
        names += ("values_per_point", "point_score_index")
    for name in names:
        value = getattr(o, name)
        if value is not None:
            changes[name] = value
    if o.num_keypoints is not None and d.kind == "blazeface":
        changes["num_keypoints"] = o.num_keypoints
    return replace(d, **changes)  # type: ignore[arg-type]


def _task(
    decoder: DecoderSpec | None,
    outputs: tuple[TensorSpec, ...],
    info: TFLiteInfo,
    options: Options,
    reasons: list[str],
) -> Task:
    if decoder is not None:
        return cast(Task, decoder.task)
    vector = len(outputs) == 1 and len(outputs[0].shape) == 2 and outputs[0].shape[1] > 1
    if options.task == "classification" and not vector:
        raise InputError(
            f"--task classification needs one [1, N] output; this model has {_shapes(outputs)}"
        )
    task = options.task or ("classification" if vector else "raw")
    reasons.append(f"task {task}: outputs {_shapes(outputs)}")
    return cast(Task, task)


#: Decoders whose score activation is fixed by the model family.
_FIXED_SCORES: dict[str, Scores] = {
    "blazeface": "sigmoid",  # MediaPipe detectors emit logits
    "yolov5": "probabilities",  # Ultralytics exports apply the sigmoid inside the graph
    "yolov8": "probabilities",
    "ssd_postprocess": "probabilities",  # the op applies the score converter
}


def _scores(
    info: TFLiteInfo, task: str, decoder: DecoderSpec | None, outputs: tuple[TensorSpec, ...]
) -> Scores:
    if decoder is not None and decoder.kind in _FIXED_SCORES:
        return _FIXED_SCORES[decoder.kind]
    index = 0
    if decoder is not None:
        index = decoder.box_output if decoder.kind == "segmentation" else decoder.score_output
    if not 0 <= index < len(info.output_indices):
        return "probabilities"
    if info.source_op(info.output_indices[index], _PASS_THROUGH) in ("SOFTMAX", "LOGISTIC"):
        return "probabilities"
    return "logits" if task == "classification" else "sigmoid"


def _preprocess(
    spec: TensorSpec, embedded: EmbeddedMetadata | None, o: Options, reasons: list[str]
) -> Preprocess:
    channels = spec.shape[-1] if len(spec.shape) == 4 else 1
    color = o.color or ("gray" if channels == 1 else "rgb")
    meta_in = embedded.inputs[0] if embedded and embedded.inputs else None
    if o.mean is not None or o.std is not None:
        mean, std = o.mean or (0.0,), o.std or (255.0,)
        reasons.append("normalisation: from --mean/--std")
    elif meta_in is not None and meta_in.mean and meta_in.std:
        mean, std = meta_in.mean, meta_in.std
        reasons.append(f"normalisation: mean {list(mean)} std {list(std)} from the model metadata")
    elif spec.quantized and spec.dtype == "uint8":
        # The quantized input takes raw pixels: (p - zp) * scale is what the model expects.
        mean, std = (float(spec.zero_point),), (1.0 / spec.scale,)
        reasons.append("normalisation: raw pixels into the uint8 input (its own quantization)")
    else:
        mean, std = (0.0,), (255.0,)
        reasons.append("normalisation: none known; assuming 0..1 (pass --mean/--std)")
    if meta_in is not None and meta_in.color_space == "gray" and o.color is None:
        color = "gray"
    if any(s == 0 for s in std):
        raise InputError("--std must be non-zero")
    return Preprocess(cast(ColorOrder, color), o.resize or "stretch", mean, std)  # type: ignore[arg-type]


def _check_labels(meta: ModelMetadata, outputs: tuple[TensorSpec, ...]) -> None:
    classes = _class_count(meta, outputs)
    if not meta.labels or classes is None:
        return
    if len(meta.labels) < classes:
        raise InputError(
            f"the labels cover {len(meta.labels)} class ids but the model scores {classes}; "
            "pass the model's own label file (or --background if class 0 is background)"
        )
    if len(meta.labels) > classes:
        raise InputError(
            f"the labels cover {len(meta.labels)} class ids but the model scores {classes}; "
            "pass the label file that belongs to this model"
        )


def _class_count(meta: ModelMetadata, outputs: tuple[TensorSpec, ...]) -> int | None:
    d = meta.decoder
    if meta.task == "classification":
        return outputs[0].shape[-1]
    if d is None or d.kind in ("ssd_postprocess", "landmarks"):
        return None
    if d.kind in ("ssd_anchors", "blazeface"):
        c = outputs[d.score_output].shape[-1]
        return c - 1 if d.background and c > 1 else c
    if d.kind == "segmentation":
        c = outputs[d.box_output].shape[-1]
        return c - 1 if d.background and c > 1 else c
    shape = outputs[d.box_output].shape
    values = min(shape[1:]) if len(shape) == 3 else shape[-1]
    return values - (5 if d.kind == "yolov5" else 4)
