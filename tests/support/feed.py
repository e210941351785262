"""A source the test hands frames to: the :class:`~agent.sources.base.Source` interface over a
list, so a test decides exactly when each frame arrives (the stages under test are real)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from agent.sources.base import Frame, Reading


class FrameFeed:
    """Frames put by the test, taken in order by the prepare stage."""

    def __init__(self) -> None:
        self._items: deque[Frame | Reading] = deque()
        self._cond = threading.Condition()
        self._seq = 0
        self.closed = False

    @property
    def finished(self) -> bool:
        return self.closed

    def put(self, image: np.ndarray) -> int:
        """Queue one image as the next frame; its sequence number."""
        with self._cond:
            self._seq += 1
            self._items.append(Frame(image, time.monotonic(), self._seq, "feed"))
            self._cond.notify_all()
            return self._seq

    def put_readings(self, count: int) -> None:
        """Queue ``count`` sensor readings at once (a burst), numbered on from the last item."""
        with self._cond:
            for _ in range(count):
                self._seq += 1
                self._items.append(Reading((float(self._seq),), time.monotonic(), self._seq))
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def get(self, timeout: float | None = None) -> Frame | Reading | None:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def stats(self) -> dict[str, int]:
        return {"produced": self._seq, "dropped": 0, "errors": 0}

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
