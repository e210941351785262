"""SSD anchors from the standard options (pure numpy).

The algorithm is MediaPipe's ``SsdAnchorsCalculator`` (non multi-scale), which is also the
anchor layout of TF Object Detection's ``ssd_anchor_generator`` used by MobileNet SSD: layers
with the same stride are merged, the lowest layer can use the reduced (1, 2, 0.5) box set, an
interpolated anchor between two scales is added per layer, and ``fixed_anchor_size`` (BlazeFace
and the other MediaPipe detectors) gives every anchor ``w = h = 1`` so only the centre matters.
"""

from __future__ import annotations

import math

import numpy as np

from agent.errors import InputError
from agent.schema.decoding import MAX_ANCHORS, AnchorOptions


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def _layer_boxes(o: AnchorOptions, first: int, last: int) -> list[tuple[float, float]]:
    """``(h, w)`` of every anchor of the merged layers ``first..last-1`` (same stride)."""
    ratios: list[float] = []
    scales: list[float] = []
    n = len(o.strides)
    for layer in range(first, last):
        scale = _scale(o.min_scale, o.max_scale, layer, n)
        if layer == 0 and o.reduce_boxes_in_lowest_layer:
            ratios += [1.0, 2.0, 0.5]
            scales += [0.1, scale, scale]
            continue
        ratios += list(o.aspect_ratios)
        scales += [scale] * len(o.aspect_ratios)
        if o.interpolated_scale_aspect_ratio > 0.0:
            following = 1.0 if layer == n - 1 else _scale(o.min_scale, o.max_scale, layer + 1, n)
            scales.append(math.sqrt(scale * following))
            ratios.append(o.interpolated_scale_aspect_ratio)
    return [(s / math.sqrt(r), s * math.sqrt(r)) for s, r in zip(scales, ratios, strict=True)]


def anchor_count(o: AnchorOptions) -> int:
    """How many anchors :func:`generate_anchors` would produce (cheap, for recognition)."""
    total, layer = 0, 0
    while layer < o.num_layers:
        last = layer
        while last < len(o.strides) and o.strides[last] == o.strides[layer]:
            last += 1
        per_cell = len(_layer_boxes(o, layer, last))
        stride = o.strides[layer]
        cells = math.ceil(o.input_size_height / stride) * math.ceil(o.input_size_width / stride)
        total += per_cell * cells
        layer = last
    return total


def generate_anchors(o: AnchorOptions) -> np.ndarray:
    """``(N, 4)`` float32 anchors ``[y_center, x_center, h, w]``, normalised to the input."""
    if anchor_count(o) > MAX_ANCHORS:
        raise InputError(f"anchor options give more than {MAX_ANCHORS} anchors")
    parts = []
    layer = 0
    while layer < o.num_layers:
        last = layer
        while last < len(o.strides) and o.strides[last] == o.strides[layer]:
            last += 1
        boxes = np.asarray(_layer_boxes(o, layer, last), dtype=np.float64)
        if o.fixed_anchor_size:
            boxes = np.ones_like(boxes)
        stride = o.strides[layer]
        fh = math.ceil(o.input_size_height / stride)
        fw = math.ceil(o.input_size_width / stride)
        ys = (np.arange(fh) + o.anchor_offset_y) / fh
        xs = (np.arange(fw) + o.anchor_offset_x) / fw
        yc, xc = np.meshgrid(ys, xs, indexing="ij")
        k = boxes.shape[0]
        centres = np.stack([yc.ravel(), xc.ravel()], axis=1).repeat(k, axis=0)
        sizes = np.tile(boxes, (fh * fw, 1))
        parts.append(np.concatenate([centres, sizes], axis=1))
        layer = last
    return np.concatenate(parts).astype(np.float32)
