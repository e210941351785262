"""The ``decoder`` part of the model metadata: round trip, defaults omitted, exact errors."""

from __future__ import annotations

import pytest

from agent.schema.decoding import AnchorOptions, DecoderSpec
from agent.schema.meta import MetadataError, ModelMetadata, TensorSpec

SPEC = (TensorSpec("x", (1, 128, 128, 3), "float32"),)
OUT = (TensorSpec("r", (1, 896, 16), "float32"), TensorSpec("s", (1, 896, 1), "float32"))


def _meta(**fields: object) -> ModelMetadata:
    return ModelMetadata("detection", SPEC, OUT, **fields)  # type: ignore[arg-type]


def test_decoder_round_trips_and_only_non_defaults_are_written() -> None:
    anchors = AnchorOptions(4, 128, 128, (8, 16, 16, 16), fixed_anchor_size=True)
    meta = _meta(decoder=DecoderSpec("blazeface", num_keypoints=6, anchors=anchors))
    written = meta.to_dict()["decoder"]
    assert set(written) == {"kind", "num_keypoints", "anchors"}
    assert ModelMetadata.from_json(meta.to_json()) == meta


def test_metadata_without_decoder_is_byte_identical_to_the_old_schema() -> None:
    assert "decoder" not in _meta().to_dict()


def test_unknown_decoder_key_and_bad_kind_are_named() -> None:
    base = _meta().to_dict()
    with pytest.raises(MetadataError, match=r"metadata\.decoder: unknown key 'anchor'"):
        ModelMetadata.from_dict(base | {"decoder": {"kind": "ssd_anchors", "anchor": 1}})
    with pytest.raises(MetadataError, match=r"metadata\.decoder\.kind must be one of"):
        ModelMetadata.from_dict(base | {"decoder": {"kind": "retina"}})


def test_anchor_decoder_without_anchors_is_refused() -> None:
    with pytest.raises(MetadataError, match="needs anchors"):
        ModelMetadata.from_dict(_meta().to_dict() | {"decoder": {"kind": "blazeface"}})


def test_decoder_kind_must_match_the_task() -> None:
    raw = _meta().to_dict() | {"task": "segmentation", "decoder": {"kind": "yolov8"}}
    with pytest.raises(MetadataError, match="decodes detection, but task is segmentation"):
        ModelMetadata.from_dict(raw)


def test_anchor_layer_count_must_equal_the_strides() -> None:
    bad = {"num_layers": 3, "input_size_height": 8, "input_size_width": 8, "strides": [8]}
    raw = _meta().to_dict() | {"decoder": {"kind": "ssd_anchors", "anchors": bad}}
    with pytest.raises(MetadataError, match="num_layers must equal the number of strides"):
        ModelMetadata.from_dict(raw)


def test_segmentation_task_needs_a_decoder() -> None:
    with pytest.raises(MetadataError, match=r"metadata\.decoder is required for task segmentation"):
        ModelMetadata.from_dict(_meta().to_dict() | {"task": "segmentation"})


def test_decoder_sits_beside_an_audio_rate_and_chain_stages_and_all_three_round_trip() -> None:
    stages = [
        {"name": "mel", "file": "stage_1.tflite", "window": 1760, "hop": 1280},
        {"name": "det", "file": "model.tflite", "window": 16, "hop": 1},
    ]
    decoder = {"kind": "yolov8"}
    raw = _meta().to_dict() | {"decoder": decoder, "sample_rate": 16000, "stages": stages}
    meta = ModelMetadata.from_dict(raw)
    assert (meta.decoder, meta.sample_rate) == (DecoderSpec("yolov8"), 16000)
    assert [s.name for s in meta.stages] == ["mel", "det"]
    written = meta.to_dict()
    assert (written["decoder"], written["sample_rate"], len(written["stages"])) == (
        decoder,
        16000,
        2,
    )
    assert ModelMetadata.from_json(meta.to_json()) == meta
