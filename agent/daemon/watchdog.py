"""When the service has earned a ``WATCHDOG=1`` ping: the definition of "progress" (pure).

systemd restarts the service when the pings stop (``WatchdogSec=``), so pinging must mean the
service is doing its job, not merely that a thread is alive. The loop asks :meth:`Progress.due`
once per turn; the ping is sent from the loop thread itself, so a loop stuck in an interpreter
call or a blocking read sends nothing. On top of "the loop turns", progress means:

- **Serving a live source** (camera, stream, video, or a sensor with ``source.stall_s`` set): an
  inference completed within the stall limit. A dead camera, a hung stream or a sensor FIFO
  that stops producing stops the pings, and systemd restarts the service. A paced source
  (``source.fps``) has its limit raised to three pace periods so slow pacing is not a stall.
- **Legitimately idle**: the loop turns and either no input is expected -- an event source
  (images directory, sensor, MQTT sensor) without ``source.stall_s``, a non-looping video
  that has ended -- or the service is in safe mode (state ``error``: no usable model or
  source; it publishes why and waits for a fix, and a restart would not help).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import SourceConfig

# A live source that delivers nothing for this long (seconds) is stalled, unless the config says.
DEFAULT_LIVE_STALL_S = 30.0
_LIVE_SOURCES = ("camera", "stream", "mjpeg_http", "video", "microphone")


def stall_limit_s(source: SourceConfig) -> float | None:
    """Seconds without a completed inference that count as a stall; None = quiet is fine."""
    limit = source.stall_s
    if limit is None and source.type in _LIVE_SOURCES:
        limit = DEFAULT_LIVE_STALL_S
    if not limit:
        return None
    if source.fps:
        limit = max(limit, 3.0 / source.fps)
    return limit


@dataclass
class Progress:
    """Tracks inference progress and says when the next watchdog ping is earned.

    ``interval_s`` is how often to ping (half systemd's timeout); ``stall_s`` is the stall limit
    from :func:`stall_limit_s`. Time is always passed in.
    """

    interval_s: float
    stall_s: float | None
    last_progress: float = 0.0
    _last_ping: float | None = None

    def start(self, now: float) -> None:
        """The service is starting (or the source was reopened): the stall clock restarts."""
        self.last_progress = now

    def inferred(self, now: float) -> None:
        """An inference completed."""
        self.last_progress = now

    def stalled(self, now: float, *, expecting_input: bool) -> bool:
        """True when a live source should have produced and has not."""
        if not expecting_input or self.stall_s is None:
            return False
        return now - self.last_progress > self.stall_s

    def due(self, now: float, *, expecting_input: bool) -> bool:
        """Whether to send ``WATCHDOG=1`` now (and, if so, record it as sent)."""
        if self.stalled(now, expecting_input=expecting_input):
            return False
        if self._last_ping is not None and now - self._last_ping < self.interval_s:
            return False
        self._last_ping = now
        return True
