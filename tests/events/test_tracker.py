"""Events from results (pure): start after N consecutive hits, updates while it lasts, end after
the quiet period; best score and box kept; nothing left open."""

from __future__ import annotations

from typing import Any

import pytest

from agent.events.tracker import EventRules, EventTracker, Observation, observations

RULES = EventRules(labels=("cat", "dog"), threshold=0.5, min_results=3, quiet_s=2.0, update_s=1.0)


def _tracker(rules: EventRules = RULES) -> EventTracker:
    return EventTracker(rules, lambda label, ts: f"{label}@{ts:g}")


def _run(tracker: EventTracker, frames: list[tuple[float, float]], label: str = "cat") -> list:
    """``frames``: (time, score) of ``label`` per result (wall time = monotonic time + 1000)."""
    events = []
    for t, score in frames:
        seen = [Observation(label, score)] if score > 0 else []
        events += tracker.observe(seen, t, 1000 + t)
    return events


def test_an_object_that_appears_stays_and_leaves_gives_one_start_updates_and_one_end() -> None:
    tracker = _tracker()
    frames = [(t * 0.25, 0.0) for t in range(4)]  # absent for 1 s
    frames += [(1 + t * 0.25, 0.6 + 0.01 * t) for t in range(16)]  # present for 4 s
    frames += [(5 + t * 0.25, 0.0) for t in range(16)]  # gone
    events = _run(tracker, frames)
    assert [e.type for e in events] == ["start", "update", "update", "update", "end"]
    assert len({e.id for e in events}) == 1
    start, end = events[0], events[-1]
    assert start.id == "cat@1001"
    assert (start.start_ts, start.results) == (1001, 3)  # from the first of the 3 hits
    assert end.end_ts == 1000 + 1 + 15 * 0.25  # the last result that saw it
    assert end.best_score == pytest.approx(0.75)
    assert end.results == 16
    assert end.reason == "quiet"
    assert tracker.open_events == []


def test_fewer_consecutive_hits_than_min_results_start_nothing() -> None:
    frames = [(0.0, 0.9), (0.1, 0.9), (0.2, 0.0), (0.3, 0.9), (0.4, 0.9), (0.5, 0.0)]
    assert _run(_tracker(), frames) == []


def test_scores_below_the_label_threshold_do_not_count() -> None:
    rules = EventRules(labels=("cat",), threshold=0.5, thresholds={"cat": 0.8}, min_results=1)
    assert _run(_tracker(rules), [(0.0, 0.7), (0.1, 0.79)]) == []
    assert [e.type for e in _run(_tracker(rules), [(0.0, 0.8)])] == ["start"]


def test_short_dropouts_within_the_quiet_period_keep_one_event() -> None:
    frames = [(t * 0.1, 0.9) for t in range(5)] + [(1.0, 0.0), (2.0, 0.0)]
    frames += [(2.2 + t * 0.1, 0.9) for t in range(5)] + [(9.0, 0.0)]
    events = _run(_tracker(), frames)
    assert [e.type for e in events if e.type != "update"] == ["start", "end"]


def test_an_event_ends_on_time_without_further_results() -> None:
    tracker = _tracker()
    _run(tracker, [(0.0, 0.9), (0.1, 0.9), (0.2, 0.9)])
    assert tracker.tick(2.1) == []
    ended = tracker.tick(2.2)
    assert [e.type for e in ended] == ["end"]


def test_labels_are_tracked_independently_and_unconfigured_ones_ignored() -> None:
    tracker = _tracker(EventRules(labels=("cat", "dog"), min_results=1, quiet_s=1.0))
    both = [Observation("cat", 0.9), Observation("dog", 0.9), Observation("bird", 0.99)]
    started = tracker.observe(both, 0.0, 1000.0)
    assert sorted(e.label for e in started) == ["cat", "dog"]
    ended = tracker.observe([Observation("dog", 0.9)], 1.5, 1001.5)
    assert [(e.type, e.label) for e in ended if e.type == "end"] == [("end", "cat")]


def test_the_best_box_is_the_box_of_the_best_score() -> None:
    tracker = _tracker(EventRules(labels=("cat",), min_results=1, update_s=0.0))
    box_a = {"xmin": 0.1, "ymin": 0.1, "xmax": 0.2, "ymax": 0.2}
    box_b = {"xmin": 0.5, "ymin": 0.5, "xmax": 0.9, "ymax": 0.9}
    tracker.observe([Observation("cat", 0.6, box_a)], 0.0, 1.0)
    tracker.observe([Observation("cat", 0.9, box_b)], 0.1, 1.1)
    update = tracker.observe([Observation("cat", 0.7, box_a)], 0.2, 1.2)[0]
    assert (update.best_score, update.best_box, update.score) == (0.9, box_b, 0.7)
    assert update.to_obj()["best_box"] == box_b


def test_close_ends_every_open_event_with_its_reason() -> None:
    tracker = _tracker(EventRules(labels=("cat", "dog"), min_results=1))
    tracker.observe([Observation("cat", 0.9), Observation("dog", 0.9)], 0.0, 1.0)
    closed = tracker.close("stopped")
    assert [(e.type, e.reason) for e in closed] == [("end", "stopped"), ("end", "stopped")]
    assert tracker.open_events == []


def test_observations_read_classes_and_detections_keeping_the_best_per_label() -> None:
    box: dict[str, Any] = {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1}
    outputs = {
        "classes": [{"index": 3, "label": "3", "score": 0.7}],
        "detections": [
            {"index": 1, "label": "cat", "score": 0.4, "bbox": box},
            {"index": 1, "label": "cat", "score": 0.8, "bbox": box},
        ],
    }
    seen = observations(outputs)
    assert seen == [Observation("3", 0.7), Observation("cat", 0.8, box)]
    assert observations({"tensors": []}) == []
