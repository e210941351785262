"""From a complete, verified transfer to a loaded model ready to swap in (updater thread only).

Commit order, safe against ``kill -9`` at any point: decrypt in memory (every block and file hash
checked) -> write the bundle to the inactive slot (atomic) -> canary in a separate process ->
load the interpreter here, off the service loop -> switch ``slots.json`` (atomic) -> record the
release counter. A failure before the switch leaves the old model active and serving.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from agent.bundle import BundleVerifier, DecryptedBundle, StateStore, open_bundle
from agent.config import AgentConfig
from agent.errors import BackendError, BundleRejected, DeviceError
from agent.model.active import ActiveModel, Credentials
from agent.model.pipeline import Pipeline
from agent.model.slots import SlotState, SlotStore
from agent.reasons import Reason
from agent.update.canary_worker import CanarySettings, run_canary
from agent.update.protocol import bundle_id, split_bundle

log = logging.getLogger(__name__)

Loader = Callable[[DecryptedBundle], tuple[ActiveModel, Pipeline]]

#: The GIL switch interval while an install runs (CPython's default is 5 ms).
INSTALL_SWITCH_INTERVAL_S = 0.0005


@contextmanager
def prompt_switching(interval_s: float = INSTALL_SWITCH_INTERVAL_S) -> Iterator[None]:
    """Make the updater thread hand the GIL over after ``interval_s`` instead of 5 ms.

    An install runs Python on the updater thread (decrypt loop, hashing, status records) while
    the service loop comes back from every ``invoke`` (which runs without the GIL) needing it:
    with CPython's default the loop can wait up to 5 ms per frame. The interval is process-wide,
    so it is restored as soon as the install ends.
    """
    previous = sys.getswitchinterval()
    if previous <= interval_s:
        yield
        return
    sys.setswitchinterval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@dataclass(frozen=True)
class Swap:
    """A model loaded off the loop thread, for the loop to put live between two inferences.

    ``watch``: start a watch window (an install), or not (a rollback).
    """

    active: ActiveModel
    pipeline: Pipeline
    kind: str
    bundle: str | None
    watch: bool


class Installer:
    def __init__(
        self,
        config: AgentConfig,
        credentials: Credentials,
        slots: SlotStore,
        release: StateStore,
        load: Loader,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.slots = slots
        self.release = release
        self.load = load
        self.wall = wall

    def verifier(self, *, own_slot: bool = False) -> BundleVerifier:
        return BundleVerifier(
            self.credentials.trust,
            self.credentials.device,
            self.release.load(),
            now=self.wall(),
            limits=self.slots.limits,
            own_slot=own_slot,
        )

    def active_bundle(self) -> str | None:
        """The bundle id of the active slot (``None`` when nothing is installed)."""
        active = self.slots.load().active
        if active is None:
            return None
        header, _ = split_bundle(self.slots.read(active), self.slots.limits)
        return bundle_id(header)

    def stage(self, data: bytes) -> tuple[SlotState, str]:
        """Write a whole bundle to the inactive slot; the slot state it goes live from."""
        state = self.slots.load()
        if state.previous == state.inactive:
            state = SlotState(state.active)  # the previous model is about to be overwritten
            self.slots.commit(state)
        self.slots.write(state.inactive, data)
        return state, state.inactive

    def prove(self, bundle: DecryptedBundle, running_p50_ms: float | None) -> None:
        """The canary in its own process; raises :class:`BundleRejected` ``canary_*``."""
        canary = bundle.file("canary.npz")
        if canary is None:
            raise BundleRejected(Reason.CANARY_MISSING, "bundle has no canary.npz to prove it with")
        model = bundle.file("model_cpu.tflite") or bundle.files["model.tflite"]
        uses_cpu_variant = bundle.file("model_cpu.tflite") is not None
        settings = CanarySettings(
            backend=self.config.model.backend,
            accelerator="cpu" if uses_cpu_variant else self.config.model.accelerator,
            threads=self.config.model.threads,
        )
        update = self.config.update
        report = run_canary(
            settings,
            model,  # views into the plaintext: copied once, into the request to the child
            canary,
            timeout_s=update.canary_timeout_s,
            memory_bytes=update.canary_memory_bytes,
        )
        if report.reason is not None:
            raise BundleRejected(report.reason, report.detail)
        budget = None if running_p50_ms is None else update.latency_budget_factor * running_p50_ms
        if budget is not None and report.latency_ms is not None and report.latency_ms > budget:
            raise BundleRejected(
                Reason.CANARY_LATENCY,
                f"canary invoke takes {report.latency_ms:.2f} ms, budget {budget:.2f} ms "
                f"({update.latency_budget_factor:g} x the running p50 {running_p50_ms:.2f} ms)",
            )
        log.info(
            "canary passed: max error %s, invoke %.2f ms", report.max_abs_error, report.latency_ms
        )

    def go_live(self, bundle: DecryptedBundle, state: SlotState, slot: str, bid: str) -> Swap:
        """Load the interpreter, switch ``slots.json``, record the counter."""
        active, pipeline = self._load(bundle)
        self.slots.commit(state.activated(slot))
        self.release.record_installed(bundle)
        return Swap(active, pipeline, "install", bid, watch=True)

    def previous(self) -> Swap:
        """Load the previous slot's model and make it active (a rollback command)."""
        state = self.slots.load()
        if state.previous is None:
            raise DeviceError(Reason.NO_PREVIOUS_SLOT, "there is no previous model to roll back to")
        data = self.slots.read(state.previous)
        bundle = open_bundle(data, self.verifier(own_slot=True))
        active, pipeline = self._load(bundle)
        self.slots.commit(state.rolled_back())
        header, _ = split_bundle(data, self.slots.limits)
        return Swap(active, pipeline, "rollback", bundle_id(header), watch=False)

    def revert(self) -> None:
        """The watch window failed: make the previous slot active again (the loop swapped back)."""
        state = self.slots.load()
        if state.previous is not None:
            self.slots.commit(state.rolled_back())

    def _load(self, bundle: DecryptedBundle) -> tuple[ActiveModel, Pipeline]:
        """Load and warm up: the first invoke prepares the delegate (XNNPACK, Edge TPU), which
        must happen here, not on the first frame after the swap."""
        try:
            active, pipeline = self.load(bundle)
            active.model.invoke([np.zeros(s.shape, np.dtype(s.dtype)) for s in active.model.inputs])
        except BackendError as exc:
            raise DeviceError(Reason.LOAD_FAILED, f"model does not load: {exc}") from None
        return active, pipeline
