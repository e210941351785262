"""The decoders' fast paths give exactly what the general code gives, on real models' outputs.

The binary segmentation path works on a boolean foreground instead of an int32 class map; the
general path (``class_map`` -> ``crop_to_frame`` -> ``segments`` / ``compact_mask``) is the
oracle, run on the selfie segmenter's own outputs for real photos through both resize modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from agent.pipeline.decoders.segmentation import (
    class_map,
    compact_mask,
    crop_to_frame,
    decode_segmentation,
    segments,
)
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import detect_postprocessed, make_detection
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from agent.schema.decoding import DecoderSpec
from agent.schema.meta import ModelMetadata, TensorSpec
from convert.describe import inspect_model, recognise_model
from convert.recognise import Options

Models = Callable[[str], Path]
PHOTOS = ("astronaut", "chelsea", "coffee", "camera")


def general(
    outputs: list[np.ndarray],
    specs: tuple[TensorSpec, ...],
    spec: DecoderSpec,
    meta: ModelMetadata,
    geometry: Letterbox | None,
) -> dict[str, Any]:
    index = spec.box_output
    classes = crop_to_frame(class_map(outputs[index], specs[index], spec, meta.scores), geometry)
    body: dict[str, Any] = {
        "segments": [s.to_dict() for s in segments(classes, meta.labels, spec.background)]
    }
    if spec.mask_size:
        body["mask"] = compact_mask(classes, spec.mask_size)
    return body


def frame(name: str) -> np.ndarray:
    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=2)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_binary_segmentation_fast_path_equals_the_class_map_path_on_real_frames(
    thirdparty_models: Models, resize: str
) -> None:
    raw = thirdparty_models("selfie").read_bytes()
    meta = recognise_model(inspect_model(raw), Options(labels=("person",), resize=resize)).metadata
    assert meta.decoder is not None
    model = open_model(raw, threads=2)
    compared = 0
    for name in PHOTOS:
        tensor, geometry = Preprocessor(meta)(frame(name))
        outputs = model.invoke([tensor])
        for threshold in (0.1, 0.5, 0.9, 1.01):
            for mask_size, background in ((32, False), (7, False), (0, False), (32, True)):
                spec = replace(
                    meta.decoder,
                    mask_threshold=threshold,
                    mask_size=mask_size,
                    background=background,
                )
                fast = decode_segmentation(
                    outputs,
                    model.outputs,
                    spec,
                    labels=meta.labels,
                    scores=meta.scores,
                    geometry=geometry,
                )
                assert fast == general(outputs, model.outputs, spec, meta, geometry)
                compared += bool(fast["segments"])
    model.close()
    assert compared > 0  # some frames had a foreground to compare


@pytest.mark.parametrize("scores", ["sigmoid", "probabilities"])
def test_binary_fast_path_equals_the_class_map_path_for_quantized_outputs(scores: str) -> None:
    rng = np.random.default_rng(7)
    output = rng.integers(0, 256, (1, 96, 128, 1), dtype=np.uint8)
    tensor = TensorSpec("mask", (1, 96, 128, 1), "uint8", scale=0.02, zero_point=128)
    geometry = Letterbox(src_w=640, src_h=360, dst_w=128, dst_h=96, scale_x=0.2, scale_y=0.2,
                         pad_x=0, pad_y=12)  # fmt: skip
    spec = DecoderSpec("segmentation", mask_size=16, mask_threshold=0.55)
    fast = decode_segmentation(
        [output], (tensor,), spec, labels=("thing",), scores=scores, geometry=geometry
    )
    classes = crop_to_frame(class_map(output, tensor, spec, scores), geometry)
    assert fast["segments"] == [s.to_dict() for s in segments(classes, ("thing",), False)]
    assert fast["segments"]
    assert fast["mask"] == compact_mask(classes, 16)


def test_ssd_postprocess_reading_equals_an_element_by_element_reading_on_real_frames(
    thirdparty_models: Models,
) -> None:
    raw = thirdparty_models("coco_ssd").read_bytes()
    meta = recognise_model(inspect_model(raw), Options(resize="letterbox")).metadata
    model = open_model(raw, threads=2)
    specs = model.outputs
    for name in PHOTOS:
        tensor, geometry = Preprocessor(meta)(frame(name))
        outputs = model.invoke([tensor])
        boxes, classes, scores, count = (o.reshape(-1) for o in outputs)
        for threshold in (0.0, 0.3, 0.5, float(scores[3])):
            expected = [
                make_detection(
                    boxes.reshape(-1, 4)[i],
                    int(classes[i]),
                    float(scores[i]),
                    meta.labels,
                    geometry,
                )
                for i in range(int(count[0]))
                if scores[i] >= threshold  # numpy's own float32 comparison
            ]
            found = detect_postprocessed(
                outputs, specs, meta.labels, threshold=threshold, geometry=geometry
            )
            assert found == expected
    model.close()
