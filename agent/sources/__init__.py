"""Input adapters: cameras, image directories and sensor streams.

Each source has ``get(timeout) -> item | None``, ``finished``, ``stats()`` and ``close()``; items
are :class:`Frame` (images) or :class:`Reading` (sensor samples) with a monotonic capture time and
a per-source sequence number. Bad input is counted per kind and never stops a source.
"""

from agent.backoff import Backoff
from agent.sources.base import ErrorCounter, Frame, LatestSlot, Reading, Source
from agent.sources.lines import LineError, LineFormat, LineSplitter, parse_line

__all__ = [
    "Backoff",
    "ErrorCounter",
    "Frame",
    "LatestSlot",
    "LineError",
    "LineFormat",
    "LineSplitter",
    "Reading",
    "Source",
    "parse_line",
]
