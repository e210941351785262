"""Does LiteRT's XNNPACK sparse path help a pruned model? Measured, not assumed.

XNNPACK runs sparse weights only in float models (float32/float16) whose filters are stored in
the TFLite sparse format behind a DENSIFY op: its delegate then builds the runtime with
``XNN_FLAG_HINT_SPARSE_INFERENCE``, and XNNPACK rewrites to sparse NCHW kernels only the parts
of the graph it can (1x1 convolutions, with depthwise convolutions, a first 3x3 stride-2
convolution on 3 channels and global average pooling around them: MobileNet-like stacks). Int8
models never take that path. So the report times, with the same threads, the converted model,
and the pruned model as dense and as sparse-format float32, each with XNNPACK and with LiteRT's
built-in kernels only, and says whether any 1x1 convolution could use the sparse kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convert.litert_run import LiteRTModel, interleaved_latency_ms
from convert.tflite_info import read_weights

SPARSE_SPEEDUP_THRESHOLD = 1.1  # below this, call it noise on a shared host
_ROUNDS = 5
MIN_RUNS = 500  # small models invoke in microseconds: a few runs per round are mostly noise


def xnnpack_report(workdir: Path, model: bytes, threads: int, runs: int) -> dict[str, Any]:
    """Latencies (median ms) of the variants the worker wrote, with and without XNNPACK."""
    variants = {
        "converted": model,
        "dense_float32": (workdir / "dense_float32.tflite").read_bytes(),
        "sparse_float32": (workdir / "sparse_float32.tflite").read_bytes(),
    }
    runs = max(runs, MIN_RUNS)
    latency = _interleaved_latency(variants, threads, runs)
    return summarize(latency, sparse_candidates(variants["sparse_float32"]), threads, runs)


def sparse_candidates(sparse_model: bytes) -> dict[str, int]:
    """Float filters stored sparse, and how many of them are 1x1 convolutions (NCHW SpMM)."""
    weights = [w for w in read_weights(sparse_model) if w.sparse and w.dtype.startswith("float")]
    pointwise = [
        w for w in weights if w.op == "CONV_2D" and len(w.shape) == 4 and w.shape[1:3] == (1, 1)
    ]
    return {"sparse_float_filters": len(weights), "sparse_1x1_convolutions": len(pointwise)}


def summarize(
    latency: dict[str, float], candidates: dict[str, int], threads: int, runs: int
) -> dict[str, Any]:
    """The XNNPACK section of the report (pure)."""
    dense, sparse = latency["dense_float32/xnnpack"], latency["sparse_float32/xnnpack"]
    speedup = dense / sparse if sparse > 0 else 0.0
    hinted = candidates["sparse_float_filters"] > 0
    applicable = candidates["sparse_1x1_convolutions"] > 0
    used = hinted and applicable and speedup >= SPARSE_SPEEDUP_THRESHOLD
    if not hinted:
        note = "no float filter was stored in the sparse format: XNNPACK gets no sparse hint"
    elif not applicable:
        note = (
            "XNNPACK gets the sparse hint, but the model has no 1x1 convolution, the only "
            "layer its sparse (NCHW) kernels run, so it densifies the weights at load time "
            f"(measured dense/sparse time ratio {speedup:.2f})"
        )
    elif used:
        note = f"the sparse float32 model runs {speedup:.2f}x faster with XNNPACK than dense"
    else:
        note = (
            f"1x1 convolutions are sparse but XNNPACK ran the sparse model only {speedup:.2f}x "
            "as fast as the dense one: the graph did not fit its NCHW sparse rewrite"
        )
    return {
        "threads": threads,
        "runs": runs * _ROUNDS,
        "latency_ms": {key: round(value, 4) for key, value in latency.items()},
        **candidates,
        "sparse_speedup": round(speedup, 3),
        "sparse_path_used": used,
        "note": note,
    }


def _interleaved_latency(variants: dict[str, bytes], threads: int, runs: int) -> dict[str, float]:
    """Median over rounds of each variant's median, rounds interleaved so load hits all alike."""
    models = {
        f"{name}/{'xnnpack' if xnn else 'builtin'}": LiteRTModel(data, threads, xnnpack=xnn)
        for name, data in variants.items()
        for xnn in (True, False)
    }
    return interleaved_latency_ms(models, runs, _ROUNDS)
