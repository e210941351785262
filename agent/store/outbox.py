"""A durable queue of results waiting for the broker's PUBACK: SQLite in WAL mode.

Threading: the SQLite connection belongs to the thread that opened the outbox (the service
thread); sqlite3's ``check_same_thread`` enforces it. The paho thread never touches the outbox:
it only puts ``Published`` events on a queue that the service thread feeds to :meth:`ack`.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A commit survives the agent being
killed (the WAL is in the OS page cache); only a power loss or kernel crash can roll back the last
commits, and never corrupts the file. FULL would fsync the WAL on every result (milliseconds on an
SD card, on the frame->publish path). Sequence numbers still never repeat after a power loss: they
are reserved in blocks, and the reservation is committed with ``synchronous=FULL``. After an
unclean stop the counter resumes after the reserved block, so subscribers see a gap there, never
a reused number.

Bounds: total payload bytes and age; the oldest items are dropped first and counted (persisted).
The byte bound is kept in memory and enforced on every insert. The age bound is checked at most
once per ``age_check_s`` (1 s) while enqueueing, and walks rows in sequence order only as far as
they are expired, so an insert costs the same with an empty queue or a large outage backlog.

Per result the service thread writes one row in one transaction (``BEGIN IMMEDIATE``,
``INSERT``, ``COMMIT``: one WAL page); ``last_seq`` is recorded on a clean close only, since an
unclean stop resumes after the reserved block anyway.

Historical means "not delivered in real time": rows left from a previous run (flagged when the
outbox opens), rows queued or in flight when a connection is lost (:meth:`mark_backlog`), rows
enqueued while there is no connection (``live`` is false), and rows re-sent because their PUBACK
never came. The forwarder rebuilds their payload with ``"historical": true`` when it sends them.
A row is deleted only on PUBACK, so a result may be delivered twice (same ``seq``), never silently
lost within the bounds.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import EdgeError
from agent.fsutil import private_file
from agent.mqtt.messages import OutboxStats
from agent.reasons import Reason

_log = logging.getLogger(__name__)

_SIDE = ("-wal", "-shm", "-journal")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    historical INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(EdgeError):
    """The outbox could not store or update an item (disk full, I/O error, item too large)."""

    code = Reason.OUTBOX


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    topic: str
    payload: bytes
    created: float
    historical: bool


class Outbox:
    """Durable FIFO of ``(seq, topic, payload)`` deleted on acknowledgement."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600.0,
        seq_block: int = 1000,
        clock: Callable[[], float] = time.time,
        age_check_s: float = 1.0,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0 or seq_block <= 0:
            raise ValueError("outbox bounds must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._seq_block = seq_block
        self._clock = clock
        self._age_check_s = age_check_s
        self._next_age_check = float("-inf")
        for private in (self.path, *(self.path.with_name(self.path.name + s) for s in _SIDE)):
            if private == self.path or private.exists():
                private_file(private)  # before SQLite opens them: the queue is device data
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self._inflight: dict[int, tuple[int, float]] = {}  # seq -> (token, sent at, monotonic)
        self._by_token: dict[int, int] = {}
        self.write_errors = 0
        self.live = True  # the forwarder clears this while there is no connection
        self._open()

    # -- opening and closing ------------------------------------------------------------------

    def _open(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{self.path}: cannot use WAL journal mode (got {mode})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        last = self._meta("last_seq")
        reserved = self._meta("seq_reserved")
        clean = self._meta("clean") == 1
        self._next_seq = last + 1 if clean else max(last, reserved) + 1
        self._reserved = reserved if clean else self._next_seq - 1
        self._dropped = self._meta("dropped")
        with self._transaction(full=True):
            self._set_meta("clean", 0)
            self._db.execute("UPDATE items SET historical = 1 WHERE historical = 0")
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM items")
        self._depth, self._bytes = (int(v) for v in row.fetchone())

    def close(self) -> None:
        """Record a clean stop (so the sequence continues without a gap) and close."""
        try:
            with self._transaction(full=True):
                self._set_meta("last_seq", self._next_seq - 1)
                self._set_meta("clean", 1)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            _log.warning("outbox %s: clean close not recorded: %s", self.path, exc)
        finally:
            self._db.close()

    # -- producing ------------------------------------------------------------------------------

    def enqueue(self, topic: str, make_payload: Callable[[int], bytes]) -> int:
        """Assign the next sequence number, build the payload with it, store both durably."""
        seq = self._next_seq
        payload = make_payload(seq)
        if len(payload) > self.max_bytes:
            raise OutboxError(f"item of {len(payload)} bytes exceeds the outbox bound")
        now = self._clock()
        check_age = now >= self._next_age_check
        try:
            if seq > self._reserved:
                self._reserve(seq)
            with self._transaction():
                self._db.execute(
                    "INSERT INTO items (seq, topic, payload, created, historical) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (seq, topic, payload, now, int(not self.live)),
                )
                dropped: list[tuple[int, int]] = []
                if check_age or self._bytes + len(payload) > self.max_bytes:
                    dropped = self._evict(extra_bytes=len(payload), check_age=check_age)
        except sqlite3.Error as exc:
            raise self._write_failed("store result", exc) from None
        self._next_seq = seq + 1
        if check_age:
            self._next_age_check = now + self._age_check_s
        self._depth += 1
        self._bytes += len(payload)
        self._apply_drops(dropped)
        return seq

    def _reserve(self, seq: int) -> None:
        with self._transaction(full=True):
            self._set_meta("seq_reserved", seq + self._seq_block - 1)
        self._reserved = seq + self._seq_block - 1

    def _evict(self, extra_bytes: int = 0, *, check_age: bool = True) -> list[tuple[int, int]]:
        """Inside a transaction: drop expired rows, then oldest rows over the byte bound.

        Expired rows are found oldest first and the walk stops at the first row still young
        (rows are created in sequence order; after a wall-clock step back a few rows may expire
        one check late)."""
        rows = self._expired(self._clock() - self.max_age_s) if check_age else []
        over = self._bytes + extra_bytes - sum(size for _seq, size in rows) - self.max_bytes
        if over > 0:
            floor = rows[-1][0] if rows else 0
            for seq, size in self._db.execute(
                "SELECT seq, LENGTH(payload) FROM items WHERE seq > ? ORDER BY seq", (floor,)
            ):
                if over <= 0:
                    break
                rows.append((seq, size))
                over -= size
        if rows:
            self._db.executemany("DELETE FROM items WHERE seq = ?", [(seq,) for seq, _ in rows])
            self._set_meta("dropped", self._dropped + len(rows))
        return rows

    def _expired(self, cutoff: float) -> list[tuple[int, int]]:
        rows = []
        for seq, size, created in self._db.execute(
            "SELECT seq, LENGTH(payload), created FROM items ORDER BY seq"
        ):
            if created >= cutoff:
                break
            rows.append((seq, size))
        return rows

    def _apply_drops(self, rows: list[tuple[int, int]]) -> None:
        """After the commit: the in-memory view follows what the database now holds."""
        if not rows:
            return
        for seq, _size in rows:
            self._forget(seq)
        self._dropped += len(rows)
        self._depth -= len(rows)
        self._bytes -= sum(size for _seq, size in rows)
        _log.warning("outbox over its bounds: dropped %s oldest result(s)", len(rows))

    def expire(self) -> int:
        """Drop rows older than the age bound now; return how many."""
        try:
            with self._transaction():
                dropped = self._evict()
        except sqlite3.Error as exc:
            raise self._write_failed("expire results", exc) from None
        self._apply_drops(dropped)
        return len(dropped)

    # -- forwarding -----------------------------------------------------------------------------

    def next_batch(self, limit: int) -> list[OutboxItem]:
        """Up to ``limit`` oldest items that are not in flight."""
        if limit <= 0:
            return []
        rows = self._db.execute(
            "SELECT seq, topic, payload, created, historical FROM items ORDER BY seq LIMIT ?",
            (limit + len(self._inflight),),
        ).fetchall()
        items = [
            OutboxItem(seq, topic, bytes(payload), created, bool(historical))
            for seq, topic, payload, created, historical in rows
            if seq not in self._inflight
        ]
        return items[:limit]

    def mark_sent(self, seq: int, token: int) -> None:
        """Remember that ``seq`` was handed to the client as message ``token``."""
        self._forget(seq)
        self._inflight[seq] = (token, time.monotonic())
        self._by_token[token] = seq

    def ack(self, token: int) -> bool:
        """PUBACK for ``token``: delete its item. False if unknown (not ours, or dropped)."""
        return self.ack_many([token]) == 1

    def ack_many(self, tokens: list[int]) -> int:
        """PUBACKs for ``tokens``, deleted in one transaction; return how many rows went."""
        seqs = [seq for token in tokens if (seq := self._by_token.pop(token, None)) is not None]
        if not seqs:
            return 0
        for seq in seqs:
            self._inflight.pop(seq, None)
        deleted: list[int] = []
        try:
            with self._transaction():
                for seq in seqs:
                    cursor = self._db.execute(
                        "DELETE FROM items WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
                    )
                    deleted.extend(int(size) for (size,) in cursor.fetchall())
        except sqlite3.Error as exc:
            raise self._write_failed("delete acknowledged results", exc) from None
        self._depth -= len(deleted)
        self._bytes -= sum(deleted)
        return len(deleted)

    def release_inflight(self) -> int:
        """The connection ended: nothing in flight will be acknowledged; send it again later."""
        count = len(self._inflight)
        self._inflight.clear()
        self._by_token.clear()
        return count

    def release_stale(self, older_than_s: float) -> int:
        """Forget in-flight items sent more than ``older_than_s`` ago (a PUBACK went missing)."""
        limit = time.monotonic() - older_than_s
        stale = [seq for seq, (_token, sent) in self._inflight.items() if sent < limit]
        if not stale:
            return 0
        try:
            with self._transaction():
                self._db.executemany(
                    "UPDATE items SET historical = 1 WHERE seq = ?", [(seq,) for seq in stale]
                )
        except sqlite3.Error as exc:
            raise self._write_failed("flag re-sent results", exc) from None
        for seq in stale:
            self._forget(seq)
        return len(stale)

    def mark_backlog(self) -> None:
        """Flag every queued row historical: the connection it was meant for is gone."""
        try:
            with self._transaction():
                self._db.execute("UPDATE items SET historical = 1 WHERE historical = 0")
        except sqlite3.Error as exc:
            raise self._write_failed("flag backlog", exc) from None

    # -- state ----------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def stats(self) -> OutboxStats:
        return OutboxStats(self._depth, self._bytes, self._dropped, self.write_errors)

    # -- helpers --------------------------------------------------------------------------------

    def _forget(self, seq: int) -> None:
        entry = self._inflight.pop(seq, None)
        if entry is not None:
            self._by_token.pop(entry[0], None)

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _write_failed(self, what: str, exc: sqlite3.Error) -> OutboxError:
        self.write_errors += 1
        # The caller logs it, once per minute per kind: a full disk at 50 fps must not flood.
        _log.debug("outbox %s: cannot %s: %s", self.path, what, exc)
        return OutboxError(f"outbox {self.path}: cannot {what}: {exc}")

    def _transaction(self, *, full: bool = False) -> _Transaction:
        return _Transaction(self._db, full)


class _Transaction:
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
