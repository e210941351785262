"""The partial payload on disk: blocks at their offsets, a bitmap that never runs ahead of data."""

from __future__ import annotations

from pathlib import Path

from agent.update.partial import PartialPayload, discard_others

BID = "0123456789abcdef0123456789abcdef"


def test_blocks_land_at_their_offsets_in_a_preallocated_file(tmp_path: Path) -> None:
    partial = PartialPayload(tmp_path, BID, 10, 2)
    assert partial.path.stat().st_size == 10
    partial.write(5, b"world")
    partial.write(0, b"hello")
    assert partial.read() == b"helloworld"
    partial.close()


def test_a_reopened_partial_resumes_from_the_flushed_bitmap(tmp_path: Path) -> None:
    partial = PartialPayload(tmp_path, BID, 10, 2)
    partial.write(0, b"hello")
    partial.bitmap.set(0)
    partial.flush(now=1.0)
    partial.bitmap.set(1)  # set in memory, never flushed: a crash loses it
    partial.close()
    again = PartialPayload(tmp_path, BID, 10, 2)
    assert again.bitmap.held() == [0]
    assert again.read()[:5] == b"hello"
    again.close()


def test_flushes_are_batched_by_count_and_time(tmp_path: Path) -> None:
    partial = PartialPayload(tmp_path, BID, 4, 4, flush_s=10.0, flush_blocks=2)
    partial.flush(now=0.0)
    partial.write(0, b"a")
    partial.bitmap.set(0)
    partial.maybe_flush(now=1.0)
    saved = (tmp_path / f"{BID}.bitmap").read_bytes()
    partial.write(1, b"b")
    partial.bitmap.set(1)
    partial.maybe_flush(now=2.0)  # two blocks since the last flush
    assert (tmp_path / f"{BID}.bitmap").read_bytes() != saved
    partial.write(2, b"c")
    partial.bitmap.set(2)
    partial.maybe_flush(now=13.0)  # ten seconds since the last flush
    partial.close()
    assert PartialPayload(tmp_path, BID, 4, 4).bitmap.held() == [0, 1, 2]


def test_a_partial_of_the_wrong_size_starts_afresh(tmp_path: Path) -> None:
    partial = PartialPayload(tmp_path, BID, 10, 2)
    partial.bitmap.set(0)
    partial.flush(now=1.0)
    partial.close()
    again = PartialPayload(tmp_path, BID, 20, 2)
    assert again.bitmap.count == 0
    assert again.path.stat().st_size == 20
    again.close()


def test_discard_removes_both_files_and_other_bundles_are_cleaned_up(tmp_path: Path) -> None:
    other = PartialPayload(tmp_path, "f" * 32, 4, 1)
    other.close()
    partial = PartialPayload(tmp_path, BID, 4, 1)
    discard_others(tmp_path, keep=BID)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{BID}.bitmap", f"{BID}.partial"]
    partial.discard()
    assert list(tmp_path.iterdir()) == []
