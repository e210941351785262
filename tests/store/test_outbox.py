"""The SQLite outbox: durable sequence numbers, bounds, acknowledgement, crash recovery."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agent.store.batching import commit_due, ranges
from agent.store.outbox import Outbox, OutboxError

TOPIC = "edge/pi-1/results"


def _payload(seq: int) -> bytes:
    return f'{{"seq":{seq}}}'.encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sequence_numbers_start_at_one_and_increase(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    assert [outbox.enqueue(TOPIC, _payload) for _ in range(3)] == [1, 2, 3]
    assert [item.payload for item in outbox.next_batch(10)] == [_payload(s) for s in (1, 2, 3)]
    outbox.close()


def test_clean_restart_continues_the_sequence_without_reuse_after_deletes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        outbox.enqueue(TOPIC, _payload)
    for item in outbox.next_batch(3):
        outbox.mark_sent(item.seq, 100 + item.seq)
        assert outbox.ack(100 + item.seq)
    assert outbox.stats().depth == 0
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.db")
    assert reopened.enqueue(TOPIC, _payload) == 4
    reopened.close()


def test_a_killed_process_is_continued_without_a_gap_in_the_same_boot(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    crashed = Outbox(path, seq_block=100, boot=42)
    assert crashed.enqueue(TOPIC, _payload) == 1
    crashed.enqueue(TOPIC, _payload)
    del crashed  # no close(): as after SIGKILL; the page cache kept every commit
    reopened = Outbox(path, seq_block=100, boot=42)
    assert reopened.enqueue(TOPIC, _payload) == 3
    reopened.close()


def test_after_a_power_cut_the_reserved_block_is_skipped_instead_of_reused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    crashed = Outbox(path, seq_block=100, boot=42)
    assert crashed.enqueue(TOPIC, _payload) == 1
    crashed.enqueue(TOPIC, _payload)
    del crashed  # the last commits may not have reached the disk: a new boot resumes after 100
    for boot in (43, 0):  # another boot, or a system that has no boot id
        reopened = Outbox(path, seq_block=100, boot=boot)
        assert reopened.enqueue(TOPIC, _payload) in (101, 201)
        del reopened
    assert Outbox(path, seq_block=100, boot=7).next_seq == 301


def test_pending_results_are_not_offered_until_their_group_commits(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", commit_max=3, commit_s=10.0)
    outbox.enqueue(TOPIC, _payload)
    outbox.enqueue(TOPIC, _payload)
    assert (outbox.pending, outbox.next_batch(10), outbox.stats().depth) == (2, [], 2)
    outbox.enqueue(TOPIC, _payload)  # the third fills the group: one transaction for all three
    assert (outbox.pending, outbox.commits) == (0, 1)
    assert [item.seq for item in outbox.next_batch(10)] == [1, 2, 3]
    outbox.close()


def test_a_kill_loses_only_uncommitted_results_and_leaves_no_gap(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    crashed = Outbox(path, commit_max=100, commit_s=10.0, boot=42)
    for _ in range(3):
        crashed.enqueue(TOPIC, _payload)
    assert crashed.commit() == 3
    crashed.enqueue(TOPIC, _payload)  # seq 4, never committed, so never published
    del crashed
    reopened = Outbox(path, boot=42)
    assert [item.seq for item in reopened.next_batch(10)] == [1, 2, 3]
    assert reopened.enqueue(TOPIC, _payload) == 4  # number 4 was never seen by anyone
    reopened.close()


def test_group_commit_is_due_when_full_when_the_oldest_waited_or_when_results_are_slow() -> None:
    assert commit_due(256, 0.0, 0.0, most=256, bound_s=0.005)
    assert commit_due(3, 0.005, 0.0001, most=256, bound_s=0.005)
    assert commit_due(1, 0.0, 0.5, most=256, bound_s=0.005)  # the result before came 0.5 s ago
    assert not commit_due(3, 0.004, 0.0001, most=256, bound_s=0.005)  # a burst, inside the bound
    assert not commit_due(0, 1.0, 1.0, most=256, bound_s=0.005)


def test_outbox_commit_due_follows_the_time_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", commit_max=100, commit_s=0.05)
    outbox.enqueue(TOPIC, _payload)  # the first: no result came shortly before it
    assert outbox.commit_due()
    outbox.commit()
    outbox.enqueue(TOPIC, _payload)
    outbox.enqueue(TOPIC, _payload)  # right after the one before: a burst
    assert not outbox.commit_due()
    time.sleep(0.06)
    assert outbox.commit_due()
    assert outbox.commit() == 2
    outbox.close()


def test_a_failed_group_commit_gives_its_numbers_to_the_next_results(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", commit_max=100)
    outbox.enqueue(TOPIC, _payload)
    outbox.enqueue(TOPIC, _payload)
    outbox._db.execute("DROP TABLE items")  # the next write fails, as on a corrupt disk
    with pytest.raises(OutboxError, match="cannot store 2 result"):
        outbox.commit()
    outbox._db.executescript(
        "CREATE TABLE items (seq INTEGER PRIMARY KEY, topic TEXT, "
        "payload BLOB, created REAL, historical INTEGER)"
    )
    assert outbox.enqueue(TOPIC, _payload) == 1
    outbox.close()


def test_a_group_commit_keeps_the_byte_bound(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=100, commit_max=1000)
    for _ in range(30):
        outbox.enqueue(TOPIC, lambda seq: b"x" * 10)
    outbox.commit()
    assert (outbox.stats().bytes, outbox.stats().dropped) == (100, 20)
    assert [item.seq for item in outbox.next_batch(100)] == list(range(21, 31))
    outbox.close()


def test_acks_of_a_batch_delete_runs_of_consecutive_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", commit_max=1000)
    for _ in range(10):
        outbox.enqueue(TOPIC, _payload)
    outbox.commit()
    outbox.mark_sent_many([1, 2, 3, 4], 500)
    outbox.mark_sent_many([5, 6], 501)
    outbox.mark_sent(7, 502)
    assert outbox.in_flight == 3  # messages, not results
    assert [item.seq for item in outbox.next_batch(10)] == [8, 9, 10]
    assert outbox.ack_many([500, 502]) == 5
    assert [item.seq for item in outbox.next_batch(10)] == [8, 9, 10]
    assert (outbox.stats().depth, outbox.in_flight) == (5, 1)
    outbox.release_inflight()
    assert [item.seq for item in outbox.next_batch(10)] == [5, 6, 8, 9, 10]
    outbox.close()


def test_ranges_join_consecutive_numbers() -> None:
    assert ranges([7, 3, 1, 2, 2]) == [(1, 3), (7, 7)]
    assert ranges([]) == []


def test_items_left_by_a_crash_are_sent_again_as_historical(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = Outbox(path)
    first.enqueue(TOPIC, _payload)
    first.enqueue(TOPIC, _payload)
    (item, _) = first.next_batch(2)
    first.mark_sent(item.seq, 7)  # sent, but the process dies before the PUBACK
    assert [i.historical for i in first.next_batch(5)] == [False]
    del first
    second = Outbox(path)
    batch = second.next_batch(5)
    assert [(i.seq, i.historical) for i in batch] == [(1, True), (2, True)]
    assert second.stats().depth == 2
    second.close()


def test_ack_deletes_only_the_acknowledged_item(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        outbox.enqueue(TOPIC, _payload)
    for item in outbox.next_batch(3):
        outbox.mark_sent(item.seq, item.seq * 10)
    assert outbox.ack(20) is True
    assert outbox.ack(20) is False
    assert outbox.ack(999) is False
    outbox.release_inflight()
    assert [i.seq for i in outbox.next_batch(5)] == [1, 3]
    assert outbox.stats().depth == 2
    outbox.close()


def test_in_flight_items_are_not_offered_again_until_released(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        outbox.enqueue(TOPIC, _payload)
    outbox.mark_sent(1, 11)
    assert [i.seq for i in outbox.next_batch(5)] == [2, 3]
    assert outbox.release_inflight() == 1
    assert [i.seq for i in outbox.next_batch(5)] == [1, 2, 3]
    outbox.close()


def test_byte_bound_drops_the_oldest_and_counts_persistently(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, max_bytes=100)
    for _ in range(10):
        outbox.enqueue(TOPIC, lambda seq: bytes([seq]) * 30)
    stats = outbox.stats()
    assert (stats.depth, stats.bytes, stats.dropped) == (3, 90, 7)
    assert [i.seq for i in outbox.next_batch(10)] == [8, 9, 10]
    outbox.close()
    reopened = Outbox(path, max_bytes=100)
    assert reopened.stats().dropped == 7
    assert reopened.stats().bytes == 90
    reopened.close()


def test_age_bound_drops_expired_items_and_counts(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.db", max_age_s=60.0, clock=clock)
    outbox.enqueue(TOPIC, _payload)
    outbox.enqueue(TOPIC, _payload)
    clock.now += 30
    outbox.enqueue(TOPIC, _payload)
    clock.now += 45
    assert outbox.expire() == 2
    assert [i.seq for i in outbox.next_batch(5)] == [3]
    assert outbox.stats().dropped == 2
    outbox.close()


def test_a_group_commit_applies_the_age_bound_to_what_is_already_stored(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.db", max_age_s=60.0, clock=clock, commit_max=1000)
    outbox.enqueue(TOPIC, _payload)
    outbox.enqueue(TOPIC, _payload)
    outbox.commit()
    clock.now += 61
    for _ in range(3):
        outbox.enqueue(TOPIC, _payload)
    outbox.commit()  # one transaction: three rows in, the two expired ones out
    assert [i.seq for i in outbox.next_batch(10)] == [3, 4, 5]
    assert (outbox.stats().dropped, outbox.stats().depth, outbox.commits) == (2, 3, 2)
    outbox.close()


def test_an_item_larger_than_the_whole_bound_is_refused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=10)
    with pytest.raises(OutboxError, match="exceeds the outbox bound"):
        outbox.enqueue(TOPIC, lambda _seq: b"x" * 11)
    assert outbox.enqueue(TOPIC, lambda _seq: b"ok") == 1
    outbox.close()


def _fill(outbox: Outbox) -> None:
    for _ in range(100):
        outbox.enqueue(TOPIC, lambda _seq: b"y" * 4000)


def test_disk_full_is_a_clear_counted_error_and_nothing_is_corrupted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, max_bytes=10**9)
    outbox.enqueue(TOPIC, _payload)
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the "disk" is now full
    with pytest.raises(OutboxError, match="database or disk is full") as info:
        _fill(outbox)
    assert "cannot store 1 result(s)" in str(info.value)
    assert outbox.stats().write_errors == 1
    stored = outbox.stats().depth
    outbox.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == stored
    reopened = Outbox(path)
    assert reopened.enqueue(TOPIC, _payload) == stored + 1
    reopened.close()


def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    outbox.close()


def test_ack_many_deletes_every_known_token_in_one_transaction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(4):
        outbox.enqueue(TOPIC, _payload)
    for item in outbox.next_batch(4):
        outbox.mark_sent(item.seq, item.seq + 50)
    assert outbox.ack_many([51, 53, 77]) == 2
    assert outbox.in_flight == 2
    assert outbox.stats().depth == 2
    outbox.close()


def test_enqueue_applies_the_age_bound_at_most_once_per_check_interval(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.db", max_age_s=60.0, clock=clock, age_check_s=100.0)
    outbox.enqueue(TOPIC, _payload)  # checks (nothing expired); the next check is at +100 s
    clock.now += 61  # item 1 has expired, but no check is due
    outbox.enqueue(TOPIC, _payload)
    assert [i.seq for i in outbox.next_batch(5)] == [1, 2]
    clock.now += 39  # +100 s: due; item 1 goes, item 2 (39 s old) stays
    outbox.enqueue(TOPIC, _payload)
    assert [i.seq for i in outbox.next_batch(5)] == [2, 3]
    assert outbox.stats().dropped == 1
    outbox.close()


def test_a_large_backlog_is_expired_oldest_first_up_to_the_first_young_row(
    tmp_path: Path,
) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.db", max_age_s=60.0, clock=clock)
    for _ in range(3000):  # an outage's backlog
        outbox.enqueue(TOPIC, _payload)
    clock.now += 30
    outbox.enqueue(TOPIC, _payload)
    clock.now += 31
    assert outbox.expire() == 3000
    assert [i.seq for i in outbox.next_batch(5)] == [3001]
    outbox.close()
