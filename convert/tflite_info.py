"""Read what a ``.tflite`` file declares, from its bytes, with no TensorFlow and no schema package.

A TFLite model is a FlatBuffer (schema ``tensorflow/compiler/mlir/lite/schema/schema.fbs``). This
module walks the few tables we need with a minimal, bounds-checked reader: operator codes (builtin
name and version), the metadata entries (for example ``min_runtime_version``), and the main
subgraph's input and output tensors with their quantization. Both the converter (for its report)
and the device (to check a model before loading it) use it.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass

from agent.errors import InputError
from agent.schema.meta import TensorSpec

FILE_IDENTIFIER = b"TFL3"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_BUILTIN_NAMES = _words(
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB "
    "DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP "
    "TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX "
    "MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV "
    "SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN "
    "FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK "
    "REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE "
    "RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL "
    "REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE "
    "MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 "
    "SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES "
    "CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE "
    "HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE "
    "READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE "
    "RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD "
    "UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST "
    "BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE "
    "STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP "
    "STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE "
    "STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE "
    "STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE "
    "STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT "
    "STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT "
    "STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA "
    "STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE "
    "STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW "
    "STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE "
)
_TENSOR_TYPES = _words(
    "float32 float16 int32 uint8 int64 string bool int16 complex64 int8 float64 complex128 "
    "uint64 resource variant uint32 uint16 int4 bfloat16 int2 uint4 float8_e4m3fn float8_e5m2"
)

# Field indices in the TFLite schema tables we read.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS, _MODEL_METADATA = 1, 2, 4, 6
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_VERSION, _OPCODE_BUILTIN = 0, 1, 2, 3
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS = 0, 1, 2, 3
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_QUANT, _TENSOR_SHAPE_SIGNATURE = 0, 1, 3, 4, 7
_TENSOR_BUFFER, _TENSOR_SPARSITY = 2, 6
_QUANT_SCALE, _QUANT_ZERO_POINT = 2, 3
_OPERATOR_OPCODE, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 0, 1, 2
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


class TFLiteFormatError(InputError, ValueError):
    """The bytes are not a well-formed TFLite FlatBuffer; the message says what is wrong."""


@dataclass(frozen=True)
class OperatorCode:
    """One entry of the model's operator table: builtin name (or custom code) and version."""

    name: str
    version: int
    custom: bool = False


@dataclass(frozen=True)
class TensorInfo:
    """A subgraph tensor. ``shape_signature`` keeps ``-1`` for dynamic dimensions."""

    spec: TensorSpec
    shape_signature: tuple[int, ...]
    per_channel: bool = False


@dataclass(frozen=True)
class Operator:
    """One operator of the main subgraph, in execution order."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class WeightTensor:
    """A constant filter of a CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED or TRANSPOSE_CONV op.

    ``data`` is the stored buffer: for a tensor in the TFLite sparse format (``sparse``) only the
    kept values, so ``stored_elements`` can be smaller than the dense ``shape`` holds.
    """

    name: str
    op: str
    shape: tuple[int, ...]
    dtype: str
    data: bytes
    sparse: bool

    @property
    def dense_elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}
_UNPACK_OPS = ("DENSIFY", "DEQUANTIZE")


@dataclass(frozen=True)
class TFLiteInfo:
    operator_codes: tuple[OperatorCode, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    output_indices: tuple[int, ...]
    metadata: dict[str, bytes]

    @property
    def min_runtime_version(self) -> str:
        """The runtime version the converter says this file needs, or ``""`` if it says nothing."""
        raw = self.metadata.get("min_runtime_version", b"")
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")

    @property
    def has_dynamic_shapes(self) -> bool:
        return any(-1 in t.shape_signature for t in self.inputs + self.outputs)

    def producer_of(self, tensor: int) -> Operator | None:
        """The operator that writes ``tensor``, or ``None`` for a model input or constant."""
        for op in self.operators:
            if tensor in op.outputs:
                return op
        return None

    def source_op(self, tensor: int, through: Collection[str]) -> str:
        """The op that computes ``tensor``, looking through the ops named in ``through`` (e.g.
        quantize and reshapes) to their first input; ``""`` for an input or constant."""
        for _ in range(len(self.operators)):
            op = self.producer_of(tensor)
            if op is None:
                return ""
            if op.name not in through or not op.inputs:
                return op.name
            tensor = op.inputs[0]
        return ""


def read_tflite(data: bytes) -> TFLiteInfo:
    """Parse the parts of a TFLite model the project needs. Raises :class:`TFLiteFormatError`."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TFLiteFormatError("not a TFLite model (missing the TFL3 file identifier)")
    try:
        return _read_model(_Reader(data))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise TFLiteFormatError(f"corrupt TFLite model: {exc}") from None


