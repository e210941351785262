"""Raw PCM from a FIFO, a file or stdin: what ``arecord -t raw`` (or ``ffmpeg -f s16le``) writes.

The format is not in the bytes, so it comes from the config: ``sample_format`` (``s16le``,
``s32le`` or ``f32le``), ``sample_rate`` and ``channels`` (mixed down to mono). ``path = "-"``
reads the agent's stdin. A FIFO stays open when its writer goes away and waits for the next one
(a new stream: windows restart), so a writer restarting at once loses nothing; stdin or a regular
file at its end finishes the source.

The reader applies back-pressure instead of dropping: when inference falls behind, the pipe
fills and the writer waits (``arecord`` then counts its own overruns), so the windows the agent
sees are always contiguous audio.
"""

from __future__ import annotations

import os
import select
import stat
import time

import numpy as np

from agent.pipeline.audio import PcmDecoder, SampleFormat
from agent.sources.audio import DEFAULT_BLOCK_S, ThreadedAudioSource, block_frames

STDIN = "-"
_READ_BYTES = 65536


class PcmStreamSource(ThreadedAudioSource):
    """Blocks of raw interleaved PCM read from ``path`` (a FIFO, a file, or ``-`` for stdin)."""

    def __init__(
        self,
        path: str,
        *,
        sample_format: SampleFormat,
        rate: int,
        channels: int = 1,
        block_s: float = DEFAULT_BLOCK_S,
        poll_s: float = 0.05,
    ) -> None:
        self.path = path
        self.rate = rate
        self._decoder = PcmDecoder(sample_format, channels)
        self._frames = block_frames(rate, block_s)
        self._poll = poll_s
        name = "stdin" if path == STDIN else os.path.basename(path)
        super().__init__(f"pcm:{name}", queue_blocks=round(30.0 / block_s), block=True)
        self.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self._open()
            if fd is None:
                if self._wait(self._retry_delay()):
                    return
                continue
            self._backoff.reset()
            try:
                fifo = stat.S_ISFIFO(os.fstat(fd).st_mode) and self.path != STDIN
                ended = self._pump(fd)
                while fifo and ended == "eof":  # the FIFO stays open for the next writer
                    ended = self._pump(fd)
            finally:
                if self.path != STDIN:
                    os.close(fd)
            if ended != "error":
                return

    def _open(self) -> int | None:
        if self.path == STDIN:
            os.set_blocking(0, False)
            return 0
        try:
            return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self.health.bad("open_failed", f"cannot open {self.path}: {exc.strerror}")
            return None

    def _pump(self, fd: int) -> str:
        """Read one writer's stream: ``eof`` at its end, ``error``, or ``stop`` when closing."""
        self._decoder.reset()
        stream = self._new_stream()
        offset = 0
        wall0: float | None = None
        pending = np.zeros(0, dtype=np.float32)
        writer_seen = False
        while not self._stop.is_set():
            readable, _, _ = select.select([fd], [], [], self._poll)
            if not readable:
                continue
            try:
                data = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                self.health.bad("read_failed", f"read from {self.path} failed: {exc.strerror}")
                return "error"
            if not data:
                if not writer_seen and stat.S_ISFIFO(os.fstat(fd).st_mode):
                    self._wait(self._poll)  # no writer (yet): a FIFO reads as at its end
                    continue
                if len(pending) and wall0 is not None:  # the writer's last, short block
                    last = self._block(
                        pending, self.rate, offset, stream, wall0=wall0, t=time.monotonic()
                    )
                    return "eof" if self._emit(last) else "stop"
                return "eof"
            writer_seen = True
            samples = self._decoder.feed(data)
            if wall0 is None and len(samples):
                wall0 = time.time() - len(samples) / self.rate
            pending = np.concatenate((pending, samples))
            while len(pending) >= self._frames:
                block, pending = pending[: self._frames], pending[self._frames :]
                assert wall0 is not None
                item = self._block(
                    block, self.rate, offset, stream, wall0=wall0, t=time.monotonic()
                )
                if not self._emit(item):
                    return "stop"
                offset += len(block)
        return "stop"
