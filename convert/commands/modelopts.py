"""Command-line options describing a third-party model (shared by ``describe`` and ``bundle``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agent.errors import InputError
from agent.schema.decoding import KINDS, AnchorOptions
from agent.schema.labels import LabelError, parse_labels
from agent.schema.meta import TASKS
from convert.recognise import Options

MAX_LABEL_FILE = 1 << 20
MAX_ANCHOR_FILE = 16 << 20


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model description (derived from the file unless given)")
    g.add_argument("--task", choices=TASKS, help="what the model does")
    g.add_argument("--decoder", choices=KINDS, help="how its outputs are decoded")
    g.add_argument(
        "--labels",
        type=Path,
        help="labels: one per line, 'id name' / 'id: name' (gaps allowed) or label_map.pbtxt",
    )
    g.add_argument("--label-offset", type=int, default=0, help="add N to every label id")
    g.add_argument("--label-names", help="labels inline, comma-separated (e.g. face)")
    g.add_argument("--color", choices=("rgb", "bgr", "gray"))
    g.add_argument("--resize", choices=("stretch", "letterbox"))
    g.add_argument("--mean", help="M[,M,M]: input = (pixel - mean) / std")
    g.add_argument("--std", help="S[,S,S]")
    g.add_argument(
        "--scores",
        choices=("probabilities", "logits", "sigmoid"),
        help="what the score outputs are (sigmoid/logits: the agent applies the activation)",
    )
    g.add_argument("--threshold", type=float, help="minimum score of a detection")
    g.add_argument("--iou-threshold", type=float, help="NMS overlap threshold")
    g.add_argument("--max-detections", type=int)
    g.add_argument("--mask-size", type=int, help="segmentation: compact mask side (0: none)")
    g.add_argument(
        "--background", action=argparse.BooleanOptionalAction, help="class 0 is background"
    )
    g.add_argument("--num-keypoints", type=int, help="keypoints per box (BlazeFace-style)")
    g.add_argument(
        "--values-per-point", type=int, help="landmarks: values per point (x, y, z, ...; default 3)"
    )
    g.add_argument(
        "--point-score-index", type=int, help="landmarks: which value of a point is its score"
    )
    g.add_argument(
        "--anchors", type=Path, help="anchors .npy/.csv, rows [y_center, x_center, h, w]"
    )
    g.add_argument("--anchor-strides", help="e.g. 8,16,16,16 (generates SSD anchors)")
    g.add_argument("--anchor-scales", help="MIN,MAX anchor scales (default 0.2,0.95)")
    g.add_argument("--aspect-ratios", help="e.g. 1,2,0.5")
    g.add_argument("--fixed-anchor-size", action="store_true", help="anchors w = h = 1")
    g.add_argument(
        "--reduce-lowest-layer", action="store_true", help="SSD: 3 boxes in the lowest layer"
    )


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} must be comma-separated numbers, got {text!r}") from None


def read_label_file(path: Path, offset: int = 0) -> tuple[str, ...]:
    if not path.is_file():
        raise InputError(f"--labels {path}: no such file")
    if path.stat().st_size > MAX_LABEL_FILE:
        raise InputError(f"--labels {path} is larger than {MAX_LABEL_FILE} bytes")
    try:
        return parse_labels(path.read_text(encoding="utf-8"), offset)
    except UnicodeDecodeError:
        raise InputError(f"--labels {path} is not UTF-8 text") from None
    except LabelError as exc:
        raise InputError(f"--labels {path}: {exc}") from None


def _anchor_table(path: Path) -> tuple[tuple[float, float, float, float], ...]:
    if not path.is_file() or path.stat().st_size > MAX_ANCHOR_FILE:
        raise InputError(f"--anchors {path}: missing or larger than {MAX_ANCHOR_FILE} bytes")
    try:
        table = (
            np.load(path, allow_pickle=False)
            if path.suffix == ".npy"
            else np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        )
    except ValueError as exc:
        raise InputError(f"--anchors {path}: {exc}") from None
    if table.ndim != 2 or table.shape[1] != 4 or not np.isfinite(table).all():
        raise InputError(f"--anchors {path} must be N x 4 finite numbers [yc, xc, h, w]")
    return tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in table)


def _labels(args: argparse.Namespace) -> tuple[str, ...] | None:
    if args.labels is not None:
        return read_label_file(args.labels, args.label_offset)
    if args.label_names:
        return tuple(n.strip() for n in args.label_names.split(","))
    return None


def model_options(args: argparse.Namespace, input_hw: tuple[int, int] | None) -> Options:
    anchors = None
    if args.anchor_strides:
        strides = tuple(int(v) for v in _floats(args.anchor_strides, "--anchor-strides") or ())
        if input_hw is None:
            raise InputError("--anchor-strides needs an image model")
        scales = _floats(args.anchor_scales, "--anchor-scales") or (0.2, 0.95)
        if len(scales) != 2:
            raise InputError("--anchor-scales is MIN,MAX")
        anchors = AnchorOptions(
            len(strides),
            input_hw[0],
            input_hw[1],
            strides,
            min_scale=scales[0],
            max_scale=scales[1],
            aspect_ratios=_floats(args.aspect_ratios, "--aspect-ratios") or (1.0,),
            reduce_boxes_in_lowest_layer=args.reduce_lowest_layer,
            fixed_anchor_size=args.fixed_anchor_size,
        )
    return Options(
        task=args.task,
        decoder=args.decoder,
        labels=_labels(args),
        color=args.color,
        resize=args.resize,
        mean=_floats(args.mean, "--mean"),
        std=_floats(args.std, "--std"),
        threshold=args.threshold,
        iou_threshold=args.iou_threshold,
        max_detections=args.max_detections,
        mask_size=args.mask_size,
        background=args.background,
        anchors=anchors,
        anchor_table=() if args.anchors is None else _anchor_table(args.anchors),
        num_keypoints=args.num_keypoints,
        scores=args.scores,
        values_per_point=args.values_per_point,
        point_score_index=args.point_score_index,
    )
