"""Summaries for people: counts by state and version, failures, filters. Pure."""

from __future__ import annotations

from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from fleet.reader import ReadReport
from fleet.status import DeviceRow
from fleet.summary import Filters, summarize, summary_lines, view_line


def row(device: str, version: str = "7", online: bool | None = True, **update: str) -> DeviceRow:
    status = StatusMessage(
        ts=1.0,
        state="running",
        model=ModelRef("digits", version, "ab" * 32),
        update=UpdateStatus(**update) if update else UpdateStatus(),  # type: ignore[arg-type]
    )
    return DeviceRow(device, online, status)


ROWS = [
    row("a"),
    row("b", "6", online=False),
    row("c", state="rejected", reason="canary_mismatch", detail="top-1 70 %"),
    DeviceRow("d"),
]


def test_counts_by_online_state_version_and_update_with_the_failures_listed() -> None:
    lines = summary_lines(summarize(ROWS))
    assert lines == [
        "devices   4 (online 2, offline 1, unknown 1)",
        "state     running 3, - 1",
        "version   digits 7 2, - 1, digits 6 1",
        "update    - 3, rejected:canary_mismatch 1",
        "failures  1:",
        "  c  rejected:canary_mismatch (top-1 70 %)",
    ]


def test_filters_by_state_online_word_and_version() -> None:
    assert [r.device_id for r in ROWS if Filters(state="offline").keep(r, [])] == ["b"]
    assert [r.device_id for r in ROWS if Filters(version="6").keep(r, [])] == ["b"]
    assert [r.device_id for r in ROWS if Filters(version="digits:7").keep(r, [])] == ["a", "c"]
    assert [r.device_id for r in ROWS if Filters(group="lab").keep(r, ["lab"])] == list("abcd")
    assert not Filters(group="lab").keep(ROWS[0], [])


def test_the_view_line_says_complete_incomplete_or_unknown() -> None:
    complete = ReadReport("exact", 2, read={"a", "b"}, never_announced=["b"], seconds=1.26)
    assert view_line(complete) == (
        "view      complete: 2 of 2 registered read (exact topics, 1.3 s); 1 never announced"
    )
    partial = ReadReport("wildcard", 3, read={"a"}, unread=["b", "c"])
    assert view_line(partial).startswith("view      INCOMPLETE: 1 of 3 registered read (wildcard")
    assert partial.problem() == "2 of 3 registered not read (b, c)"
    unknown = ReadReport("wildcard", None, read={"a"})
    assert "no registry, so completeness is unknown" in view_line(unknown)
    assert not unknown.complete
    assert unknown.problem() is None
