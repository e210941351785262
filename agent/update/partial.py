"""The partial payload on disk: ``updates/<bid>.partial`` (preallocated) and its bitmap.

A block is written at its offset with ``pwrite``; its bit reaches the disk only after the data
does (``fsync`` of the partial file, then an atomic write of the bitmap), batched to at most one
flush per ``flush_s`` seconds or ``flush_blocks`` blocks. After a crash the bitmap may lack the
last few blocks (they are fetched again) but never claims a block that is not on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from agent.fsutil import atomic_write, fsync_dir, read_capped
from agent.update.transfer import Bitmap

log = logging.getLogger(__name__)

FLUSH_S = 0.5
FLUSH_BLOCKS = 16


class PartialPayload:
    """One bundle's payload being assembled. Not thread-safe: one updater thread owns it."""

    def __init__(
        self,
        directory: Path,
        bid: str,
        length: int,
        blocks: int,
        *,
        flush_s: float = FLUSH_S,
        flush_blocks: int = FLUSH_BLOCKS,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{bid}.partial"
        self.bitmap_path = self.directory / f"{bid}.bitmap"
        self.length = length
        self._flush_s = flush_s
        self._flush_blocks = flush_blocks
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.bitmap = self._open(blocks)
        self._fd = os.open(self.path, os.O_RDWR)
        self._unflushed = 0
        self._last_flush = 0.0

    def _open(self, blocks: int) -> Bitmap:
        """Resume from a consistent partial + bitmap, or start an empty preallocated file."""
        if self.path.exists() and self.path.stat().st_size == self.length:
            try:
                bitmap = Bitmap.from_bytes(read_capped(self.bitmap_path, 1 << 20), blocks)
            except (OSError, ValueError) as exc:
                log.info("starting %s afresh: no usable bitmap (%s)", self.path.name, exc)
            else:
                log.info("resuming %s: %s of %s blocks held", self.path.name, bitmap.count, blocks)
                return bitmap
        bitmap = Bitmap(blocks)
        atomic_write(self.bitmap_path, bitmap.to_bytes(), 0o600)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if self.length:
                os.posix_fallocate(fd, 0, self.length)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.directory)
        return bitmap

    def write(self, offset: int, data: bytes) -> None:
        written = os.pwrite(self._fd, data, offset)
        if written != len(data):
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        self._unflushed += 1

    def maybe_flush(self, now: float) -> None:
        """Persist the bitmap if enough blocks or time accumulated since the last flush."""
        if self._unflushed and (
            self._unflushed >= self._flush_blocks or now - self._last_flush >= self._flush_s
        ):
            self.flush(now)

    def flush(self, now: float) -> None:
        """Data first (fsync), then the bitmap that vouches for it (atomic write)."""
        os.fsync(self._fd)
        atomic_write(self.bitmap_path, self.bitmap.to_bytes(), 0o600)
        self._unflushed = 0
        self._last_flush = now

    def read(self) -> bytes:
        """The whole payload (call once every block is held)."""
        data = os.pread(self._fd, self.length, 0)
        if len(data) != self.length:
            raise OSError(f"{self.path} holds {len(data)} bytes, expected {self.length}")
        return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def discard(self) -> None:
        """Close and delete the partial file and its bitmap."""
        self.close()
        for path in (self.path, self.bitmap_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def discard_others(directory: Path, keep: str | None) -> None:
    """Delete partial transfers of bundles other than ``keep`` (a new desired bundle won)."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.suffix in (".partial", ".bitmap") and path.stem != keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
