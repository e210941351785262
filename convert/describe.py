"""What a ``.tflite`` is, for ``edge-convert describe`` and ``bundle`` (LiteRT for the shapes).

:func:`inspect_model` reads the file (:mod:`convert.tflite_info`), its embedded metadata and
associated files (:mod:`convert.tflite_metadata`), allocates it with the real LiteRT interpreter
(custom-op output shapes, ``TFLite_Detection_PostProcess``'s for one, exist only after
``allocate_tensors``), and recognises the task (:mod:`convert.recognise`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agent.errors import InputError
from agent.runtime.model import EDGETPU_HINT, tensor_spec
from agent.schema.labels import LabelError, parse_labels
from agent.schema.meta import TensorSpec
from convert.recognise import EDGETPU_OP, Options, Recognised, recognise
from convert.tflite_info import TFLiteFormatError, TFLiteInfo, read_tflite
from convert.tflite_metadata import (
    METADATA_NAME,
    EmbeddedMetadata,
    associated_files,
    read_metadata,
)


@dataclass
class ModelFacts:
    info: TFLiteInfo
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    allocated: bool
    allocation_error: str
    embedded: EmbeddedMetadata | None
    files: dict[str, bytes]
    embedded_labels: tuple[str, ...]


def allocate(data: bytes) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output specs after ``allocate_tensors`` (raises RuntimeError/ValueError)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=1)
    interp.allocate_tensors()
    return (
        tuple(tensor_spec(d) for d in interp.get_input_details()),
        tuple(tensor_spec(d) for d in interp.get_output_details()),
    )


def inspect_model(data: bytes, name: str = "model") -> ModelFacts:
    try:
        info = read_tflite(data)
    except TFLiteFormatError as exc:
        raise InputError(f"{name}: {exc}") from None
    embedded = None
    if METADATA_NAME in info.metadata:
        try:
            embedded = read_metadata(info.metadata[METADATA_NAME])
        except TFLiteFormatError as exc:
            raise InputError(f"{name}: {exc}") from None
    try:
        files = associated_files(data)
    except TFLiteFormatError as exc:
        raise InputError(f"{name}: {exc}") from None
    labels: tuple[str, ...] = ()
    if embedded is not None:
        for label_file in embedded.label_files:
            if label_file in files:
                try:
                    labels = parse_labels(files[label_file].decode("utf-8", "replace"))
                except LabelError as exc:
                    raise InputError(f"{name}: embedded {label_file}: {exc}") from None
                break
    try:
        inputs, outputs = allocate(data)
        allocated, error = True, ""
    except (RuntimeError, ValueError) as exc:
        inputs = tuple(t.spec for t in info.inputs)
        outputs = tuple(t.spec for t in info.outputs)
        allocated, error = False, str(exc).splitlines()[0]
    return ModelFacts(info, inputs, outputs, allocated, error, embedded, files, labels)


def recognise_model(facts: ModelFacts, options: Options) -> Recognised:
    return recognise(facts.info, facts.outputs, facts.embedded, facts.embedded_labels, options)


def describe(facts: ModelFacts, recognised: Recognised | None, problem: str = "") -> dict[str, Any]:
    """The JSON form of ``edge-convert describe``."""
    info = facts.info
    custom = sorted({o.name for o in info.operator_codes if o.custom})
    counts: dict[str, int] = {}
    for op in info.operators:
        counts[op.name] = counts.get(op.name, 0) + 1
    out: dict[str, Any] = {
        "inputs": [
            _tensor(s, t.per_channel) for s, t in zip(facts.inputs, info.inputs, strict=False)
        ],
        "outputs": [_tensor(s, False) for s in facts.outputs],
        "allocated": facts.allocated,
        "operators": [{"name": k, "count": v} for k, v in sorted(counts.items())],
        "custom_ops": custom,
        "edgetpu": EDGETPU_OP in custom,
        "min_runtime_version": info.min_runtime_version,
        "embedded_metadata": None if facts.embedded is None else asdict(facts.embedded),
        "associated_files": sorted(facts.files),
    }
    if not facts.allocated:
        out["allocation_error"] = facts.allocation_error
        if EDGETPU_OP in custom:
            out["hint"] = EDGETPU_HINT
    if recognised is not None:
        out["task"] = recognised.metadata.task
        out["reasons"] = recognised.reasons
        out["metadata"] = recognised.metadata.to_dict()
    else:
        out["task"] = None
        out["problem"] = problem
    return out


def _tensor(spec: TensorSpec, per_channel: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": spec.name,
        "shape": list(spec.shape),
        "dtype": spec.dtype,
        "scale": spec.scale,
        "zero_point": spec.zero_point,
    }
    if per_channel:
        out["per_channel"] = True
    return out
