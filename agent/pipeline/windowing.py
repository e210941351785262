"""Sensor readings to model windows (pure): the last ``length`` readings, every ``hop``."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from agent.errors import InputError


class WindowError(InputError):
    """A reading does not fit the window; ``kind`` names the failure for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Windower:
    """Turns readings into ``length x features`` windows, one every ``hop`` readings.

    A window (the last ``length`` readings) is emitted every ``hop`` readings once at least
    ``length`` have arrived; the first after ``max(length, hop)`` readings.
    """

    def __init__(self, length: int, features: int, hop: int | None = None) -> None:
        if length < 1 or features < 1:
            raise InputError("window length and features must be at least 1")
        self.length = length
        self.features = features
        self.hop = hop or length
        if self.hop < 1:
            raise InputError("window hop must be at least 1")
        self._rows: deque[Sequence[float]] = deque(maxlen=length)
        self._since = 0

    def push(self, values: Sequence[float]) -> np.ndarray | None:
        """Add one reading; return a float32 window when one is due."""
        if len(values) != self.features:
            raise WindowError(
                "wrong_width", f"reading has {len(values)} values, window needs {self.features}"
            )
        self._rows.append(values)
        self._since += 1
        if len(self._rows) < self.length or self._since < self.hop:
            return None
        self._since = 0
        return np.asarray(self._rows, dtype=np.float32)

    def reset(self) -> None:
        self._rows.clear()
        self._since = 0
