"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

A Raspberry Pi loses power without warning; after a crash a file written through here is either
the old content or the new content, never a mix or an empty file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new file) to stable storage."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(directory: Path) -> Path:
    """Create ``directory`` (and parents) mode 0700; narrow an existing one to 0700."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if directory.stat().st_mode & 0o077:
        os.chmod(directory, PRIVATE_DIR)
    return directory


def private_file(path: Path) -> Path:
    """Create ``path`` empty and mode 0600 if it does not exist; narrow an existing one to 0600.

    For files another library creates and writes (SQLite): SQLite gives its ``-wal`` and
    ``-shm`` files the mode of the database file, so creating that 0600 first covers them.
    """
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Raises ``OSError`` (for example ``ENOSPC``) without touching the existing file.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(directory)


def read_capped(path: Path, max_bytes: int) -> bytes:
    """Read a whole file, refusing one larger than ``max_bytes`` before reading it.

    Raises ``ValueError`` naming the size when the file is too large.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{path} is {size} bytes, more than the limit of {max_bytes}")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path} grew past the limit of {max_bytes} bytes while being read")
    return data
