"""A durable queue of results waiting for the broker's PUBACK: SQLite in WAL mode.

The contract is in docs/reliability.md ("Durability of results"). Threading: the connection
belongs to the service thread (``check_same_thread``); paho's thread only queues ``Published``
events that the service thread feeds to :meth:`Outbox.ack_many`.

Group commit: :meth:`Outbox.enqueue` assigns the next ``seq`` and keeps the item in memory;
:meth:`Outbox.commit` writes all pending items in one transaction (``executemany``) with
``last_seq``, when ``commit_max`` are pending or :func:`commit_due` says so. Only committed rows
are offered to the forwarder: a result is published only once durable. A ``kill -9`` loses the
pending items (never published) and the next process continues after the committed
``last_seq``, so no number is skipped.

``synchronous=NORMAL``: a commit survives a killed process (the WAL is in the page cache); a
power cut may roll back the last commits, never corrupt the file. Numbers never repeat after one:
they are reserved in blocks committed with ``synchronous=FULL``, and a new kernel boot id on open
resumes after the block (a gap, never a reused number); the same boot resumes after ``last_seq``.

Bounds (bytes, age) drop the oldest rows first, counted persistently; enforced on every commit,
the age walk at most once per ``age_check_s`` and only over expired rows. PUBACKs are deleted
one transaction per step, one ``DELETE ... BETWEEN`` per run of consecutive numbers.

Historical means "not delivered in real time": rows left by a previous run, rows queued or in
flight when a connection is lost (:meth:`mark_backlog`), rows enqueued while not ``live`` and
rows re-sent after a missing PUBACK; the forwarder sends them with ``"historical": true``. A row
is deleted only on PUBACK: a result may arrive twice (same ``seq``), never silently lost.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from agent.errors import EdgeError
from agent.fsutil import private_file
from agent.mqtt.messages import OutboxStats
from agent.reasons import Reason
from agent.store.batching import commit_due, ranges
from agent.store.inflight import InFlight, OutboxItem, Tail
from agent.store.sqlite import Transaction, boot_id, get_meta, set_meta

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
_INSERT = "INSERT INTO items (seq, topic, payload, created, historical) VALUES (?, ?, ?, ?, ?)"


class OutboxError(EdgeError):
    """The outbox could not store or update an item (disk full, I/O error, item too large)."""

    code = Reason.OUTBOX


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
        commit_s: float = 0.005,
        commit_max: int = 1,
        boot: int | None = None,
    ) -> None:
        if max_bytes <= 0 or max_age_s <= 0 or seq_block <= 0 or commit_max <= 0 or commit_s < 0:
            raise ValueError("outbox bounds must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.commit_s = commit_s
        self.commit_max = commit_max
        self._seq_block = seq_block
        self._clock = clock
        self._age_check_s = age_check_s
        self._next_age_check = float("-inf")
        self._boot = boot_id() if boot is None else boot
        for private in (self.path, *(self.path.with_name(self.path.name + s) for s in _SIDE)):
            if private == self.path or private.exists():
                private_file(private)  # before SQLite opens them: the queue is device data
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        self._inflight = InFlight()
        self._tail = Tail()
        self._pending: list[tuple[int, str, bytes, float, int]] = []
        self._pending_bytes = 0
        self._first_pending = 0.0  # monotonic time the oldest pending item was enqueued
        self._last_enqueue = float("-inf")
        self._gap = float("inf")  # monotonic time between the last two enqueues
        self.write_errors = 0
        self.commits = 0
        self.live = True  # the forwarder clears this while there is no connection
        self._open()

    # -- opening and closing ------------------------------------------------------------------

    def _open(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{self.path}: cannot use WAL journal mode (got {mode})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        last = get_meta(self._db, "last_seq")
        reserved = get_meta(self._db, "seq_reserved")
        # Every commit since its open was kept if the last process died in this same boot.
        kept = get_meta(self._db, "clean") == 1 or (
            self._boot != 0 and get_meta(self._db, "boot") == self._boot
        )
        self._next_seq = last + 1 if kept else max(last, reserved) + 1
        self._reserved = max(reserved, last) if kept else self._next_seq - 1
        self._dropped = get_meta(self._db, "dropped")
        with self._transaction(full=True):
            set_meta(self._db, "clean", 0)
            set_meta(self._db, "boot", self._boot)
            self._db.execute("UPDATE items SET historical = 1 WHERE historical = 0")
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM items")
        self._depth, self._bytes = (int(v) for v in row.fetchone())

    def close(self) -> None:
        """Commit what is pending, record a clean stop and close."""
        try:
            self.commit()
        except OutboxError as exc:
            _log.warning("outbox %s: pending results lost on close: %s", self.path, exc)
        try:
            with self._transaction(full=True):
                set_meta(self._db, "last_seq", self._next_seq - 1)
                set_meta(self._db, "clean", 1)
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            _log.warning("outbox %s: clean close not recorded: %s", self.path, exc)
        finally:
            self._db.close()

    # -- producing ------------------------------------------------------------------------------

    def enqueue(self, topic: str, make_payload: Callable[[int], bytes]) -> int:
        """Assign the next sequence number and build the payload with it; the item is durable
        (and offered to the forwarder) once :meth:`commit` ran, which happens here when
        ``commit_max`` items are pending."""
        seq = self._next_seq
        payload = make_payload(seq)
        if len(payload) > self.max_bytes:
            raise OutboxError(f"item of {len(payload)} bytes exceeds the outbox bound")
        mono = time.monotonic()
        if not self._pending:
            self._first_pending = mono
        self._gap, self._last_enqueue = mono - self._last_enqueue, mono
        self._pending.append((seq, topic, payload, self._clock(), int(not self.live)))
        self._pending_bytes += len(payload)
        self._next_seq = seq + 1
        if len(self._pending) >= self.commit_max:
            self.commit()
        return seq

    def commit_due(self) -> bool:
        """Whether :meth:`commit` should run now (see :func:`commit_due`)."""
        if not self._pending:
            return False
        waited = time.monotonic() - self._first_pending
        return commit_due(len(self._pending), waited, self._gap, self.commit_max, self.commit_s)

    def commit(self) -> int:
        """Write every pending item in one transaction; return how many."""
        pending, self._pending = self._pending, []
        size, self._pending_bytes = self._pending_bytes, 0
        if not pending:
            return 0
        now = pending[-1][3]
        check_age = now >= self._next_age_check
        try:
            if pending[-1][0] > self._reserved:
                self._reserve(pending[-1][0])
            with self._transaction():
                self._db.executemany(_INSERT, pending)
                set_meta(self._db, "last_seq", pending[-1][0])
                dropped: list[tuple[int, int]] = []
                if check_age or self._bytes + size > self.max_bytes:
                    dropped = self._evict(extra_bytes=size, check_age=check_age)
        except sqlite3.Error as exc:
            self._next_seq = pending[0][0]  # never stored, never published: numbers reused
            raise self._write_failed(f"store {len(pending)} result(s)", exc) from None
        if check_age:
            self._next_age_check = now + self._age_check_s
        self.commits += 1
        self._depth += len(pending)
        self._tail.committed([OutboxItem(s, t, p, c, bool(h)) for s, t, p, c, h in pending])
        self._bytes += size
        self._apply_drops(dropped)
        return len(pending)

    def _reserve(self, seq: int) -> None:
        with self._transaction(full=True):
            set_meta(self._db, "seq_reserved", seq + self._seq_block - 1)
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
            set_meta(self._db, "dropped", self._dropped + len(rows))
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
        self._tail.forget()
        for seq, _size in rows:
            self._inflight.forget(seq)
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
        """Up to ``limit`` oldest committed items that are not in flight: from memory once
        caught up (:class:`~agent.store.inflight.Tail`), else reading only rows above the
        in-flight floor (:mod:`agent.store.inflight`)."""
        if limit <= 0:
            return []
        flight = self._inflight
        if self._tail.known:
            items = self._tail.items[:limit]
        else:
            most = limit + (flight.seqs if flight.mixed else 0)
            rows = self._db.execute(
                "SELECT seq, topic, payload, created, historical FROM items WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (flight.floor, most),
            ).fetchall()
            items = [
                OutboxItem(seq, topic, bytes(payload), created, bool(historical))
                for seq, topic, payload, created, historical in rows
                if seq not in flight
            ]
            if len(rows) < most and not flight.mixed:
                self._tail.caught_up(items)
            items = items[:limit]
        flight.offer([item.seq for item in items])
        return items

    def mark_sent(self, seq: int, token: int) -> None:
        """Remember that ``seq`` was handed to the client as message ``token``."""
        self.mark_sent_many([seq], token)

    def mark_sent_many(self, seqs: list[int], token: int) -> None:
        """Remember that ``seqs`` went out together as message ``token`` (a result batch)."""
        self._inflight.sent(seqs, token, time.monotonic())
        self._tail.sent(seqs)

    def ack(self, token: int) -> bool:
        """PUBACK for ``token``: delete its items. False if unknown (not ours, or dropped)."""
        return self.ack_many([token]) > 0

    def ack_many(self, tokens: list[int]) -> int:
        """PUBACKs for ``tokens``, deleted in one transaction with one statement per run of
        consecutive sequence numbers; return how many rows went."""
        seqs = self._inflight.acked(tokens)
        if not seqs:
            return 0
        deleted: list[int] = []
        try:
            with self._transaction():
                for first, last in ranges(seqs):
                    cursor = self._db.execute(
                        "DELETE FROM items WHERE seq BETWEEN ? AND ? RETURNING LENGTH(payload)",
                        (first, last),
                    )
                    deleted.extend(int(size) for (size,) in cursor.fetchall())
        except sqlite3.Error as exc:
            raise self._write_failed("delete acknowledged results", exc) from None
        self._depth -= len(deleted)
        self._bytes -= sum(deleted)
        return len(deleted)

    def release_inflight(self) -> int:
        """The connection ended: nothing in flight will be acknowledged; send it again later."""
        self._tail.forget()
        return self._inflight.release()

    def release_stale(self, older_than_s: float) -> int:
        """Forget in-flight items sent more than ``older_than_s`` ago (a PUBACK went missing)."""
        stale = self._inflight.stale(time.monotonic() - older_than_s)
        if not stale:
            return 0
        try:
            with self._transaction():
                self._db.executemany(
                    "UPDATE items SET historical = 1 WHERE seq = ?", [(seq,) for seq in stale]
                )
        except sqlite3.Error as exc:
            raise self._write_failed("flag re-sent results", exc) from None
        self._tail.forget()
        return self._inflight.release(stale)

    def mark_backlog(self) -> None:
        """Flag every queued row historical: the connection it was meant for is gone."""
        self._tail.forget()
        try:
            with self._transaction():
                self._db.execute("UPDATE items SET historical = 1 WHERE historical = 0")
        except sqlite3.Error as exc:
            raise self._write_failed("flag backlog", exc) from None

    # -- state ----------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages handed to the client and not yet acknowledged (a batch counts once)."""
        return self._inflight.messages

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def pending(self) -> int:
        """Items enqueued but not yet committed (not durable, not offered to the forwarder)."""
        return len(self._pending)

    def stats(self) -> OutboxStats:
        """Depth and bytes count pending items too: they are queued, only not yet durable."""
        depth, size = self._depth + len(self._pending), self._bytes + self._pending_bytes
        return OutboxStats(depth, size, self._dropped, self.write_errors)

    # -- helpers --------------------------------------------------------------------------------

    def _write_failed(self, what: str, exc: sqlite3.Error) -> OutboxError:
        self.write_errors += 1
        # The caller logs it, once per minute per kind: a full disk at 50 fps must not flood.
        _log.debug("outbox %s: cannot %s: %s", self.path, what, exc)
        return OutboxError(f"outbox {self.path}: cannot {what}: {exc}")

    def _transaction(self, *, full: bool = False) -> Transaction:
        return Transaction(self._db, full)
