"""Standard anchor layouts tried when a model ships raw box outputs without anchors (pure).

Each candidate is a full :class:`~agent.schema.decoding.AnchorOptions`; the first whose anchor
count equals the model's box count is taken. The lists are the published defaults of the model
families, not of particular files: TF Object Detection's MobileNet SSD layout (also MediaPipe's
``ssd_anchors_calculator`` test config) and the fixed-size layouts of MediaPipe's single-shot
detectors. Users with another layout pass the options or the anchors themselves.
"""

from __future__ import annotations

from typing import cast

from agent.pipeline.decoders.anchors import anchor_count
from agent.schema.decoding import AnchorOptions

#: Anchor layouts tried for raw SSDs (TF Object Detection MobileNet SSD, MediaPipe's options).
SSD_LAYOUTS: tuple[dict[str, object], ...] = (
    {
        "strides": (16, 32, 64, 128, 256, 512),
        "aspect_ratios": (1.0, 2.0, 0.5, 3.0, 0.3333),
        "reduce_boxes_in_lowest_layer": True,
    },
    {"strides": (8, 16, 32, 64, 128), "aspect_ratios": (1.0, 2.0, 0.5)},
)
#: Stride layouts tried for fixed-size (BlazeFace-style) anchors: face short range, palm,
#: pose detection, face full range (one anchor per cell).
BLAZE_LAYOUTS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((8, 16, 16, 16), 1.0),
    ((8, 16, 32, 32, 32), 1.0),
    ((4,), 0.0),
    ((8, 16), 1.0),
    ((16, 32), 1.0),
)


def find_anchors(kind: str, h: int, w: int, n: int) -> AnchorOptions | None:
    candidates: list[AnchorOptions] = []
    if kind == "blazeface":
        for strides, interpolated in BLAZE_LAYOUTS:
            candidates.append(
                AnchorOptions(
                    len(strides),
                    h,
                    w,
                    strides,
                    min_scale=0.1484375,
                    max_scale=0.75,
                    interpolated_scale_aspect_ratio=interpolated,
                    fixed_anchor_size=True,
                )
            )
    else:
        for layout in SSD_LAYOUTS:
            strides = cast(tuple[int, ...], layout["strides"])
            candidates.append(
                AnchorOptions(
                    len(strides),
                    h,
                    w,
                    strides,
                    aspect_ratios=cast(tuple[float, ...], layout["aspect_ratios"]),
                    reduce_boxes_in_lowest_layer=bool(
                        layout.get("reduce_boxes_in_lowest_layer", False)
                    ),
                )
            )
    return next((a for a in candidates if anchor_count(a) == n), None)