def read_weights(data: bytes) -> tuple[WeightTensor, ...]:
    """The constant filters of the main subgraph's weight ops, looking through DENSIFY/DEQUANTIZE.

    Raises :class:`TFLiteFormatError` on a malformed file.
    """
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TFLiteFormatError("not a TFLite model (missing the TFL3 file identifier)")
    try:
        return _read_weights(_Reader(data))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise TFLiteFormatError(f"corrupt TFLite model: {exc}") from None


def _read_weights(r: _Reader) -> tuple[WeightTensor, ...]:
    root = r.uoffset(0)
    codes = tuple(_operator_code(r, t) for t in r.tables(root, _MODEL_OPERATOR_CODES))
    subgraphs = r.tables(root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise TFLiteFormatError("TFLite model has no subgraph")
    tensors = r.tables(subgraphs[0], _SUBGRAPH_TENSORS)
    operators = tuple(_operator(r, t, codes) for t in r.tables(subgraphs[0], _SUBGRAPH_OPERATORS))
    producers = {out: op for op in operators for out in op.outputs}
    buffers = r.tables(root, _MODEL_BUFFERS)
    found: dict[int, WeightTensor] = {}
    for op in operators:
        slot = _WEIGHT_OPS.get(op.name)
        if slot is None or len(op.inputs) <= slot or op.inputs[slot] < 0:
            continue
        index = op.inputs[slot]
        while index in producers and producers[index].name in _UNPACK_OPS:
            index = producers[index].inputs[0]
        if index in found or index >= len(tensors) or index in producers:
            continue
        table = tensors[index]
        buffer = r.scalar(table, _TENSOR_BUFFER, "<I", 0)
        if buffer >= len(buffers):
            raise TFLiteFormatError(f"tensor {index} points at missing buffer {buffer}")
        info = _tensor(r, table)
        found[index] = WeightTensor(
            name=info.spec.name,
            op=op.name,
            shape=info.spec.shape,
            dtype=info.spec.dtype,
            data=r.buffer_data(buffers[buffer]),
            sparse=r.table(table, _TENSOR_SPARSITY) is not None,
        )
    return tuple(found.values())


def _read_model(r: _Reader) -> TFLiteInfo:
    root = r.uoffset(0)
    codes = tuple(_operator_code(r, t) for t in r.tables(root, _MODEL_OPERATOR_CODES))
    subgraphs = r.tables(root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise TFLiteFormatError("TFLite model has no subgraph")
    graph = subgraphs[0]
    tensors = r.tables(graph, _SUBGRAPH_TENSORS)
    inputs = r.ints(graph, _SUBGRAPH_INPUTS)
    outputs = r.ints(graph, _SUBGRAPH_OUTPUTS)
    operators = tuple(_operator(r, t, codes) for t in r.tables(graph, _SUBGRAPH_OPERATORS))
    buffers = r.tables(root, _MODEL_BUFFERS)
    metadata = {}
    for entry in r.tables(root, _MODEL_METADATA):
        name = r.string(entry, _METADATA_NAME)
        index = r.scalar(entry, _METADATA_BUFFER, "<I", 0)
        if index >= len(buffers):
            raise TFLiteFormatError(f"metadata {name!r} points at missing buffer {index}")
        metadata[name] = r.bytes_vector(buffers[index], _BUFFER_DATA)
    return TFLiteInfo(
        operator_codes=codes,
        operators=operators,
        inputs=tuple(_tensor(r, tensors[i]) for i in inputs),
        outputs=tuple(_tensor(r, tensors[i]) for i in outputs),
        output_indices=outputs,
        metadata=metadata,
    )


def _operator_code(r: _Reader, table: int) -> OperatorCode:
    version = r.scalar(table, _OPCODE_VERSION, "<i", 1)
    custom = r.string(table, _OPCODE_CUSTOM)
    if custom:
        return OperatorCode(custom, version, custom=True)
    # Codes above 127 live in ``builtin_code``; old files only fill the deprecated byte.
    code = max(
        r.scalar(table, _OPCODE_DEPRECATED_BUILTIN, "<b", 0),
        r.scalar(table, _OPCODE_BUILTIN, "<i", 0),
    )
    name = _BUILTIN_NAMES[code] if 0 <= code < len(_BUILTIN_NAMES) else f"BUILTIN_{code}"
    return OperatorCode(name, version)


def _operator(r: _Reader, table: int, codes: tuple[OperatorCode, ...]) -> Operator:
    index = r.scalar(table, _OPERATOR_OPCODE, "<I", 0)
    if index >= len(codes):
        raise TFLiteFormatError(f"operator uses missing opcode {index}")
    return Operator(
        codes[index].name, r.ints(table, _OPERATOR_INPUTS), r.ints(table, _OPERATOR_OUTPUTS)
    )


def _tensor(r: _Reader, table: int) -> TensorInfo:
    shape = r.ints(table, _TENSOR_SHAPE)
    signature = r.ints(table, _TENSOR_SHAPE_SIGNATURE) or shape
    type_code = r.scalar(table, _TENSOR_TYPE, "<b", 0)
    dtype = _TENSOR_TYPES[type_code] if 0 <= type_code < len(_TENSOR_TYPES) else str(type_code)
    scale, zero_point, per_channel = 0.0, 0, False
    quant = r.table(table, _TENSOR_QUANT)
    if quant is not None:
        scales = r.floats(quant, _QUANT_SCALE)
        zero_points = r.longs(quant, _QUANT_ZERO_POINT)
        per_channel = len(scales) > 1
        if len(scales) == 1:
            scale = scales[0]
            zero_point = zero_points[0] if zero_points else 0
    spec = TensorSpec(r.string(table, _TENSOR_NAME), shape, dtype, scale, zero_point)
    return TensorInfo(spec, signature, per_channel)


class _Reader:
    """Bounds-checked access to FlatBuffer tables (``struct`` raises on any out-of-range read)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def uoffset(self, pos: int) -> int:
        value: int = struct.unpack_from("<I", self._data, pos)[0]
        return pos + value

    def _field(self, table: int, index: int) -> int:
        vtable = table - struct.unpack_from("<i", self._data, table)[0]
        vtable_size = struct.unpack_from("<H", self._data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return 0
        offset: int = struct.unpack_from("<H", self._data, vtable + slot)[0]
        return offset

    def scalar(self, table: int, index: int, fmt: str, default: int) -> int:
        offset = self._field(table, index)
        if not offset:
            return default
        value: int = struct.unpack_from(fmt, self._data, table + offset)[0]
        return value

    def table(self, table: int, index: int) -> int | None:
        offset = self._field(table, index)
        return self.uoffset(table + offset) if offset else None

    def _vector(self, table: int, index: int) -> tuple[int, int]:
        offset = self._field(table, index)
        if not offset:
            return 0, 0
        start = self.uoffset(table + offset)
        length: int = struct.unpack_from("<I", self._data, start)[0]
        if start + 4 + length > len(self._data):
            raise TFLiteFormatError("vector runs past the end of the model")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self._vector(table, index)
        return [self.uoffset(start + 4 * i) for i in range(length)]

    def _numbers(self, table: int, index: int, code: str, width: int) -> tuple[float, ...]:
        start, length = self._vector(table, index)
        return struct.unpack_from(f"<{length}{code}", self._data, start) if length else ()

    def ints(self, table: int, index: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self._numbers(table, index, "i", 4))

    def longs(self, table: int, index: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self._numbers(table, index, "q", 8))

    def floats(self, table: int, index: int) -> tuple[float, ...]:
        return self._numbers(table, index, "f", 4)

    def bytes_vector(self, table: int, index: int) -> bytes:
        start, length = self._vector(table, index)
        return self._data[start : start + length]

    def buffer_data(self, table: int) -> bytes:
        """A buffer's bytes: inline, or at ``offset``/``size`` from the file start (big models)."""
        inline = self.bytes_vector(table, _BUFFER_DATA)
        offset = self.scalar(table, _BUFFER_OFFSET, "<Q", 0)
        if inline or offset <= 1:
            return inline
        size = self.scalar(table, _BUFFER_SIZE, "<Q", 0)
        if offset + size > len(self._data):
            raise TFLiteFormatError("buffer runs past the end of the model")
        return self._data[offset : offset + size]

    def string(self, table: int, index: int) -> str:
        return self.bytes_vector(table, index).decode("utf-8")
