"""From a complete, verified transfer to a model handed to the loop (updater thread only).

Commit order, safe against ``kill -9`` at any point: decrypt in memory (every block and file hash
checked) -> write the bundle to the inactive slot (atomic) -> canary in a separate process ->
load the interpreter, off the service loop -> switch ``slots.json`` (atomic) -> record the
release counter. A failure before the switch leaves the old model active and serving.

The model side -- slots, loading, warm-up, the swap itself -- belongs to :mod:`agent.model`; this
module reaches it only through :class:`ModelHost` (implemented by
:class:`agent.model.switch.SlotSwitch`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from agent.bundle import BundleVerifier, DecryptedBundle, Limits, StateStore, open_bundle
from agent.config import AgentConfig
from agent.errors import BundleRejected, DeviceError, Rejected
from agent.model.active import Credentials
from agent.model.swap import Swap
from agent.model.switch import Staged
from agent.reasons import Reason
from agent.update.canary_worker import CanaryRunner, CanarySettings, run_canary
from agent.update.fetch import Held
from agent.update.protocol import bundle_id, split_bundle

log = logging.getLogger(__name__)

#: The GIL switch interval while an install runs (CPython's default is 5 ms).
INSTALL_SWITCH_INTERVAL_S = 0.0005


class ModelHost(Protocol):
    """What an install needs from the model side: load / stage / go live / revert."""

    @property
    def limits(self) -> Limits: ...

    def active(self) -> bytes | None:
        """The active slot's bundle, ``None`` when nothing is installed."""
        ...

    def stage(self, data: bytes) -> Staged:
        """Write a whole bundle to the inactive slot."""
        ...

    def go_live(self, bundle: DecryptedBundle, staged: Staged, bid: str) -> Swap:
        """Load and warm up the staged model, then switch the slots to it."""
        ...

    def previous(self) -> bytes:
        """The previous slot's bundle (``DeviceError`` ``no_previous_slot`` when none)."""
        ...

    def go_back(self, bundle: DecryptedBundle, bid: str) -> Swap:
        """Load the previous slot's model and make that slot active."""
        ...

    def revert(self) -> None:
        """Make the previous slot active again after the loop swapped back to it."""
        ...

    def hand_over(self, swap: Swap) -> None:
        """Give a loaded model to the loop, which puts it live between two inferences."""
        ...


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


class Installer:
    """Verifier, canary and the model host, for the updater's install steps."""

    def __init__(
        self,
        config: AgentConfig,
        credentials: Credentials,
        host: ModelHost,
        release: StateStore,
        *,
        wall: Callable[[], float] = time.time,
        canary: CanaryRunner = run_canary,
    ) -> None:
        """``canary``: how the canary runs (a child process; tests may run it in-process)."""
        self.config = config
        self.credentials = credentials
        self.host = host
        self.release = release
        self.wall = wall
        self.canary = canary

    @property
    def limits(self) -> Limits:
        return self.host.limits

    def verifier(self, *, own_slot: bool = False) -> BundleVerifier:
        """The checker of a bundle; for a new install (not ``own_slot``) refused with
        ``root_expired`` while the trust root is past its expiry."""
        expired = None if own_slot else self.expired_root()
        if expired is not None:
            root = self.credentials.root
            assert root is not None
            raise DeviceError(
                Reason.ROOT_EXPIRED,
                f"trust root version {expired} expired at {root.expires}: no new install "
                "until a newer root arrives",
            )
        return BundleVerifier(
            self.credentials.trust,
            self.credentials.device,
            self.release.load(),
            now=self.wall(),
            limits=self.host.limits,
            own_slot=own_slot,
        )

    def expired_root(self) -> int | None:
        """The version of the trust root when it is past its expiry, else ``None``."""
        root = self.credentials.root
        return root.version if root is not None and root.expired(self.wall()) else None

    def active_bundle(self) -> str | None:
        """The bundle id of the active slot (``None`` when nothing is installed)."""
        data = self.host.active()
        if data is None:
            return None
        header, _ = split_bundle(data, self.host.limits)
        return bundle_id(header)

    def stage(self, data: bytes) -> Staged:
        """Write a whole bundle to the inactive slot; what it goes live from."""
        return self.host.stage(data)

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
        report = self.canary(
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

    def install(
        self,
        held: Held,
        bid: str,
        running_p50_ms: float | None,
        on_canary: Callable[[], None],
    ) -> Swap:
        """Decrypt, stage, canary, load, switch; raises :class:`~agent.errors.Rejected` (the
        partial file is gone once the bundle decrypted)."""
        payload = held.partial.read()
        bundle = held.verifier.decrypt(payload)
        staged = self.stage(held.header + payload)
        held.partial.discard()
        del payload
        on_canary()
        try:
            self.prove(bundle, running_p50_ms)
            return self.go_live(bundle, staged, bid)
        except Rejected as exc:
            log.warning("bundle %s rejected: %s", bid, exc)
            raise

    def go_live(self, bundle: DecryptedBundle, staged: Staged, bid: str) -> Swap:
        """Load the interpreter, switch ``slots.json``, record the counter."""
        return self.host.go_live(bundle, staged, bid)

    def hand_over(self, swap: Swap) -> None:
        self.host.hand_over(swap)

    def previous(self) -> Swap:
        """Load the previous slot's model and make it active (a rollback command)."""
        data = self.host.previous()
        bundle = open_bundle(data, self.verifier(own_slot=True))
        header, _ = split_bundle(data, self.host.limits)
        return self.host.go_back(bundle, bundle_id(header))

    def revert(self) -> None:
        """The watch window failed: make the previous slot active again (the loop swapped back)."""
        self.host.revert()
