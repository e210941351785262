"""How long each phase of an install keeps a serving loop from running, in one process.

A thread stands in for the service loop: it invokes the running model back to back and stamps
the end of every invoke. Another thread runs one install phase at a time with the agent's own
functions -- ``decrypt`` (header signatures, block hashes, ChaCha20-Poly1305 stream, file
hashes), ``canary`` (the child process, model and canary through its pipe) and ``load`` (the
interpreter from bytes, ``allocate_tensors`` and the warm-up invoke). A phase's figure is the
longest gap between two invokes while it ran; ``quiet`` is the same loop with nothing else
running for as long, right after the phase. Invoke itself runs without the GIL, so a gap above
the invoke time is the loop waiting for the GIL or for a core.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.bundle import (
    BundleVerifier,
    DecryptedBundle,
    DeviceIdentity,
    RecipientKey,
    Release,
    ReleaseState,
    TrustRoot,
    build_bundle,
    open_bundle,
)
from agent.runtime import LoadedModel, open_model
from agent.update.canary_worker import CanarySettings, run_canary
from agent.update.install import prompt_switching

PHASES = ("decrypt", "canary", "load")
CANARY_MEMORY = 2 << 30


@dataclass(frozen=True)
class PhaseGaps:
    """Per phase (and ``quiet``), the longest loop gap of every run in ms; invoke p50 in ms."""

    longest_ms: dict[str, list[float]]
    invoke_ms: float


class _Loop:
    """The stand-in service loop: back-to-back invokes, each end stamped."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.inputs = [np.zeros(s.shape, np.dtype(s.dtype)) for s in model.inputs]
        self.ends: list[float] = []
        self.invokes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            self.model.invoke(self.inputs)
            end = time.perf_counter()
            self.invokes.append(end - start)
            self.ends.append(end)

    def __enter__(self) -> _Loop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def longest_gap_ms(self, start: float, stop: float) -> float:
        """Longest gap between invoke ends that overlaps ``[start, stop]``."""
        gaps = [b - a for a, b in itertools.pairwise(self.ends) if b >= start and a <= stop]
        return max(gaps, default=stop - start) * 1000.0


def _timed(loop: _Loop, action: Callable[[], object], switching: bool) -> tuple[float, float]:
    """Run ``action`` on a thread of its own while the loop runs; its (start, stop)."""
    times: list[float] = []

    def work() -> None:
        guard: AbstractContextManager[None] = prompt_switching() if switching else nullcontext()
        with guard:
            times.append(time.perf_counter())
            action()
            times.append(time.perf_counter())

    worker = threading.Thread(target=work, name="updater")
    worker.start()
    worker.join()
    return times[0], times[1]


def _bundle(files: dict[str, bytes]) -> tuple[bytes, BundleVerifier]:
    release_key, device_key = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    data = build_bundle(
        Release("bench", 2, int(time.time()) - 60),
        files,
        [release_key],
        [RecipientKey("bench-device", device_key.public_key())],
    )
    trust = TrustRoot.from_keys([release_key.public_key()])
    device = DeviceIdentity("bench-device", device_key)
    return data, BundleVerifier(trust, device, ReleaseState(), now=time.time())


def _phases(data: bytes, verifier: BundleVerifier) -> Iterator[tuple[str, Callable[[], object]]]:
    opened: list[DecryptedBundle] = []
    yield "decrypt", lambda: opened.append(open_bundle(data, verifier))
    bundle = opened[0]
    model, canary = bundle.files["model.tflite"], bundle.files["canary.npz"]

    def prove() -> None:
        report = run_canary(
            CanarySettings(backend="litert", threads=1),
            model,
            canary,
            timeout_s=120,
            memory_bytes=CANARY_MEMORY,
        )
        if report.reason is not None:
            raise RuntimeError(f"canary failed: {report.detail}")

    def load() -> None:
        loaded = open_model(bytes(model), backend="litert", accelerator="cpu", threads=1)
        loaded.invoke([np.zeros(s.shape, np.dtype(s.dtype)) for s in loaded.inputs])

    yield "canary", prove
    yield "load", load


def measure(files: dict[str, bytes], *, runs: int, switching: bool) -> PhaseGaps:
    """``runs`` installs of a bundle of ``files`` beside a loop serving the same model.

    Each phase is followed by a quiet window as long as it (``quiet <phase>``), so the host's
    own jitter is measured over the same length at nearly the same moment."""
    serving = open_model(files["model.tflite"], backend="litert", accelerator="cpu", threads=1)
    longest: dict[str, list[float]] = {}
    with _Loop(serving) as loop:
        time.sleep(0.5)
        for _ in range(runs):
            data, verifier = _bundle(files)
            for name, action in _phases(data, verifier):
                time.sleep(0.1)  # the child of a canary exits, the loop runs alone
                start, stop = _timed(loop, action, switching)
                longest.setdefault(name, []).append(loop.longest_gap_ms(start, stop))
                quiet = time.perf_counter()
                time.sleep(stop - start)
                quiet_gap = loop.longest_gap_ms(quiet, time.perf_counter())
                longest.setdefault(f"quiet {name}", []).append(quiet_gap)
        invoke_ms = statistics.median(loop.invokes) * 1000.0
    return PhaseGaps(longest, invoke_ms)
