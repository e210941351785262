"""bench/interleave.py and bench/install_size.py: run order, per-run ratios, the issue-14 table."""

from __future__ import annotations

import pytest

from bench.install_size import OPENCV, Install, plan
from bench.interleave import SIDES, Row, order, per_run_ratios, ratio_table


def test_each_run_rotates_the_order_so_every_side_takes_every_place() -> None:
    assert [order(r) for r in range(4)] == [
        ("bare", "script", "agent"),
        ("script", "agent", "bare"),
        ("agent", "bare", "script"),
        ("bare", "script", "agent"),
    ]
    assert {order(r)[0] for r in range(len(SIDES))} == set(SIDES)


def test_a_ratio_is_taken_within_each_run_not_between_medians() -> None:
    # The host got twice as fast in run 1: per run the agent keeps 0.9 of the bare loop.
    assert per_run_ratios([90.0, 180.0, 45.0], [100.0, 200.0, 50.0]) == pytest.approx(
        [0.9, 0.9, 0.9]
    )
    with pytest.raises(ValueError, match="3 runs against 2"):
        per_run_ratios([1.0, 2.0, 3.0], [1.0, 2.0])


def test_the_table_shows_median_rates_and_the_median_of_per_run_ratios_against_targets() -> None:
    row = Row("coco_ssd", 1, [50.0, 60.0, 40.0], [40.0, 50.0, 30.0], [48.0, 57.0, 36.0], 0.95, 1.05)
    table = ratio_table([row, Row("coco_ssd", 2, [80.0], [60.0], [66.0], None, 1.0)])
    lines = table.splitlines()
    assert lines[0].startswith("| model | threads | bare invoke loop | user script | edge-agent")
    assert lines[2] == (
        "| coco_ssd | 1 | 50.0 /s | 40.0 /s | 48.0 /s "
        "| **0.95** (0.96, 0.95, 0.90) ≥ 0.95: met "
        "| **1.20** (1.20, 1.14, 1.20) ≥ 1.05: met |"
    )
    assert lines[3] == (
        "| coco_ssd | 2 | 80.0 /s | 60.0 /s | 66.0 /s | **0.82** (0.82) "
        "| **1.10** (1.10) ≥ 1: met |"
    )


def test_without_a_video_extra_the_video_install_size_is_measured_by_removing_opencv() -> None:
    assert plan() == (
        Install(f"[device] − {OPENCV}", "device", (OPENCV,)),
        Install("[device]", "device"),
    )
    assert plan("device", "video") == (
        Install("[device]", "device"),
        Install("[device,video]", "device,video"),
    )
