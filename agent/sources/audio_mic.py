"""A microphone through PortAudio (the ``sounddevice`` package; on Linux PortAudio uses ALSA).

PortAudio delivers blocks to a callback on its own thread; the callback only mixes to mono and
queues (dropping the oldest block, counted, when inference falls behind). A monitor thread
watches the stream: when it fails to open, stops, or delivers nothing for ``stall_s`` (a USB
microphone pulled out), PortAudio is re-initialised (so a device plugged back in is found
again) and the stream reopened with backoff; each connection is a new stream, so no window
spans the gap. Input overflows PortAudio reports are counted as ``error.overflow``.

``device`` is a PortAudio device name (or a unique part of it, such as an ALSA PCM name from
``~/.asoundrc``), an index, or None for the system default.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.errors import ConfigError
from agent.pipeline.audio import to_mono
from agent.sources.audio import (
    DEFAULT_BLOCK_S,
    DEFAULT_QUEUE_S,
    ThreadedAudioSource,
    block_frames,
)

DEFAULT_STALL_S = 2.0


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise ConfigError(
            "source.type",
            "a microphone needs the sounddevice package and the PortAudio library "
            f"(pip install 'edge-agent[audio]'; apt-get install libportaudio2): {exc}",
        ) from None
    return sounddevice


class MicrophoneSource(ThreadedAudioSource):
    """Blocks captured from a microphone at ``rate`` with ``channels`` (mixed to mono)."""

    def __init__(
        self,
        device: str | int | None,
        *,
        rate: int,
        channels: int = 1,
        block_s: float = DEFAULT_BLOCK_S,
        stall_s: float = DEFAULT_STALL_S,
    ) -> None:
        self._sd = _sounddevice()
        self.device = device
        self.rate = rate
        self.channels = channels
        self._frames = block_frames(rate, block_s)
        self._stall_s = max(stall_s, 4 * block_s)
        self._last_block = 0.0
        self.connections = 0
        label = "default" if device is None else str(device)
        queue_blocks = round(DEFAULT_QUEUE_S / block_s)
        super().__init__(f"microphone:{label}", queue_blocks=queue_blocks, block=False)
        self.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = self._open()
            if stream is None:
                if self._wait(self._retry_delay()):
                    return
                self._rescan()
                continue
            try:
                self._watch(stream)
            finally:
                self._close(stream)
            if self._wait(self._retry_delay()):
                return
            self._rescan()

    def _open(self) -> Any:
        sd = self._sd
        stream_id = self._new_stream()
        state = {"offset": 0, "wall0": time.time()}

        def callback(indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
            if status and status.input_overflow:
                self.health.bad("overflow", "input overflow: samples were lost in capture")
            samples = to_mono(np.array(indata, dtype=np.float32, copy=True))
            now = time.monotonic()
            self._last_block = now
            block = self._block(
                samples, self.rate, int(state["offset"]), stream_id, wall0=state["wall0"], t=now
            )
            state["offset"] += len(samples)
            self._emit(block)

        try:
            stream = sd.InputStream(
                device=self.device,
                samplerate=self.rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self._frames,
                callback=callback,
            )
            state["wall0"] = time.time()
            self._last_block = time.monotonic()
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self.health.bad("open_failed", f"cannot open microphone {self.device}: {exc}")
            return None
        self.connections += 1
        self._backoff.reset()
        return stream

    def _watch(self, stream: Any) -> None:
        """Until closing, the stream stopping, or no block for ``stall_s``."""
        while not self._wait(min(0.2, self._stall_s / 4)):
            if not stream.active:
                self.health.bad("device_lost", f"microphone {self.device} stopped")
                return
            if time.monotonic() - self._last_block > self._stall_s:
                self.health.bad(
                    "device_lost", f"microphone {self.device} gave nothing for {self._stall_s}s"
                )
                return

    def _close(self, stream: Any) -> None:
        try:
            stream.abort()
            stream.close()
        except self._sd.PortAudioError as exc:
            self.health.bad("close_failed", f"closing microphone {self.device}: {exc}")

    def _rescan(self) -> None:
        """Re-initialise PortAudio so devices plugged in since are listed."""
        try:
            self._sd._terminate()
            self._sd._initialize()
        except self._sd.PortAudioError as exc:
            self.health.bad("rescan_failed", f"PortAudio re-initialisation failed: {exc}")
