"""The stages between the source and the results loop, on the real runtime: frames are prepared
off the interpreter thread, a frame prepared for a model that is no longer live is prepared
again by the live one (never fed to it as it is), results stay in frame order across a swap,
bad input is an outcome the loop counts, and stopping drains every stage and leaves no thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.config import load_config
from agent.daemon.stages import BURST, Outcome, Stages
from agent.model.active import ActiveModel
from agent.model.swap import ServedModel
from agent.runtime import open_model
from convert.samples import digit_frames
from tests.support.agent_env import AgentWorld
from tests.support.feed import FrameFeed
from tests.support.models import ConvertedModel, ModelFactory

pytestmark = pytest.mark.tensorflow


def _active(converted: ConvertedModel, version: int) -> ActiveModel:
    model = open_model(converted.model_bytes(), threads=1)
    return ActiveModel("digits", version, "0" * 64, converted.model_metadata(), model)


@pytest.fixture
def served(tmp_path: Path, sample_models: ModelFactory) -> Iterator[ServedModel]:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), "mqtt://127.0.0.1:1", frames=2)
    model = ServedModel(load_config(world.write_config()), time.monotonic)
    yield model
    model.close()


def _wait(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _collect(stages: Stages, count: int) -> list[Outcome]:
    got: list[Outcome] = []
    deadline = time.monotonic() + 20.0
    while len(got) < count and time.monotonic() < deadline:
        stages.route()
        outcome = stages.next(0.02)
        if outcome is not None:
            got.append(outcome)
    return got


def test_a_frame_prepared_for_a_swapped_out_model_is_prepared_again_by_the_live_one(
    served: ServedModel, sample_models: ModelFactory
) -> None:
    float_io, int8_io = sample_models("float32"), sample_models("int8", "int8")
    served.serve(_active(float_io, 1))
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    images, _ = digit_frames(1, side=64)
    feed.put(images[0])
    _wait(lambda: stages.ring.depth == 1)  # prepared as float32 for version 1, not taken yet
    served.serve(_active(int8_io, 2))  # the live model now takes int8
    (outcome,) = _collect(stages, 1)
    assert outcome.pipeline is served.pipeline
    assert outcome.failure is None
    result = outcome.finish()
    assert result is not None
    assert result.finite
    assert result.frame_seq == 1
    assert stages.ring.stale == 1
    stages.stop(lambda _: None)


def test_results_stay_in_frame_order_with_no_gap_across_a_swap(
    served: ServedModel, sample_models: ModelFactory
) -> None:
    served.serve(_active(sample_models("float32"), 1))
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    images, _ = digit_frames(30, side=64)
    for image in images:
        feed.put(image)
    got = _collect(stages, 10)
    served.serve(_active(sample_models("int8", "int8"), 2))
    got += _collect(stages, 20)
    assert [o.item.seq for o in got] == list(range(1, 31))
    versions = [o.pipeline.active.version for o in got]
    assert versions == sorted(versions)
    assert versions[-1] == 2
    assert all(o.failure is None and o.finish() is not None for o in got)
    stages.stop(lambda _: None)


def test_bad_input_from_the_prepare_stage_reaches_the_loop_as_a_counted_failure(
    served: ServedModel, sample_models: ModelFactory
) -> None:
    served.serve(_active(sample_models("float32"), 1))
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    feed.put(np.zeros((8, 8, 3), np.float32))  # not uint8: the pre-processor refuses it
    (outcome,) = _collect(stages, 1)
    assert outcome.failure is not None
    kind, error = outcome.failure
    assert kind == "bad_input"
    assert "uint8" in str(error)
    stages.stop(lambda _: None)


def test_stopping_delivers_what_is_in_flight_and_leaves_no_thread_behind(
    served: ServedModel, sample_models: ModelFactory
) -> None:
    before = set(threading.enumerate())
    served.serve(_active(sample_models("float32"), 1))
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    images, _ = digit_frames(3, side=64)
    for image in images:
        feed.put(image)
    _wait(lambda: feed.pending == 0 and stages.ring.depth >= 1)
    stages.route()
    delivered: list[Outcome] = []
    feed.close()
    stages.stop(delivered.append)
    assert sorted(o.item.seq for o in delivered) == [1, 2, 3]
    served.close()
    assert {t.name for t in set(threading.enumerate()) - before} == set()


def test_a_burst_of_waiting_readings_crosses_the_stages_at_once_and_each_gets_its_outcome(
    served: ServedModel, sample_models: ModelFactory
) -> None:
    served.serve(_active(sample_models("int8"), 1))  # an image model: each reading is bad input
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    feed.put_readings(BURST * 3 + 5)
    stages.open(feed, live=True, min_period_s=0.0)  # readings are never dropped, even live
    got = _collect(stages, BURST * 3 + 5)
    assert [o.item.seq for o in got] == list(range(1, BURST * 3 + 6))
    assert {o.failure[0] for o in got if o.failure is not None} == {"bad_input"}
    assert all(o.failure is not None for o in got)
    stages.stop(lambda _: None)
