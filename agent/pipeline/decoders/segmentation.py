"""Segmentation masks: per-class area share and bounding box, and an optional compact mask.

The output is ``[1, H, W, C]`` (``C == 1``: a foreground score, thresholded at
``mask_threshold`` after the metadata's activation; otherwise the arg-max class per pixel).
Only the part of the mask that covers the frame counts (letterbox padding is cut away first),
so shares and boxes are fractions of the original frame. The compact mask is the class map
resampled (nearest) so that its longest side is ``mask_size``: ``bits`` (one bit per cell,
``numpy.packbits`` row-major, base64) for a binary mask, ``u8`` (one class byte per cell,
base64) otherwise. A 64-cell mask costs at most ~5.5 kB of JSON.

A ``[1, H, W, 1]`` output takes a fast path that never builds the int32 class map: one
threshold pass into a boolean foreground, its count and row/column extents, and the compact
mask sampled on an index grid cached per shape. It gives exactly what the general path gives
(``tests/byom/test_fast_decoders.py``, on the selfie segmenter's outputs for real photos);
per call on the selfie segmenter 2.59 M -> 0.34 M instructions (callgrind).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from agent.errors import InputError
from agent.pipeline.geometry import Letterbox
from agent.pipeline.postprocess import BBox, scores_to_probabilities
from agent.pipeline.tensors import dequantize
from agent.schema.decoding import DecoderSpec
from agent.schema.labels import label_of
from agent.schema.meta import TensorSpec


@dataclass(frozen=True)
class Segment:
    index: int
    label: str
    share: float
    bbox: BBox

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "label": self.label,
            "share": round(self.share, 6),
            "bbox": self.bbox.to_dict(),
        }


def class_map(array: np.ndarray, spec: TensorSpec, decoder: DecoderSpec, scores: str) -> np.ndarray:
    """``(H, W)`` class indices; a single-channel output gives 1 for foreground, else -1."""
    values = dequantize(array, spec)
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise InputError(f"segmentation output must be [1, H, W, C], got {list(array.shape)}")
    if values.shape[2] == 1:
        # foreground 1 - 1 = 0, the rest 0 - 1 = -1, in one pass and one allocation
        binary: np.ndarray = np.subtract(
            foreground(values[:, :, 0], decoder, scores), 1, dtype=np.int32
        )
        return binary
    labels: np.ndarray = np.argmax(values, axis=2).astype(np.int32)
    return labels


def foreground(scores_hw: np.ndarray, decoder: DecoderSpec, scores: str) -> np.ndarray:
    """The ``(H, W)`` boolean foreground of a single-channel output (score >= threshold)."""
    probs = scores_to_probabilities(scores_hw, scores)
    mask: np.ndarray = np.greater_equal(probs, np.float32(decoder.mask_threshold))
    return mask


def crop_to_frame(classes: np.ndarray, geometry: Letterbox | None) -> np.ndarray:
    if geometry is None:
        return classes
    h, w = classes.shape
    x0, y0, x1, y1 = geometry.valid_region()
    sx, sy = w / geometry.dst_w, h / geometry.dst_h
    cx0, cy0 = int(x0 * sx), int(y0 * sy)
    cx1, cy1 = max(cx0 + 1, round(x1 * sx)), max(cy0 + 1, round(y1 * sy))
    return classes[cy0:cy1, cx0:cx1]


def segments(classes: np.ndarray, labels: Sequence[str], background: bool) -> list[Segment]:
    h, w = classes.shape
    total = float(h * w)
    counts = np.bincount((classes + 1).ravel())  # index 0 counts the -1 "nothing" cells
    found = []
    for value in np.flatnonzero(counts[1:]):
        c = int(value)
        if background and c == 0:
            continue
        cells = classes == c
        rows = np.flatnonzero(cells.any(axis=1))
        cols = np.flatnonzero(cells.any(axis=0))
        box = BBox(cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)
        found.append(Segment(c, label_of(tuple(labels), c), float(counts[c + 1]) / total, box))
    found.sort(key=lambda s: -s.share)
    return found


def foreground_segments(mask: np.ndarray, labels: Sequence[str], background: bool) -> list[Segment]:
    """:func:`segments` of a binary class map, from its boolean foreground (class 0)."""
    cells = int(np.count_nonzero(mask))
    if background or cells == 0:
        return []
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = BBox(cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h)
    return [Segment(0, label_of(tuple(labels), 0), cells / float(h * w), box)]


@lru_cache(maxsize=16)
def _sample_grid(h: int, w: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour ``(rows[:, None], cols[None, :])`` picking the compact mask's cells
    (built once per shape: the crop of a model's output keeps its shape frame after frame)."""
    scale = size / max(h, w)
    mh, mw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum(((np.arange(mh) + 0.5) * h / mh).astype(int), h - 1)
    cols = np.minimum(((np.arange(mw) + 0.5) * w / mw).astype(int), w - 1)
    grid: tuple[np.ndarray, np.ndarray] = np.ix_(rows, cols)
    for index in grid:
        index.flags.writeable = False
    return grid


def compact_mask(classes: np.ndarray, size: int) -> dict[str, Any]:
    small = classes[_sample_grid(*classes.shape, size)]
    if small.max() <= 0:
        return _mask_body(small.shape, np.packbits((small == 0).reshape(-1)).tobytes(), "bits")
    data = np.clip(small + 1, 0, 255).astype(np.uint8).tobytes()
    return _mask_body(small.shape, data, "u8")


def compact_foreground(mask: np.ndarray, size: int) -> dict[str, Any]:
    """:func:`compact_mask` of a binary class map, from its boolean foreground."""
    small = mask[_sample_grid(*mask.shape, size)]
    return _mask_body(small.shape, np.packbits(small.reshape(-1)).tobytes(), "bits")


def _mask_body(shape: tuple[int, ...], data: bytes, encoding: str) -> dict[str, Any]:
    return {
        "width": shape[1],
        "height": shape[0],
        "encoding": encoding,
        "data": base64.b64encode(data).decode("ascii"),
    }


def decode_segmentation(
    outputs: Sequence[np.ndarray],
    specs: Sequence[TensorSpec],
    spec: DecoderSpec,
    *,
    labels: Sequence[str],
    scores: str,
    geometry: Letterbox | None,
) -> dict[str, Any]:
    index = spec.box_output
    values = outputs[index]
    if values.ndim == 4 and values.shape[0] == 1 and values.shape[3] == 1:
        # Binary: work on the boolean foreground, never building the int32 class map.
        mask = foreground(dequantize(values[0, :, :, 0], specs[index]), spec, scores)
        mask = crop_to_frame(mask, geometry)
        found = foreground_segments(mask, labels, spec.background)
        body: dict[str, Any] = {"segments": [s.to_dict() for s in found]}
        if spec.mask_size:
            body["mask"] = compact_foreground(mask, spec.mask_size)
        return body
    classes = crop_to_frame(class_map(values, specs[index], spec, scores), geometry)
    body = {"segments": [s.to_dict() for s in segments(classes, labels, spec.background)]}
    if spec.mask_size:
        body["mask"] = compact_mask(classes, spec.mask_size)
    return body
