"""Acceptance: a looped video in which a digit appears, stays and leaves, served by the real
agent process, gives per appearance exactly one start, updates and one end on
``<prefix>/<device>/events`` -- also while mosquitto is killed and restarted (events wait in the
outbox like results: none lost, none doubled; a re-send carries the same seq)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.events.message import parse_event
from agent.hass.events import label_object_id
from agent.mqtt.batch import results_in
from agent.mqtt.messages import ResultMessage
from agent.pipeline.postprocess import classify
from agent.pipeline.preprocess import Preprocessor
from agent.runtime import open_model
from convert.samples import digit_frames, write_video
from tests.support.agent_env import DEVICE_ID, AgentProcess, AgentWorld
from tests.support.broker import MosquittoBroker, Received, Subscriber
from tests.support.models import ConvertedModel, ModelFactory

pytestmark = [pytest.mark.broker, pytest.mark.tensorflow, pytest.mark.slow]

EVENTS = f"edge/{DEVICE_ID}/events"
RESULTS = f"edge/{DEVICE_ID}/results"
SNAPSHOTS = f"edge/{DEVICE_ID}/events/snapshot/#"
FPS = 20.0
ABSENT, PRESENT = 30, 30  # frames per cycle: 1.5 s without the digit, 1.5 s with it


def _confident(model: ConvertedModel, digit: int, others: bool = False) -> np.ndarray:
    """A real handwritten frame the model scores >= 0.9 as ``digit`` (or < 0.05 if ``others``)."""
    meta = model.model_metadata()
    loaded = open_model(model.model_bytes(), threads=1)
    pre = Preprocessor(meta)
    frames, labels = digit_frames(200, side=64)
    try:
        for frame, label in zip(frames, labels, strict=True):
            if (label == digit) == others:
                continue
            scores = loaded.invoke([pre(frame)[0]])[0]
            classes = classify(scores, loaded.outputs[0], meta.labels, top_k=10)
            score = next(c.score for c in classes if c.label == str(digit))
            if (score < 0.05) if others else (score >= 0.9):
                return frame
    finally:
        loaded.close()
    raise AssertionError(f"no frame scores as wanted for {digit}")


def _runs_of(results: dict[int, ResultMessage], label: str, min_results: int) -> int:
    """Appearances in the results: runs of top-1 ``label`` at least ``min_results`` long."""
    runs, current = 0, 0
    for seq in sorted(results):
        classes = results[seq].outputs.get("classes", [])
        if classes and classes[0]["label"] == label and classes[0]["score"] >= 0.6:
            current += 1
            runs += current == min_results
        else:
            current = 0
    return runs


def _events(messages: list[Received]) -> dict[int, dict[str, Any]]:
    """Event messages by seq; a re-sent copy must be the same message."""
    by_seq: dict[int, dict[str, Any]] = {}
    for m in messages:
        if m.topic != EVENTS:
            continue
        event = parse_event(m.payload)
        assert by_seq.setdefault(event["seq"], event) == event
    return by_seq


def _ends(messages: list[Received]) -> int:
    return sum(e["type"] == "end" for e in _events(messages).values())


def test_appear_stay_leave_gives_one_start_updates_one_end_through_broker_restarts(
    tmp_path: Path,
    sample_models: ModelFactory,
    make_broker: Callable[..., MosquittoBroker],
    agents: Callable[[Path], AgentProcess],
) -> None:
    model = sample_models("int8")
    three, other = _confident(model, 3), _confident(model, 3, others=True)
    video = write_video(tmp_path / "appear.avi", [other] * ABSENT + [three] * PRESENT, FPS)
    broker = make_broker(
        persistence=True, extra_config=["max_inflight_messages 0", "max_queued_messages 0"]
    )
    watcher = Subscriber(broker, EVENTS, "events-watcher", persistent=True)
    watcher.subscribe(RESULTS)
    watcher.subscribe(SNAPSHOTS)
    time.sleep(1.5)  # mosquitto's autosave (1 s) records the watcher's session
    world = AgentWorld(tmp_path / "device", model, broker.url, frames=2, fps=FPS)
    source = {"type": "video", "path": str(video), "loop": True, "realtime": True}
    events = {"labels": ["3"], "threshold": 0.6, "min_results": 3, "quiet_s": 0.5,
              "snapshot": True, "snapshot_max_bytes": 4096}  # fmt: skip
    agent = agents(world.write_config(source=source, tables={"events": events | {"update_s": 0.3}}))

    def ends(n: int) -> Callable[[list[Received]], bool]:
        return lambda got: _ends(got) >= n

    def describe(_: list[Received]) -> str:
        return f"{agent.log()[-3000:]}"

    watcher.wait_for(ends(2), timeout=60, describe=describe)
    broker.kill()
    time.sleep(3.5)  # more than one cycle: a start, updates and an end wait in the outbox
    broker.start()
    watcher.wait_for(ends(4), timeout=60, describe=describe)
    assert agent.terminate() == 0
    time.sleep(0.5)
    messages = watcher.messages
    watcher.close()

    by_seq = _events(messages)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for seq in sorted(by_seq):
        by_id.setdefault(by_seq[seq]["id"], []).append(by_seq[seq])
    for history in by_id.values():
        types = [e["type"] for e in history]
        assert (types[0], types[-1]) == ("start", "end"), types
        assert set(types[1:-1]) == {"update"}, types  # at least one, and only updates between
        assert history[-1]["reason"] in ("quiet", "stopped")
        assert history[-1]["results"] >= 3
        assert history[-1]["best_score"] >= 0.6
        assert {e["label"] for e in history} == {"3"}
    results = {}
    for m in messages:
        for result in results_in(m.payload) if m.topic == RESULTS else []:
            results[result.seq] = result
    assert len(by_id) == _runs_of(results, "3", 3)  # one event per appearance, none lost
    assert len(by_id) >= 4
    starts = sorted(h[0]["start_ts"] for h in by_id.values())
    gaps = np.diff(starts)
    cycle = (ABSENT + PRESENT) / FPS
    assert all(0.5 * cycle < g < 1.5 * cycle for g in gaps), gaps  # no doubled, no missed cycle
    _check_snapshots(messages, broker)


def _check_snapshots(messages: list[Received], broker: MosquittoBroker) -> None:
    snapshots = [m for m in messages if m.topic.startswith(SNAPSHOTS[:-1])]
    assert snapshots  # the best frame of an event, a JPEG within its bound
    assert {m.topic for m in snapshots} == {SNAPSHOTS[:-1] + label_object_id("3")}
    assert all(len(m.payload) <= 4096 for m in snapshots)
    frame = cv2.imdecode(np.frombuffer(snapshots[-1].payload, np.uint8), cv2.IMREAD_COLOR)
    # A classifier has no box: the whole frame, as decoded for the 8x8 model (1/8 of 64x64).
    assert frame.shape == (8, 8, 3)
    late = Subscriber(broker, SNAPSHOTS, "late")  # retained: a dashboard that comes later
    late.wait_for(lambda got: bool(got) and got[0].retain, timeout=10)
    late.close()
