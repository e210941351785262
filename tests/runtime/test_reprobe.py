"""Re-probing a missing Edge TPU: backoff, a probe thread the loop never waits on, the hand-off.

The failure path is real (this machine has no libedgetpu); the success path stands a CPU model in
for the accelerated one, since no Edge TPU can run here.
"""

from __future__ import annotations

import random
import time

import pytest

from agent.errors import BackendError
from agent.runtime import LoadedModel, ReprobeSchedule, open_model, open_on_edgetpu
from agent.runtime.reprobe import AcceleratorReprobe
from tests.support.models import ModelFactory

pytestmark = pytest.mark.tensorflow


def _settle(reprobe: AcceleratorReprobe, now: float) -> LoadedModel | str:
    """Poll at a fixed clock until the running probe's outcome is collected."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        outcome = reprobe.poll(now)
        if outcome is not None:
            return outcome
        time.sleep(0.005)
    raise AssertionError("the probe never finished")


def test_open_on_edgetpu_without_the_library_names_it(sample_models: ModelFactory) -> None:
    with pytest.raises(BackendError, match=r"Edge TPU delegate libedgetpu\.so\.1 unavailable"):
        open_on_edgetpu(sample_models("int8").model_bytes(), backend="litert", threads=1)


def test_a_missing_library_is_reprobed_with_growing_delays_and_never_in_a_loop(
    sample_models: ModelFactory,
) -> None:
    schedule = ReprobeSchedule(base=1.0, factor=2.0, max_delay=4.0, rng=random.Random(3))
    reprobe = AcceleratorReprobe.for_model(
        sample_models("int8").model_bytes(), backend="litert", threads=1, schedule=schedule, now=0.0
    )
    assert reprobe.poll(0.4) is None  # first delay is in [0.5, 1.0]
    assert reprobe.attempts == 0
    outcome = _settle(reprobe, 1.0)
    assert isinstance(outcome, str)
    assert outcome.startswith("Edge TPU delegate libedgetpu.so.1 unavailable")
    assert reprobe.attempts == 1
    assert reprobe.poll(1.99) is None  # second delay is in [1, 2]: not due yet
    assert reprobe.attempts == 1
    assert isinstance(_settle(reprobe, 3.0), str)
    assert reprobe.attempts == 2
    for t in (7.0, 11.0, 15.0):  # the delay is capped at 4 s
        assert isinstance(_settle(reprobe, t), str)
    assert reprobe.attempts == 5
    reprobe.close()


def test_a_successful_probe_hands_its_model_to_the_loop(sample_models: ModelFactory) -> None:
    data = sample_models("int8").model_bytes()

    def probe() -> LoadedModel:  # stands in for open_on_edgetpu once the device is plugged in
        return open_model(data, backend="litert", threads=1)

    reprobe = AcceleratorReprobe(probe, ReprobeSchedule(base=0.1, max_delay=0.1), now=0.0)
    model = _settle(reprobe, 1.0)
    assert isinstance(model, LoadedModel)
    assert model.inputs[0].shape == (1, 8, 8, 1)
    model.close()
    reprobe.close()
