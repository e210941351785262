"""The results stage (the loop's side of the stages): a bad frame refused by the prepare stage is
counted in status as ``bad_input`` and nothing is published; a backend failure is counted as
``backend``; a staged frame's raw outputs are post-processed here into a result in the outbox,
under the model that produced it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agent.config import load_config
from agent.daemon.infer import InferenceStep
from agent.daemon.metrics import RollingStats
from agent.daemon.results import Results
from agent.daemon.sdnotify import Notifier
from agent.daemon.stages import Outcome, Stages
from agent.daemon.status import Health
from agent.daemon.systemd import Systemd
from agent.errors import BackendError
from agent.model.active import ActiveModel
from agent.model.swap import ServedModel
from agent.mqtt.topics import DeviceTopics
from agent.runtime import open_model
from agent.sources.base import Frame
from agent.store.outbox import Outbox
from agent.store.policy import PublishPolicy
from convert.samples import digit_frames
from tests.support.agent_env import AgentWorld
from tests.support.feed import FrameFeed
from tests.support.models import ModelFactory

pytestmark = pytest.mark.tensorflow


@dataclass
class Loop:
    step: InferenceStep
    served: ServedModel
    health: Health
    outbox: Outbox
    stages: Stages
    feed: FrameFeed

    def outcome(self) -> Outcome:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            self.stages.route()
            outcome = self.stages.next(0.02)
            if outcome is not None:
                return outcome
        pytest.fail("no outcome from the stages")


@pytest.fixture
def loop(tmp_path: Path, sample_models: ModelFactory) -> Iterator[Loop]:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), "mqtt://127.0.0.1:1", frames=2)
    config = load_config(world.write_config())
    served = ServedModel(config, time.monotonic)
    converted = sample_models("float32")
    model = open_model(converted.model_bytes(), threads=1)
    served.serve(ActiveModel("digits", 7, "0" * 64, converted.model_metadata(), model))
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=1 << 20, max_age_s=3600.0)
    health, stats = Health(), RollingStats()
    step = InferenceStep(
        served,
        Results(outbox, DeviceTopics("edge", "dev-1").results, time.time),
        health,
        stats,
        systemd=Systemd(Notifier(None), config.source),
        policy=PublishPolicy(config.output),
        clock=time.monotonic,
        on_first_result=lambda: None,
    )
    stages, feed = Stages(served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    yield Loop(step, served, health, outbox, stages, feed)
    feed.close()
    stages.stop(lambda _: None)
    outbox.close()
    served.close()


def test_a_frame_the_prepare_stage_refuses_is_counted_as_bad_input_and_not_published(
    loop: Loop,
) -> None:
    loop.feed.put(np.zeros((4, 4, 3), np.float64))
    loop.step.deliver(loop.outcome())
    assert loop.health.errors.counts["bad_input"] == 1
    assert loop.health.last_error is not None
    assert loop.health.last_error.code == "bad_input"
    assert loop.outbox.stats().depth == 0


def test_a_backend_failure_is_counted_as_backend(loop: Loop) -> None:
    pipeline = loop.served.pipeline
    assert pipeline is not None
    images, _ = digit_frames(1, side=64)
    frame = Frame(images[0], time.monotonic(), 1, "feed")
    failed = Outcome(pipeline, frame, failure=("backend", BackendError("invoke failed")))
    loop.step.deliver(failed)
    assert loop.health.errors.counts["backend"] == 1
    assert loop.outbox.stats().depth == 0


def test_a_staged_frame_is_post_processed_here_into_one_result_in_the_outbox(loop: Loop) -> None:
    images, _ = digit_frames(1, side=64)
    loop.feed.put(images[0])
    outcome = loop.outcome()
    assert outcome.raw is not None
    assert outcome.result is None
    loop.step.deliver(outcome)
    assert loop.outbox.stats().depth == 1
    assert dict(loop.health.errors.counts) == {}
