"""The hand-off between the prepare stage and the interpreter stage: a small ring of input slots.

Each :class:`Slot` owns one pre-allocated input buffer, reused frame after frame (reallocated
only when the model's input shape or dtype changes, that is after a swap): the prepare stage
writes the pre-processed frame into it, the interpreter stage hands it to ``set_tensor`` (which
copies it into the interpreter) and gives the slot back. A slot moves free -> filling -> ready ->
in use -> free; the two threads never hold the same slot.

Back-pressure, by source:

- **live** (``live=True``, a camera or a paced video): newest wins. Publishing a frame while an
  older ready frame is still untaken returns the older one to the free list and counts it in
  :attr:`TensorRing.dropped`; the prepare stage never waits, so the source's own newest-frame
  slot keeps draining.
- **blocking** (a file read unthrottled, an image folder, sensors, audio): nothing is dropped;
  :meth:`TensorRing.acquire` waits for a free slot, so the prepare stage stops taking from the
  source and the source's blocking hand-off holds its producer.

Items other than frames (sensor readings, audio blocks) travel through the same slots without
a buffer and are never dropped here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.pipeline.geometry import Letterbox
from agent.sources.audio import AudioBlock
from agent.sources.base import Frame, Reading

DEFAULT_SLOTS = 3


@dataclass(eq=False)
class Slot:
    """One ring entry: the item, and (for a prepared frame) its tensor and who prepared it."""

    item: Frame | Reading | AudioBlock | None = None
    #: Readings that were waiting behind ``item`` (one hand-off for a burst).
    more: list[Reading] = field(default_factory=list)
    buffer: np.ndarray | None = None
    #: The pipeline whose pre-processor filled ``buffer`` (None: not prepared).
    prepared_for: object | None = None
    geometry: Letterbox | None = None
    prepare_s: float = 0.0

    def buffer_for(self, shape: tuple[int, ...], dtype: np.dtype[np.generic]) -> np.ndarray:
        """This slot's buffer in ``shape`` and ``dtype`` (allocated only when they change)."""
        buf = self.buffer
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.buffer = np.empty(shape, dtype)
        return buf

    def clear(self) -> None:
        self.item, self.prepared_for, self.geometry, self.prepare_s = None, None, None, 0.0
        self.more = []


class TensorRing:
    """``size`` slots between one producer and one consumer at a time (see the module)."""

    def __init__(self, size: int = DEFAULT_SLOTS, *, live: bool = False) -> None:
        if size < 3:
            raise ValueError("a ring needs at least 3 slots (filling, ready, in use)")
        self.live = live
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the consumer waits here for a ready slot
        self._free_cond = threading.Condition(lock)  # the producer waits here for a free slot
        self._free: deque[Slot] = deque(Slot() for _ in range(size))
        self._ready: deque[Slot] = deque()
        self._closed = False
        #: Ready frames replaced by a newer one before the interpreter took them.
        self.dropped = 0
        #: Frames prepared for a model that was no longer live when they were taken.
        self.stale = 0

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """A free slot to fill; waits while none is free. ``None`` on timeout or close."""
        with self._cond:
            if not self._wait(self._free_cond, lambda: bool(self._free), timeout):
                return None
            return self._free.popleft()

    def publish(self, slot: Slot) -> None:
        """A filled slot is ready. Live: an untaken older frame goes back, counted dropped."""
        with self._cond:
            if self._closed:
                slot.clear()
                self._free.append(slot)
                return
            if self.live and isinstance(slot.item, Frame):
                for older in [s for s in self._ready if isinstance(s.item, Frame)]:
                    self._ready.remove(older)
                    older.clear()
                    self._free.append(older)
                    self.dropped += 1
                    self._free_cond.notify()
            self._ready.append(slot)
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Slot | None:
        """The oldest ready slot; ``None`` on timeout or once closed and empty."""
        with self._cond:
            if not self._wait(self._cond, lambda: bool(self._ready), timeout):
                return None
            return self._ready.popleft()

    def release(self, slot: Slot) -> None:
        """The consumer is done with ``slot`` (its buffer was copied into the interpreter)."""
        with self._cond:
            slot.clear()
            self._free.append(slot)
            self._free_cond.notify()

    def close(self) -> None:
        """Wake every waiter; ready slots can still be taken, nothing new is accepted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._free_cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._ready)

    def _wait(
        self, cond: threading.Condition, ready: Callable[[], bool], timeout: float | None
    ) -> bool:
        """Wait on ``cond`` until ``ready()`` holds (the lock held); False on close or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not ready():
            if self._closed:
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            cond.wait(remaining)
        return True
