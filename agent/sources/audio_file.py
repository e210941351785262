"""Recordings: one WAV/FLAC/OGG file, or a folder where new recordings appear (soundfile).

A file is read in blocks in the reader thread; ``realtime`` paces it at its own rate (as a
microphone would deliver it), otherwise it is read as fast as inference takes the blocks and
nothing is dropped. ``loop`` reads it again from the start (a new stream: windows restart).

A folder is polled: a file is taken once its size and mtime are unchanged between two scans (so
a recorder still writing it is left alone), oldest first, each once; hidden files and other
extensions are ignored. A file that cannot be decoded is counted (``error.bad_audio``) and
skipped. Each recording's window times are offsets into it; its wall-clock start is taken as its
mtime minus its duration (a recorder closes the file at the end of the recording).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.pipeline.audio import to_mono
from agent.sources.audio import (
    DEFAULT_BLOCK_S,
    DEFAULT_QUEUE_S,
    ThreadedAudioSource,
    block_frames,
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def _soundfile() -> Any:
    try:
        import soundfile
    except (ImportError, OSError) as exc:
        raise ConfigError(
            "source.type",
            f"audio files need the soundfile package (pip install 'edge-agent[audio]'): {exc}",
        ) from None
    return soundfile


class AudioFileSource(ThreadedAudioSource):
    """Blocks of a recording, or of each new recording in a folder."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        loop: bool = False,
        realtime: bool = False,
        block_s: float = DEFAULT_BLOCK_S,
        poll_s: float = 1.0,
        extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    ) -> None:
        self._sf = _soundfile()
        self.path = Path(path)
        self.loop = loop
        self.realtime = realtime and not self.path.is_dir()  # a folder: as fast as it can
        self.block_s = block_s
        self.poll_s = poll_s
        self.extensions = tuple(e.lower() for e in extensions)
        self._seen: dict[str, tuple[int, float]] = {}
        self._pending: dict[str, tuple[int, float]] = {}
        live = realtime or self.path.is_dir()
        # Offline reading blocks the reader instead of dropping: about one minute of blocks.
        size = round((DEFAULT_QUEUE_S if live else 60.0) / block_s)
        super().__init__(f"audio:{self.path.name}", queue_blocks=size, block=not realtime)
        self.start()

    def _run(self) -> None:
        if self.path.is_dir():
            while not self._stop.is_set():
                for name in self._ready_files():
                    if not self._play(self.path / name):
                        return
                if self._wait(self.poll_s):
                    return
            return
        while self._play(self.path) and self.loop:
            pass

    def _ready_files(self) -> list[str]:
        """Files whose size and mtime held still since the last scan, oldest first."""
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            self.health.bad("scan_failed", f"cannot list {self.path}: {exc.strerror}")
            return []
        found: dict[str, tuple[int, float]] = {}
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(self.extensions):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.is_file():
                found[entry.name] = (st.st_size, st.st_mtime)
        ready = [
            name
            for name, sig in found.items()
            if self._pending.get(name) == sig and self._seen.get(name) != sig
        ]
        self._pending = found
        ready.sort(key=lambda n: (found[n][1], n))
        for name in ready:
            self._seen[name] = found[name]
        return ready

    def _play(self, path: Path) -> bool:
        """Read one recording into the queue; False once the source is closing."""
        try:
            handle = self._sf.SoundFile(str(path))
        except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            self.health.bad("bad_audio", f"cannot decode {path.name}: {exc}")
            return self.path.is_dir()  # a folder goes on with the next file; a file is done
        with handle:
            rate = int(handle.samplerate)
            frames = block_frames(rate, self.block_s)
            duration = handle.frames / rate if handle.frames > 0 else 0.0
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = time.time()
            stream = self._new_stream()
            started = time.monotonic()
            wall0 = time.time() if self.realtime else mtime - duration
            offset = 0
            while not self._stop.is_set():
                try:
                    data = handle.read(frames, dtype="float32", always_2d=True)
                except (RuntimeError, OSError) as exc:
                    self.health.bad("bad_audio", f"{path.name} cannot be read on: {exc}")
                    return True
                if len(data) == 0:
                    return True
                samples = to_mono(data)
                if self.realtime:
                    due = started + (offset + len(samples)) / rate
                    if self._wait(max(0.0, due - time.monotonic())):
                        return False
                block = self._block(
                    samples, rate, offset, stream, wall0=wall0, t=time.monotonic(), file=path.name
                )
                if not self._emit(block):
                    return False
                offset += len(samples)
        return False
