"""Instructions per frame: the agent's whole per-frame path against the bare invoke (callgrind).

Wall-clock benchmarks on a shared machine move with everyone else's load; instruction counts do
not. ``valgrind --tool=callgrind`` runs each side twice, with 0 and with ``--frames`` frames, so
start-up cancels out. One interpreter thread (valgrind serialises threads anyway, and spinning
worker threads would count their spin loops).

* bare: ``Interpreter.invoke`` on an all-zero input, as in ``bench_agent``;
* agent: the camera source decoding the MJPG video (at the model's size) on its thread, the
  :class:`~agent.model.pipeline.Pipeline` (pre-process, invoke, post-process) and the durable outbox
  (result JSON, SQLite insert, PUBACK delete) -- everything but the MQTT socket.

``python -m bench.frame_work [--frames 40] [--model mobilenet]`` (needs valgrind; minutes).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(kind: str, frames: int, work: Path) -> None:
    import numpy as np

    model_bytes = (work / "model.tflite").read_bytes()
    if kind == "bare":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=model_bytes, num_threads=1)
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        for _ in range(frames + 1):
            interp.invoke()
        return
    from agent.config import OutputConfig
    from agent.model.active import ActiveModel
    from agent.model.pipeline import Pipeline
    from agent.mqtt.messages import ModelRef, ResultMessage
    from agent.runtime import open_model
    from agent.schema.meta import ModelMetadata
    from agent.sources.camera import CameraSource
    from agent.store.outbox import Outbox

    meta = ModelMetadata.from_json((work / "metadata.json").read_bytes())
    model = open_model(model_bytes, backend="litert", threads=1)
    pipeline = Pipeline(ActiveModel("m", 1, "0" * 64, meta, model), OutputConfig(top_k=1))
    source = CameraSource(
        str(work / "video.avi"), pace="unthrottled", need=lambda: pipeline.frame_need
    )
    outbox = Outbox(work / f"outbox-{frames}.sqlite3")
    ref = ModelRef("m", "1", "0" * 64)
    for token in range(frames + 1):
        frame = source.get(30)
        assert frame is not None
        result = pipeline.process(frame)
        assert result is not None
        seq = outbox.enqueue(
            "edge/bench/results",
            lambda s, r=result: ResultMessage(
                seq=s, ts=1.0, model=ref, latency_ms=1.0, outputs=r.outputs
            ).to_json(),
        )
        outbox.mark_sent(seq, token)
        outbox.ack_many([token])
    source.close()
    outbox.close()


def _instructions(kind: str, frames: int, work: Path) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={work / f'callgrind.{kind}.{frames}'}",
            sys.executable,
            "-m",
            "bench.frame_work",
            "--child",
            kind,
            "--frames",
            str(frames),
            "--work",
            str(work),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total in:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--model", default="mobilenet", choices=("digits", "mobilenet"))
    parser.add_argument("--child", choices=("bare", "agent"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.frames, args.work)
        return 0
    from bench.agent_models import frame_case

    with tempfile.TemporaryDirectory(prefix="frame-work-") as tmp:
        work = Path(tmp)
        case = frame_case(args.model, work / "case")
        (work / "model.tflite").write_bytes(case.tflite)
        (work / "metadata.json").write_bytes(case.metadata.to_json())
        (work / "video.avi").symlink_to(case.video)
        per_frame = {}
        for kind in ("bare", "agent"):
            total = _instructions(kind, args.frames, work) - _instructions(kind, 0, work)
            per_frame[kind] = total / args.frames
            print(f"{kind}: {per_frame[kind] / 1e6:.1f} M instructions per frame", flush=True)
    print(f"work ratio bare ÷ agent: {per_frame['bare'] / per_frame['agent']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
