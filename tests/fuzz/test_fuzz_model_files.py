"""Fuzzing the parsers of third-party model files: label files, the ``TFLITE_METADATA`` buffer,
appended associated files, and metadata with a decoder. Only documented errors come out."""

from __future__ import annotations

import io
import zipfile

from hypothesis import given
from hypothesis import strategies as st

from agent.schema.decoding import AnchorOptions, DecoderSpec
from agent.schema.labels import LabelError, parse_labels
from agent.schema.meta import MetadataError, ModelMetadata, TensorSpec
from convert.tflite_info import TFLiteFormatError
from convert.tflite_metadata import associated_files, read_metadata
from tests.support.fuzz import check_parser, fuzz_settings, json_bytes, outside_bytes

LABELS = [b"0  person\n1  bicycle\n3  car\n", b'item { id: 1 display_name: "cat" }\n', b"a\nb\n"]
DETECTOR = ModelMetadata(
    task="detection",
    inputs=(TensorSpec("input", (1, 128, 128, 3), "float32"),),
    outputs=(TensorSpec("r", (1, 896, 16), "float32"), TensorSpec("s", (1, 896, 1), "float32")),
    decoder=DecoderSpec(
        "blazeface", num_keypoints=6, anchors=AnchorOptions(4, 128, 128, (8, 16, 16, 16))
    ),
)


def _zip_model() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("labels.txt", "person\n")
    return b"\x18\x00\x00\x00TFL3" + bytes(64) + out.getvalue()


@fuzz_settings
@given(outside_bytes(LABELS, max_size=2048))
def test_label_files_only_raise_label_error(data: bytes) -> None:
    check_parser(lambda b: parse_labels(b.decode("utf-8", "replace")), data, (LabelError,))


@fuzz_settings
@given(outside_bytes([b"\x10\x00\x00\x00M001" + bytes(24)], max_size=2048))
def test_tflite_metadata_buffer_only_raises_format_error(data: bytes) -> None:
    check_parser(read_metadata, data, (TFLiteFormatError,))


@fuzz_settings
@given(outside_bytes([_zip_model()], max_size=4096))
def test_associated_files_only_raise_format_error(data: bytes) -> None:
    check_parser(associated_files, data, (TFLiteFormatError,))


@fuzz_settings
@given(outside_bytes([DETECTOR.to_json()]) | json_bytes(DETECTOR.to_dict()) | st.just(b"{}"))
def test_metadata_with_a_decoder_only_raises_metadata_error(data: bytes) -> None:
    check_parser(ModelMetadata.from_json, data, (MetadataError,))


def test_the_zip_seed_is_read_as_associated_files() -> None:
    assert associated_files(_zip_model()) == {"labels.txt": b"person\n"}
