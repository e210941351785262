"""The served model's swap on the loop side: a model offered by another thread goes live on the
next turn; after an install the previous one is held through the watch window and put back on
the first failure; models the loop lets go of go to the feedback (the updater), never closed on
the loop. Real models (our converter, our bundle writer) on the real runtime."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config
from agent.model.active import ActiveModel, ModelStore, load_credentials, open_active_model
from agent.model.swap import ServedModel, Swap
from agent.secrets import FileResolver
from tests.support.agent_env import AgentWorld
from tests.support.models import ModelFactory

pytestmark = pytest.mark.tensorflow


@dataclass
class Feedback:
    """Records what the served model reports (the updater's side of ``SwapFeedback``)."""

    retired: list[ActiveModel] = field(default_factory=list)
    failed: list[tuple[str | None, str, ActiveModel]] = field(default_factory=list)

    def retire(self, model: ActiveModel) -> None:
        self.retired.append(model)

    def watch_failed(self, bundle: str | None, reason: str, retired: ActiveModel) -> None:
        self.failed.append((bundle, reason, retired))


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    model: ServedModel
    feedback: Feedback
    clock: Clock
    config: AgentConfig
    config_path: Path
    opened: list[ActiveModel] = field(default_factory=list)

    def load(self) -> ActiveModel:
        """The installed model, loaded again: a distinct interpreter the loop can swap to."""
        config, resolver = self.config, FileResolver.from_env(self.config_path, {})
        store = ModelStore(Path(config.state_dir))
        active = open_active_model(config, resolver, store, load_credentials(config, resolver))
        self.opened.append(active)
        return active

    def swap(self, *, watch: bool, bundle: str = "b" * 32) -> Swap:
        active = self.load()
        return Swap(active, self.model.make_pipeline(active), "install", bundle, watch)


@pytest.fixture
def served(tmp_path: Path, sample_models: ModelFactory) -> Iterator[Served]:
    world = AgentWorld(tmp_path / "device", sample_models("int8"), "mqtt://127.0.0.1:1", frames=2)
    path = world.write_config(tables={"update": {"watch_results": 3, "watch_s": 2.0}})
    config = load_config(path)
    clock = Clock()
    model = ServedModel(config, clock)
    made = Served(model, Feedback(), clock, config, path)
    model.feedback = made.feedback
    model.serve(made.load())
    yield made
    for active in made.opened:
        active.model.close()


def test_an_offered_model_goes_live_on_the_next_turn_and_not_before(served: Served) -> None:
    first = served.model.active
    swap = served.swap(watch=True)
    served.model.offer(swap)
    assert served.model.active is first
    assert served.model.pump(None) is swap
    assert (served.model.active, served.model.pipeline) == (swap.active, swap.pipeline)
    assert served.model.pump(None) is None


def test_the_previous_model_is_held_through_the_watch_window_then_retired(served: Served) -> None:
    first = served.model.active
    served.model.offer(served.swap(watch=True))
    served.model.pump(None)
    for _ in range(3):
        assert served.model.observe_result(0.001, True) is False
    served.clock.now += 1.0
    served.model.pump(None)
    assert served.feedback.retired == []  # 3 results, but only 1 of 2 seconds
    served.clock.now += 1.0
    served.model.pump(None)
    assert served.feedback.retired == [first]
    assert served.model.watch is None


def test_a_nan_result_in_the_watch_window_puts_the_previous_model_back(served: Served) -> None:
    first, first_pipeline = served.model.active, served.model.pipeline
    swap = served.swap(watch=True, bundle="c" * 32)
    served.model.offer(swap)
    served.model.pump(None)
    assert served.model.observe_result(0.001, True) is False
    assert served.model.observe_result(0.001, False) is True
    assert (served.model.active, served.model.pipeline) == (first, first_pipeline)
    assert served.feedback.failed == [("c" * 32, "nan_output", swap.active)]
    assert served.model.observe_result(0.001, False) is False  # no window any more


def test_three_inference_errors_in_the_watch_window_put_the_previous_model_back(
    served: Served,
) -> None:
    first = served.model.active
    swap = served.swap(watch=True)
    served.model.offer(swap)
    served.model.pump(None)
    assert [served.model.observe_error() for _ in range(3)] == [False, False, True]
    assert served.model.active is first
    assert [reason for _, reason, _ in served.feedback.failed] == ["errors"]


def test_a_swap_without_a_watch_window_retires_the_previous_model_at_once(
    served: Served,
) -> None:
    first = served.model.active
    served.model.offer(served.swap(watch=False))
    served.model.pump(None)
    assert served.feedback.retired == [first]
    assert served.model.observe_result(0.001, False) is False


def test_a_new_install_during_a_watch_window_retires_the_held_model(served: Served) -> None:
    first = served.model.active
    second = served.swap(watch=True)
    served.model.offer(second)
    served.model.pump(None)
    third = served.swap(watch=True)
    served.model.offer(third)
    served.model.pump(None)
    assert served.feedback.retired == [first]
    assert served.model.observe_result(0.001, False) is True
    assert served.model.active is second.active
