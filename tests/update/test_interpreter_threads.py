"""One thread per interpreter, for its whole life, through a hot swap and a watch-window rollback.

The runtime's ``Interpreter`` class is wrapped in a recording proxy at the runtime boundary:
every call on every interpreter (its creation, ``allocate_tensors``, the warm-up and every
``set_tensor`` / ``invoke`` / ``get_tensor``, and its release) notes the calling thread. The
device runs as the service runs it: the real updater installs over a fake broker, the canary
runs in-process, frames go through the real prepare and interpreter stages, and the test thread
plays the results loop.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.daemon.stages import Stages
from agent.runtime import BACKENDS, resolve_backend
from convert.samples import digit_frames
from tests.support.agent_env import AgentWorld
from tests.support.fakebroker import FakeBroker
from tests.support.feed import FrameFeed
from tests.support.models import ModelFactory
from tests.update.conftest import NanModel
from tests.update.harness import UpdateWorld
from tests.update.inprocess import Device, Fleet

pytestmark = pytest.mark.tensorflow

BIG = 64 << 10


@dataclass
class Ledger:
    """Which threads touched which interpreter (numbered in creation order)."""

    threads: dict[int, set[tuple[int, str]]] = field(default_factory=lambda: defaultdict(set))
    calls: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    seen: set[threading.Thread] = field(default_factory=set)
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def number(self) -> int:
        with self._lock:
            return next(self._numbers)

    def touch(self, interpreter: int, call: str) -> None:
        thread = threading.current_thread()
        with self._lock:
            self.threads[interpreter].add((thread.ident or 0, thread.name))
            self.calls[interpreter].add(call)
            self.seen.add(thread)


def recording(real: Any, ledger: Ledger) -> Any:
    class RecordingInterpreter:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._n = ledger.number()
            ledger.touch(self._n, "create")
            self._real = real(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._real, name)
            if not callable(attr):
                return attr

            def call(*args: Any, **kwargs: Any) -> Any:
                ledger.touch(self._n, name)
                return attr(*args, **kwargs)

            return call

        def __del__(self) -> None:
            ledger.touch(self._n, "release")

    return RecordingInterpreter


@pytest.fixture
def ledger(
    monkeypatch: pytest.MonkeyPatch, sample_models: ModelFactory, nan_model: NanModel
) -> Ledger:
    """Records from here on: the models are converted first (the converter's own checks run
    the interpreter directly, on the test's thread)."""
    sample_models("int8")
    made = Ledger()
    module = importlib.import_module(BACKENDS[resolve_backend("auto").name][0])
    monkeypatch.setattr(module, "Interpreter", recording(module.Interpreter, made))
    return made


@dataclass
class Loop:
    """The results loop, played by the test thread: turns the update pump and the stages."""

    device: Device
    stages: Stages
    feed: FrameFeed
    nan_results: int = 0

    def frames(self, count: int) -> None:
        images, _ = digit_frames(count, side=64)
        for image in images:
            self.feed.put(image)
        done, deadline = 0, time.monotonic() + 30.0
        while done < count:
            assert time.monotonic() < deadline, "the stages stopped delivering"
            self.device.turn()
            self.stages.route()
            outcome = self.stages.next(0.02)
            if outcome is None:
                continue
            done += 1
            result = outcome.finish()
            assert outcome.failure is None
            assert result is not None
            served = self.device.served
            if outcome.pipeline is served.pipeline:
                self.nan_results += not result.finite
                served.observe_result(result.total_s, result.finite)


@pytest.fixture
def loop(tmp_path: Path, sample_models: ModelFactory, ledger: Ledger) -> Iterator[Loop]:
    files = AgentWorld(tmp_path / "device", sample_models("int8"), "mqtt://127.0.0.1:1", frames=4)
    world = UpdateWorld(files, None)
    broker = FakeBroker()
    device = Device(world.config(), broker)
    device.fleet = Fleet(world, broker)  # type: ignore[attr-defined]
    device.world = world  # type: ignore[attr-defined]
    stages, feed = Stages(device.served, time.monotonic), FrameFeed()
    stages.open(feed, live=False, min_period_s=0.0)
    made = Loop(device, stages, feed)
    yield made
    feed.close()
    stages.stop(lambda _: None)
    device.stop()


def test_every_interpreter_is_touched_by_one_thread_of_its_own_through_a_swap_and_a_rollback(
    loop: Loop, ledger: Ledger, nan_model: NanModel
) -> None:
    device = loop.device
    fleet: Fleet = device.fleet  # type: ignore[attr-defined]
    world: UpdateWorld = device.world  # type: ignore[attr-defined]
    others = {t.ident for t in threading.enumerate() if t.name in ("updater", "prepare")}
    others.add(threading.get_ident())
    loop.frames(5)
    hot = world.bundle(2, block_size=BIG)
    fleet.everything(hot)
    fleet.desired(hot)
    device.wait(lambda _: device.swaps == 1)
    loop.frames(5)
    assert device.version == 2
    bad = world.bundle(
        3, block_size=BIG, model=nan_model.tflite, metadata=nan_model.metadata,
        canary=nan_model.canary,
    )  # fmt: skip
    fleet.everything(bad)
    fleet.desired(bad)
    device.wait(lambda _: device.swaps == 2)
    loop.frames(5)
    assert loop.nan_results == 1  # the first NaN rolled version 3 back; version 2 served on
    assert device.version == 2
    assert device.wait(lambda u: u.state == "rolled_back").label == "rolled_back:nan_output"
    loop.feed.close()
    loop.stages.stop(lambda _: None)
    device.stop()
    gc.collect()
    for thread in ledger.seen - {threading.current_thread()}:
        thread.join(10.0)  # a release queued by a close runs on that thread, then it ends
        assert not thread.is_alive(), f"{thread.name} left behind"
    # versions 1, 2 and 3, and the in-process canary's interpreters for 2 and 3
    assert len(ledger.threads) >= 5
    for number, threads in ledger.threads.items():
        assert len(threads) == 1, f"interpreter {number} touched by {sorted(threads)}"
        ((ident, name),) = threads
        assert name.startswith("interpreter"), f"interpreter {number} on {name}"
        assert ident not in others
        assert {"create", "invoke", "release"} <= ledger.calls[number]
