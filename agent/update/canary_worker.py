"""The canary in its own process: a crafted ``.tflite`` that crashes the parser kills only this.

``python -m agent.update.canary_worker --memory-bytes N`` limits its own address space
(``RLIMIT_AS``) first, then reads one request from stdin -- the model and ``canary.npz`` bytes
travel through the pipe, never through a plaintext file -- loads the model, runs the golden input,
compares the output with the expected one within its tolerance, times a few more invokes, and
writes one JSON line to stdout. A crash, an exit without that line, or a timeout is judged by the
parent (:func:`run_canary`).

Request framing: ``u32`` length + JSON settings, ``u64`` length + model, ``u64`` length + canary.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import resource
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from agent.bundle.container import Limits
from agent.reasons import Reason
from agent.schema.canary import MAX_CANARY_BYTES

log = logging.getLogger(__name__)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
MAX_SETTINGS_BYTES = 4096
MAX_REPORT_BYTES = 16384
LATENCY_RUNS = 5


@dataclass(frozen=True)
class CanarySettings:
    backend: str = "auto"
    accelerator: str = "cpu"
    threads: int | None = None
    runs: int = LATENCY_RUNS


@dataclass(frozen=True)
class CanaryReport:
    """The verdict. ``reason`` is ``None`` when the canary passed, else a ``canary_*`` code."""

    reason: Reason | None
    detail: str
    latency_ms: float | None = None
    max_abs_error: float | None = None

    @property
    def passed(self) -> bool:
        return self.reason is None


def encode_request(
    settings: CanarySettings, model: bytes | memoryview, canary: bytes | memoryview
) -> bytes:
    head = json.dumps(settings.__dict__).encode()
    return b"".join(
        (_U32.pack(len(head)), head, _U64.pack(len(model)), model, _U64.pack(len(canary)), canary)
    )


class CanaryRunner(Protocol):
    """Runs a canary and judges it (:func:`run_canary`, or :func:`run_canary_in_process`)."""

    def __call__(
        self,
        settings: CanarySettings,
        model: bytes | memoryview,
        canary: bytes | memoryview,
        *,
        timeout_s: float,
        memory_bytes: int,
    ) -> CanaryReport: ...


def run_canary(
    settings: CanarySettings,
    model: bytes | memoryview,
    canary: bytes | memoryview,
    *,
    timeout_s: float,
    memory_bytes: int,
) -> CanaryReport:
    """Run the canary in a child process and judge how it ended."""
    request = encode_request(settings, model, canary)
    command = [
        sys.executable,
        "-m",
        "agent.update.canary_worker",
        "--memory-bytes",
        str(memory_bytes),
    ]
    try:
        done = subprocess.run(
            command, input=request, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return CanaryReport(Reason.CANARY_TIMEOUT, f"canary did not finish within {timeout_s:g} s")
    stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()
    why = stderr[-1][:300] if stderr else "no output"
    if done.returncode != 0:
        return CanaryReport(
            Reason.CANARY_CRASH, f"canary process exited with status {done.returncode}: {why}"
        )
    try:
        return _report(done.stdout)
    except (ValueError, KeyError, TypeError) as exc:
        return CanaryReport(Reason.CANARY_CRASH, f"canary process gave no verdict ({exc}): {why}")


def run_canary_in_process(
    settings: CanarySettings,
    model: bytes | memoryview,
    canary: bytes | memoryview,
    *,
    timeout_s: float,
    memory_bytes: int,
) -> CanaryReport:
    """The same check as :func:`run_canary`, on the calling thread, for tests of the updater.

    Nothing isolates the caller here: a model that crashes the parser crashes the process, and
    neither ``timeout_s`` nor ``memory_bytes`` is enforced. The agent itself always uses
    :func:`run_canary`. The verdict goes through the same framing and JSON as the child's.
    """
    del timeout_s, memory_bytes  # only a child process can enforce them
    request = io.BytesIO(encode_request(settings, model, canary))
    settings, model_bytes, canary_bytes = read_request(request)
    try:
        verdict = judge(settings, model_bytes, canary_bytes)
    except Exception as exc:  # what would have ended the child with a traceback
        return CanaryReport(Reason.CANARY_CRASH, f"canary check raised {exc!r}"[:1000])
    return _report((json.dumps(verdict) + "\n").encode())


def _report(stdout: bytes) -> CanaryReport:
    if len(stdout) > MAX_REPORT_BYTES:
        raise ValueError("report too large")
    obj = json.loads(stdout.decode("utf-8").strip().splitlines()[-1])
    reason = None if obj["reason"] is None else Reason(obj["reason"])
    if reason is not None and not reason.startswith("canary_"):
        raise ValueError(f"bad reason {reason!r}")
    return CanaryReport(
        reason,
        str(obj["detail"])[:1000],
        None if obj["latency_ms"] is None else float(obj["latency_ms"]),
        None if obj["max_abs_error"] is None else float(obj["max_abs_error"]),
    )


# -- the child ------------------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"request ends inside the {what}")
    return data


def read_request(stream: BinaryIO) -> tuple[CanarySettings, bytes, bytes]:
    """Parse a request, capping every length before reading it."""
    (head_len,) = _U32.unpack(_read_exact(stream, _U32.size, "settings length"))
    if head_len > MAX_SETTINGS_BYTES:
        raise ValueError(f"settings are {head_len} bytes, limit {MAX_SETTINGS_BYTES}")
    settings = CanarySettings(**json.loads(_read_exact(stream, head_len, "settings")))
    (model_len,) = _U64.unpack(_read_exact(stream, _U64.size, "model length"))
    if model_len > Limits().max_payload:
        raise ValueError(f"model is {model_len} bytes, limit {Limits().max_payload}")
    model = _read_exact(stream, model_len, "model")
    (canary_len,) = _U64.unpack(_read_exact(stream, _U64.size, "canary length"))
    if canary_len > MAX_CANARY_BYTES:
        raise ValueError(f"canary is {canary_len} bytes, limit {MAX_CANARY_BYTES}")
    return settings, model, _read_exact(stream, canary_len, "canary")


def judge(settings: CanarySettings, model_bytes: bytes, canary_bytes: bytes) -> dict[str, Any]:
    """Load, run and compare; the verdict as the JSON object the parent reads."""
    from agent.errors import BackendError
    from agent.pipeline.tensors import dequantize
    from agent.runtime import open_model
    from agent.schema.canary import CanaryError, check_canary, load_canary

    verdict: dict[str, Any] = {"reason": None, "detail": "", "latency_ms": None}
    verdict["max_abs_error"] = None
    try:
        canary = load_canary(canary_bytes)
    except CanaryError as exc:
        return {**verdict, "reason": Reason.CANARY_MALFORMED, "detail": str(exc)}
    try:
        model = open_model(
            model_bytes,
            backend=settings.backend,
            accelerator=settings.accelerator,
            threads=settings.threads,
        )
        try:
            outputs = model.invoke([canary.input])
            timings = []
            for _ in range(max(1, settings.runs)):
                started = time.perf_counter()
                model.invoke([canary.input])
                timings.append(time.perf_counter() - started)
        finally:
            model.close()  # released on the model's own thread, not when collected here
        result = check_canary(dequantize(outputs[0], model.outputs[0]), canary)
    except (BackendError, CanaryError, ValueError) as exc:
        return {**verdict, "reason": Reason.CANARY_LOAD, "detail": str(exc)}
    verdict["latency_ms"] = statistics.median(timings) * 1000.0
    verdict["max_abs_error"] = result.max_abs_error
    if not result.passed:
        verdict["reason"] = Reason.CANARY_MISMATCH
        verdict["detail"] = (
            f"output differs from the expected canary output by {result.max_abs_error:.6g}, "
            f"tolerance {result.atol:.6g}"
        )
    return verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.update.canary_worker")
    parser.add_argument("--memory-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    try:
        settings, model, canary = read_request(sys.stdin.buffer)
    except (ValueError, TypeError, struct.error) as exc:
        verdict: dict[str, Any] = {
            "reason": Reason.CANARY_MALFORMED,
            "detail": f"bad request: {exc}",
        }
        verdict.update(latency_ms=None, max_abs_error=None)
    else:
        verdict = judge(settings, model, canary)
    sys.stdout.write(json.dumps(verdict) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
