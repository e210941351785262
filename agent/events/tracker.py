"""From per-result observations to events (pure: no clock, no I/O; time is passed in).

For each configured label: an event **starts** when the label is seen at or above its threshold
in ``min_results`` consecutive results; while it lasts it keeps the best score (and that
result's box, when the model gives boxes) and an **update** (best and latest score, results so
far) goes out at most every ``update_s`` while results keep seeing it; it **ends** once the
label has not been seen for ``quiet_s`` (the end time is the last result that saw it).
:meth:`EventTracker.close` ends every open event (the agent stopping, or the model being
swapped) so no event is left without an end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

EventType = Literal["start", "update", "end"]


@dataclass(frozen=True)
class EventRules:
    labels: tuple[str, ...]
    threshold: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=dict)
    min_results: int = 3
    quiet_s: float = 2.0
    update_s: float = 1.0

    def threshold_for(self, label: str) -> float:
        return self.thresholds.get(label, self.threshold)


@dataclass(frozen=True)
class Observation:
    """One label in one result: its score and, for a detector, its box (normalised)."""

    label: str
    score: float
    box: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Event:
    """What an event message says. ``number`` counts this device's events since its start."""

    type: EventType
    id: str
    label: str
    start_ts: float
    last_ts: float
    score: float
    best_score: float
    best_box: Mapping[str, float] | None
    results: int
    end_ts: float | None = None
    reason: str | None = None

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "id": self.id,
            "label": self.label,
            "start_ts": round(self.start_ts, 6),
            "last_ts": round(self.last_ts, 6),
            "score": round(self.score, 6),
            "best_score": round(self.best_score, 6),
            "results": self.results,
        }
        if self.best_box is not None:
            out["best_box"] = dict(self.best_box)
        if self.end_ts is not None:
            out["end_ts"] = round(self.end_ts, 6)
            out["duration_s"] = round(self.end_ts - self.start_ts, 6)
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass
class _Track:
    streak: int = 0
    first_ts: float = 0.0  # wall time of the first result of the current streak
    active: Event | None = None
    last_seen_t: float = 0.0
    last_update_t: float = 0.0


def observations(outputs: Mapping[str, Any]) -> list[Observation]:
    """The labels of a result body: its ``classes`` or ``detections`` (the best per label)."""
    best: dict[str, Observation] = {}
    for item in outputs.get("classes", []) or []:
        _keep(best, Observation(str(item["label"]), float(item["score"])))
    for item in outputs.get("detections", []) or []:
        box = item.get("bbox")
        _keep(best, Observation(str(item["label"]), float(item["score"]), box))
    return list(best.values())


def _keep(best: dict[str, Observation], seen: Observation) -> None:
    current = best.get(seen.label)
    if current is None or seen.score > current.score:
        best[seen.label] = seen


class EventTracker:
    """Turns observations into :class:`Event` values. ``new_id`` names each new event."""

    def __init__(self, rules: EventRules, new_id: Any) -> None:
        self.rules = rules
        self._new_id = new_id
        self._tracks = {label: _Track() for label in rules.labels}

    @property
    def open_events(self) -> list[Event]:
        return [t.active for t in self._tracks.values() if t.active is not None]

    def observe(self, seen: Iterable[Observation], now: float, wall: float) -> list[Event]:
        """One result at monotonic ``now`` (its capture wall time ``wall``); the events due."""
        hits = {
            o.label: o
            for o in seen
            if o.label in self._tracks and o.score >= self.rules.threshold_for(o.label)
        }
        events: list[Event] = []
        for label, track in self._tracks.items():
            hit = hits.get(label)
            if hit is not None:
                events += self._hit(track, hit, now, wall)
            else:
                track.streak = 0
        events += self.tick(now)
        return events

    def tick(self, now: float) -> list[Event]:
        """Events due by time alone: ends after the quiet period (call also without results)."""
        events = []
        for track in self._tracks.values():
            active = track.active
            if active is not None and now - track.last_seen_t >= self.rules.quiet_s:
                events.append(self._end(track, "quiet"))
        return events

    def close(self, reason: str) -> list[Event]:
        """End every open event now (``reason`` says why: ``stopped``, ``model_changed``)."""
        return [self._end(t, reason) for t in self._tracks.values() if t.active is not None]

    def _hit(self, track: _Track, hit: Observation, now: float, wall: float) -> list[Event]:
        track.last_seen_t = now
        active = track.active
        if active is None:
            if track.streak == 0:
                track.first_ts = wall
            track.streak += 1
            if track.streak < self.rules.min_results:
                return []
            track.active = Event(
                "start", self._new_id(hit.label, track.first_ts), hit.label, track.first_ts,
                wall, hit.score, hit.score, hit.box, track.streak,
            )  # fmt: skip
            track.last_update_t = now
            return [track.active]
        better = hit.score > active.best_score
        track.active = replace(
            active,
            type="update",
            last_ts=wall,
            score=hit.score,
            best_score=hit.score if better else active.best_score,
            best_box=hit.box if better else active.best_box,
            results=active.results + 1,
        )
        if now - track.last_update_t < self.rules.update_s:
            return []
        track.last_update_t = now
        return [track.active]

    def _end(self, track: _Track, reason: str) -> Event:
        assert track.active is not None
        ended = replace(track.active, type="end", end_ts=track.active.last_ts, reason=reason)
        track.active = None
        track.streak = 0
        return ended
