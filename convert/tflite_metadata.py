"""The TFLite model metadata a ``.tflite`` may embed (the ``TFLITE_METADATA`` buffer), read by hand.

The buffer is a FlatBuffer with identifier ``M001`` (schema ``metadata_schema.fbs`` of TFLite
Support / MediaPipe Tasks). We read what a bundle can use: the model name, description and
version; per input tensor the image colour space and the ``NormalizationOptions`` (mean, std);
per tensor and model the associated files with their type (``TENSOR_AXIS_LABELS`` are label
files); the names of custom metadata entries. Associated files themselves are appended to the
model as a zip archive; :func:`associated_files` reads them (bounded in count and size).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from convert.tflite_info import TFLiteFormatError, _Reader

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MAX_ASSOCIATED_FILES = 64
MAX_ASSOCIATED_BYTES = 8 << 20
FILE_TYPES = (
    "UNKNOWN",
    "DESCRIPTIONS",
    "TENSOR_AXIS_LABELS",
    "TENSOR_VALUE_LABELS",
    "TENSOR_AXIS_SCORE_CALIBRATION",
    "VOCABULARY",
    "SCANN_INDEX_FILE",
)
COLOR_SPACES = ("unknown", "rgb", "gray")
_NORMALIZATION_OPTIONS = 1
_IMAGE_PROPERTIES = 2


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class TensorMeta:
    name: str
    description: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    color_space: str = ""
    files: tuple[AssociatedFile, ...] = ()


@dataclass(frozen=True)
class EmbeddedMetadata:
    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    inputs: tuple[TensorMeta, ...] = ()
    outputs: tuple[TensorMeta, ...] = ()
    files: tuple[AssociatedFile, ...] = ()
    custom: tuple[str, ...] = field(default=())

    @property
    def label_files(self) -> tuple[str, ...]:
        """Names of the ``TENSOR_AXIS_LABELS`` files, outputs first, then model-wide."""
        every = [f for t in self.outputs for f in t.files] + list(self.files)
        return tuple(dict.fromkeys(f.name for f in every if f.type == "TENSOR_AXIS_LABELS"))


def read_metadata(buffer: bytes) -> EmbeddedMetadata:
    """Parse a ``TFLITE_METADATA`` buffer. Raises :class:`TFLiteFormatError` when malformed."""
    if len(buffer) < 8 or buffer[4:8] != METADATA_IDENTIFIER:
        raise TFLiteFormatError("TFLITE_METADATA is not an M001 metadata FlatBuffer")
    r = _Reader(buffer)
    try:
        root = r.uoffset(0)
        graphs = r.tables(root, 3)
        inputs: tuple[TensorMeta, ...] = ()
        outputs: tuple[TensorMeta, ...] = ()
        custom: tuple[str, ...] = ()
        files = _files(r, root, 6)
        if graphs:
            graph = graphs[0]
            inputs = tuple(_tensor(r, t) for t in r.tables(graph, 2))
            outputs = tuple(_tensor(r, t) for t in r.tables(graph, 3))
            files += _files(r, graph, 4)
            custom = tuple(r.string(c, 0) for c in r.tables(graph, 9))
        return EmbeddedMetadata(
            name=r.string(root, 0),
            description=r.string(root, 1),
            version=r.string(root, 2),
            author=r.string(root, 4),
            inputs=inputs,
            outputs=outputs,
            files=files,
            custom=custom,
        )
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise TFLiteFormatError(f"corrupt TFLITE_METADATA: {exc}") from None


def _files(r: _Reader, table: int, index: int) -> tuple[AssociatedFile, ...]:
    out = []
    for entry in r.tables(table, index):
        code = r.scalar(entry, 2, "<b", 0)
        kind = FILE_TYPES[code] if 0 <= code < len(FILE_TYPES) else str(code)
        out.append(AssociatedFile(r.string(entry, 0), kind, r.string(entry, 1)))
    return tuple(out)


def _tensor(r: _Reader, table: int) -> TensorMeta:
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for unit in r.tables(table, 4):
        if r.scalar(unit, 0, "<B", 0) == _NORMALIZATION_OPTIONS:
            options = r.table(unit, 1)
            if options is not None:
                mean, std = r.floats(options, 0), r.floats(options, 1)
    color = ""
    content = r.table(table, 3)
    if content is not None and r.scalar(content, 0, "<B", 0) == _IMAGE_PROPERTIES:
        props = r.table(content, 1)
        if props is not None:
            code = r.scalar(props, 0, "<b", 0)
            color = COLOR_SPACES[code] if 0 <= code < len(COLOR_SPACES) else str(code)
    return TensorMeta(
        name=r.string(table, 0),
        description=r.string(table, 1),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        color_space=color,
        files=_files(r, table, 6),
    )


def associated_files(model: bytes) -> dict[str, bytes]:
    """The files zipped onto the end of the model (empty when there are none)."""
    if b"PK\x05\x06" not in model[-(1 << 16) - 22 :]:
        return {}
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ASSOCIATED_FILES:
                raise TFLiteFormatError(f"more than {MAX_ASSOCIATED_FILES} associated files")
            if sum(i.file_size for i in infos) > MAX_ASSOCIATED_BYTES:
                raise TFLiteFormatError("associated files are larger than 8 MiB")
            return {i.filename: archive.read(i) for i in infos if not i.is_dir()}
    except zipfile.BadZipFile:
        return {}  # the end-of-archive marker was a coincidence: no files
    except (
        IndexError,
        ValueError,
        KeyError,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        zlib.error,
    ) as exc:
        raise TFLiteFormatError(f"the zip of associated files is corrupt: {exc}") from None
