"""What audio sources yield, and the reader thread they share.

Every audio source runs one reader thread that turns its input (a recording, raw PCM on a FIFO
or stdin, a microphone) into :class:`AudioBlock` items: mono float32 samples at the source's own
rate, short enough (``block_s``) that a window falls due at most once per block. The blocks wait
in a bounded queue: a live source drops the oldest (counted) when inference falls behind, a file
read as fast as inference allows blocks the reader instead, so nothing is dropped. Windows are
cut and resampled in the consumer (:mod:`agent.pipeline.audio`), never here.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from agent.backoff import Backoff
from agent.sources.base import SourceHealth

logger = logging.getLogger(__name__)

DEFAULT_BLOCK_S = 0.1
#: Seconds of audio a live source keeps waiting for inference before dropping the oldest.
DEFAULT_QUEUE_S = 30.0


@dataclass(frozen=True)
class AudioBlock:
    """Consecutive mono samples of one stream.

    ``offset`` is the index of the first sample in its stream; ``stream`` changes when a new
    recording, FIFO writer or microphone connection begins. ``stream_wall`` is the wall-clock
    time of the stream's sample 0 (for a recording file: its mtime minus its duration). ``t`` is
    ``time.monotonic()`` when the block's last sample arrived.
    """

    samples: np.ndarray
    rate: int
    offset: int
    stream: int
    stream_wall: float
    t: float
    seq: int
    source: str = ""
    file: str = ""


def block_frames(rate: int, block_s: float) -> int:
    return max(1, round(rate * block_s))


class BlockQueue:
    """A bounded FIFO of blocks. ``block=False``: the oldest is dropped (and counted) when full;
    ``block=True``: ``put`` waits for room instead."""

    def __init__(self, size: int, *, block: bool = False) -> None:
        self._items: deque[AudioBlock] = deque()
        self._size = max(1, size)
        self._block = block
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, item: AudioBlock) -> bool:
        with self._cond:
            while self._block and len(self._items) >= self._size and not self.closed:
                self._cond.wait()
            if self.closed:
                return False
            if len(self._items) >= self._size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None) -> AudioBlock | None:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            item = self._items.popleft() if self._items else None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def empty(self) -> bool:
        with self._cond:
            return not self._items

    def wake(self) -> None:
        """Wake a consumer waiting in ``take`` (the producer has finished)."""
        with self._cond:
            self._cond.notify_all()


class ThreadedAudioSource:
    """Base for the audio adapters: a reader thread (``_run``) feeding a :class:`BlockQueue`.

    ``finished`` turns true when the reader has nothing more to give (a recording read to its
    end without ``loop``) and the queue is empty, or after ``close``.
    """

    def __init__(self, name: str, *, queue_blocks: int, block: bool) -> None:
        self.name = name
        self.health = SourceHealth(name, logger)
        self._queue = BlockQueue(queue_blocks, block=block)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._streams = 0
        self._backoff = Backoff()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self._stop.is_set() or (self._done.is_set() and self._queue_empty())

    def _queue_empty(self) -> bool:
        return self._queue.empty()

    def get(self, timeout: float | None = None) -> AudioBlock | None:
        if self._done.is_set() and self._queue_empty():
            return None
        return self._queue.take(timeout)

    def stats(self) -> dict[str, int]:
        return self.health.stats(self._queue.dropped)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._queue.close()  # readers poll with timeouts, so they notice within ~0.2 s
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            self._run()
        except Exception:  # a bug in a reader must not kill the agent silently
            logger.exception("audio source %s failed", self.name)
            self.health.bad("reader_failed", "the reader thread failed (see the log)")
        finally:
            self._done.set()
            self._queue.wake()

    def _run(self) -> None:
        raise NotImplementedError

    def _new_stream(self) -> int:
        self._streams += 1
        return self._streams

    def _emit(self, block: AudioBlock) -> bool:
        """Queue ``block``; False once the source is closing."""
        return self._queue.put(block)

    def _block(
        self,
        samples: np.ndarray,
        rate: int,
        offset: int,
        stream: int,
        *,
        wall0: float,
        t: float,
        file: str = "",
    ) -> AudioBlock:
        """A block of this source, numbered; ``t`` is when its last sample arrived."""
        return AudioBlock(
            samples, rate, offset, stream, wall0, t, self.health.next_seq(), self.name, file
        )

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        return self._stop.wait(seconds)

    def _retry_delay(self) -> float:
        return self._backoff.next_delay()
