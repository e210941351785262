"""The slot side of a swap (updater thread): stage a bundle, load and warm up its model, switch.

Commit order, safe against ``kill -9`` at any point: write the bundle to the inactive slot
(atomic) -> [the caller proves it with the canary] -> load and warm up the interpreter (on the
new model's own thread, :mod:`agent.runtime.worker`; this thread waits) -> switch
``slots.json`` (atomic) -> record the release counter. A failure before the switch leaves the
old model active and serving. The loaded model goes to the loop as
a :class:`~agent.model.swap.Swap`; :class:`~agent.model.swap.ServedModel` puts it live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.bundle import DecryptedBundle, Limits, StateStore
from agent.bundle.container import parse_prefix
from agent.bundle.verify import check_exact_length
from agent.errors import BackendError, DeviceError
from agent.model.active import ActiveModel
from agent.model.pipeline import Pipeline
from agent.model.slots import SlotState, SlotStore
from agent.model.swap import Swap
from agent.reasons import Reason

Loader = Callable[[DecryptedBundle], tuple[ActiveModel, Pipeline]]


@dataclass(frozen=True)
class Staged:
    """A bundle written to the inactive ``slot``; ``state`` is the slot state it goes live from."""

    state: SlotState
    slot: str


class SlotSwitch:
    """Loads models into swaps and moves ``slots.json`` along with them."""

    def __init__(
        self,
        slots: SlotStore,
        release: StateStore,
        load: Loader,
        hand_over: Callable[[Swap], None],
    ) -> None:
        """``load``: bundle to model + pipeline (:meth:`ServedModel.load`); ``hand_over``: give a
        swap to the loop (:meth:`ServedModel.offer`)."""
        self.slots = slots
        self.release = release
        self._load = load
        self.hand_over = hand_over

    @property
    def limits(self) -> Limits:
        return self.slots.limits

    def active(self) -> bytes | None:
        """The active slot's bundle (``None`` when nothing is installed)."""
        active = self.slots.load().active
        return None if active is None else self.slots.read(active)

    def stage(self, data: bytes) -> Staged:
        """Write a whole bundle to the inactive slot; ``malformed`` unless it is exactly header
        plus payload (a slot never holds header + garbage + payload)."""
        check_exact_length(parse_prefix(data, self.slots.limits), len(data), whole=True)
        state = self.slots.load()
        if state.previous == state.inactive:
            state = SlotState(state.active)  # the previous model is about to be overwritten
            self.slots.commit(state)
        self.slots.write(state.inactive, data)
        return Staged(state, state.inactive)

    def go_live(self, bundle: DecryptedBundle, staged: Staged, bid: str) -> Swap:
        """Load the interpreter, switch ``slots.json``, record the counter."""
        active, pipeline = self.load(bundle)
        self.slots.commit(staged.state.activated(staged.slot))
        self.release.record_installed(bundle)
        return Swap(active, pipeline, "install", bid, watch=True)

    def previous(self) -> bytes:
        """The previous slot's bundle, to open before :meth:`go_back`."""
        state = self.slots.load()
        if state.previous is None:
            raise DeviceError(Reason.NO_PREVIOUS_SLOT, "there is no previous model to roll back to")
        return self.slots.read(state.previous)

    def go_back(self, bundle: DecryptedBundle, bid: str) -> Swap:
        """Load the previous slot's model (opened from :meth:`previous`) and make it active."""
        active, pipeline = self.load(bundle)
        self.slots.commit(self.slots.load().rolled_back())
        return Swap(active, pipeline, "rollback", bid, watch=False)

    def revert(self) -> None:
        """The watch window failed: make the previous slot active again (the loop swapped back)."""
        state = self.slots.load()
        if state.previous is not None:
            self.slots.commit(state.rolled_back())

    def load(self, bundle: DecryptedBundle) -> tuple[ActiveModel, Pipeline]:
        """Load and warm up: the first invoke prepares the delegate (XNNPACK, Edge TPU), which
        must happen now, not on the first frame after the swap. Both run on the new model's own
        interpreter thread (the one that will serve it), while the old model keeps serving."""
        try:
            active, pipeline = self._load(bundle)
            active.model.invoke([np.zeros(s.shape, np.dtype(s.dtype)) for s in active.model.inputs])
        except BackendError as exc:
            raise DeviceError(Reason.LOAD_FAILED, f"model does not load: {exc}") from None
        return active, pipeline
