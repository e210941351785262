"""Audio samples to model windows (pure): PCM decoding, overlapping windows, resampling.

A source hands over blocks of mono float32 samples at its own rate, each with its offset in the
stream (a stream is one recording, one FIFO writer or one microphone connection). The
:class:`AudioWindower` cuts windows of ``window`` samples every ``hop`` samples out of one stream
and says where each lies (start and end sample); a gap in the offsets (blocks dropped before the
consumer took them) or a new stream starts afresh, so no window spans missing audio.
:func:`resample` brings a window to the model's rate with soxr (the ``audio`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from agent.errors import InputError

SampleFormat = Literal["s16le", "s32le", "f32le"]
SAMPLE_FORMATS: tuple[str, ...] = ("s16le", "s32le", "f32le")
_DTYPES: dict[str, tuple[str, float]] = {
    "s16le": ("<i2", 1.0 / 32768.0),
    "s32le": ("<i4", 1.0 / 2147483648.0),
    "f32le": ("<f4", 1.0),
}
#: Windows waiting behind the consumer before the oldest are skipped (counted).
MAX_BACKLOG_WINDOWS = 8
_NO_STREAM = object()


def bytes_per_frame(fmt: SampleFormat, channels: int) -> int:
    return int(np.dtype(_DTYPES[fmt][0]).itemsize) * channels


def to_mono(frames: np.ndarray) -> np.ndarray:
    """``n x channels`` (or ``n``) samples to ``n`` float32 samples: the mean of the channels."""
    if frames.ndim == 1:
        return frames.astype(np.float32, copy=False)
    if frames.shape[1] == 1:
        return frames[:, 0].astype(np.float32, copy=False)
    mono: np.ndarray = frames.mean(axis=1, dtype=np.float32)
    return mono


class PcmDecoder:
    """Raw interleaved PCM bytes to mono float32 in ``[-1, 1)``, keeping a partial frame."""

    def __init__(self, fmt: SampleFormat, channels: int) -> None:
        if fmt not in _DTYPES:
            raise InputError(f"unknown sample format {fmt!r}; one of {', '.join(SAMPLE_FORMATS)}")
        if channels < 1:
            raise InputError("channels must be at least 1")
        self.dtype, self.scale = np.dtype(_DTYPES[fmt][0]), np.float32(_DTYPES[fmt][1])
        self.channels = channels
        self.frame_bytes = bytes_per_frame(fmt, channels)
        self._rest = b""

    def feed(self, data: bytes) -> np.ndarray:
        """The mono samples of every whole frame in ``self._rest + data``."""
        data = self._rest + data
        whole = len(data) - len(data) % self.frame_bytes
        self._rest = data[whole:]
        raw = np.frombuffer(data[:whole], dtype=self.dtype).reshape(-1, self.channels)
        samples = raw.astype(np.float32)
        if self.scale != 1.0:
            samples *= self.scale
        mono = to_mono(samples)
        if self.dtype.kind == "f":
            mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
        return mono

    def reset(self) -> None:
        self._rest = b""


@dataclass(frozen=True)
class AudioWindow:
    """``samples`` of one window and where it lies in its stream (sample indices, seconds)."""

    samples: np.ndarray
    start: int
    end: int
    rate: int

    @property
    def start_s(self) -> float:
        return self.start / self.rate

    @property
    def end_s(self) -> float:
        return self.end / self.rate


class AudioWindower:
    """Windows of ``window`` samples every ``hop`` samples of one stream at ``rate``.

    The first window ends at sample ``window``; the next ``hop`` samples later. ``push`` returns
    at most one window; windows that fall due together (a block longer than the hop) come out on
    the following pushes, and more than :data:`MAX_BACKLOG_WINDOWS` behind are skipped
    (``skipped`` counts them). ``gaps`` counts streams restarted because samples were missing.
    """

    def __init__(self, rate: int, window: int, hop: int) -> None:
        if rate < 1 or window < 1 or hop < 1:
            raise InputError("audio rate, window and hop must be at least 1 sample")
        self.rate, self.window, self.hop = rate, window, hop
        self.skipped = 0
        self.gaps = 0
        self._stream: object = _NO_STREAM
        self.reset()

    @property
    def position(self) -> int:
        """The stream index the next block is expected to start at."""
        return self._expected

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # stream index of _buffer[0]
        self._next_end = self.window
        self._expected = 0

    def push(self, samples: np.ndarray, offset: int, stream: object = None) -> AudioWindow | None:
        """Add a block that starts at sample ``offset`` of ``stream``; a window when one is due."""
        if stream != self._stream:
            self._stream = stream
            self.reset()
            self._buffer_start = self._expected = offset
            self._next_end = offset + self.window
        elif offset != self._expected:
            self.gaps += 1
            self.reset()
            self._buffer_start = self._expected = offset
            self._next_end = offset + self.window
        self._buffer = np.concatenate((self._buffer, samples.astype(np.float32, copy=False)))
        self._expected = offset + len(samples)
        return self._take()

    def _take(self) -> AudioWindow | None:
        behind = (self._expected - self._next_end) // self.hop
        if behind > MAX_BACKLOG_WINDOWS:
            self.skipped += behind - MAX_BACKLOG_WINDOWS
            self._next_end += (behind - MAX_BACKLOG_WINDOWS) * self.hop
        if self._expected < self._next_end:
            self._trim(self._next_end - self.window)
            return None
        start = self._next_end - self.window
        lo = start - self._buffer_start
        chunk = self._buffer[lo : lo + self.window].copy()
        window = AudioWindow(chunk, start, self._next_end, self.rate)
        self._next_end += self.hop
        self._trim(self._next_end - self.window)
        return window

    def _trim(self, keep_from: int) -> None:
        cut = keep_from - self._buffer_start
        if cut > 0:
            self._buffer = self._buffer[cut:]
            self._buffer_start = keep_from


def resample(samples: np.ndarray, rate: int, target: int, length: int) -> np.ndarray:
    """``samples`` at ``rate`` as exactly ``length`` samples at ``target`` (soxr, high quality).

    soxr may give one sample more or less than ``length``; the end is padded with zeros or cut.
    """
    if rate == target:
        out = samples
    else:
        import soxr  # the `audio` extra; only audio models need it

        out = np.asarray(soxr.resample(samples, rate, target), dtype=np.float32)
    if len(out) == length:
        return out
    if abs(len(out) - length) > max(2, length // 100):
        raise InputError(
            f"an audio window of {len(samples)} samples at {rate} Hz is {len(out)} samples at "
            f"{target} Hz; the model input needs {length}"
        )
    if len(out) > length:
        return out[:length]
    return np.concatenate((out, np.zeros(length - len(out), dtype=np.float32)))
