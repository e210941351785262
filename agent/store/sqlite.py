"""SQLite helpers for the outbox: the transaction context, the ``meta`` table, the boot id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id(path: Path = BOOT_ID) -> int:
    """This boot of the kernel as a number (0 when unknown): a killed process sees the same one
    on restart, a power cut or a kernel crash a new one."""
    try:
        return int(path.read_text().strip().replace("-", "")[:15], 16)
    except (OSError, ValueError):
        return 0


def get_meta(db: sqlite3.Connection, key: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def set_meta(db: sqlite3.Connection, key: str, value: int) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; optionally with synchronous=FULL."""

    def __init__(self, db: sqlite3.Connection, full: bool) -> None:
        self._db = db
        self._full = full

    def __enter__(self) -> None:
        if self._full:
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._commit()
            elif self._db.in_transaction:
                self._db.execute("ROLLBACK")
        finally:
            if self._full:
                self._db.execute("PRAGMA synchronous=NORMAL")

    def _commit(self) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
