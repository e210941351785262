"""The update state machine in this process: the real updater, installer, slots and served model
of one device, wired as the service wires them, on a :class:`FakeBroker` instead of mosquitto.

The test thread plays the service loop: :meth:`Device.wait` turns it (puts a handed-over model
live, ends a watch window) while it waits for an update state, and :meth:`Device.infer` runs real
frames through the live pipeline and lets the watch window judge them. Bundles are built with the
real writer and split with the fleet's ``prepare_bundle`` (``UpdateWorld.bundle``); the canary
runs the real check in-process (:func:`run_canary_in_process`) unless a test asks for the child
process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import load_config
from agent.daemon.wiring import build_updater
from agent.model.active import ModelStore, load_credentials, open_active_model
from agent.model.swap import ServedModel
from agent.mqtt.messages import UpdateStatus
from agent.mqtt.topics import DeviceTopics
from agent.secrets import FileResolver
from agent.sources.base import Frame
from agent.update.canary_worker import CanaryRunner, run_canary_in_process
from agent.update.commands import desired_command, rollback_command, sign_command
from agent.update.protocol import command_topic
from agent.update.updater import Updater
from convert.samples import digit_frames
from fleet.bundles import PreparedBundle
from tests.support.agent_env import DEVICE_ID
from tests.support.fakebroker import FakeBroker
from tests.update.harness import PREFIX, UpdateWorld

TOPICS = DeviceTopics(PREFIX, DEVICE_ID)


@dataclass
class Device:
    """One agent's updater and served model over ``state_dir``, connected to ``broker``."""

    config_path: Path
    broker: FakeBroker
    canary: CanaryRunner = run_canary_in_process
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        config = load_config(self.config_path)
        resolver = FileResolver.from_env(self.config_path, {})
        store = ModelStore(Path(config.state_dir))
        self.served = ServedModel(config, time.monotonic)
        credentials = load_credentials(config, resolver)
        self.served.serve(open_active_model(config, resolver, store, credentials))
        updater = build_updater(
            config,
            resolver,
            store,
            self.served,
            subscriber=self.broker,
            topics=TOPICS,
            clock=time.monotonic,
            wall=time.time,
            canary=self.canary,
        )
        assert updater is not None
        self.updater: Updater = updater
        self.slots_path = Path(config.state_dir) / "models" / "slots.json"
        self.swaps = 0
        updater.start()

    @property
    def version(self) -> int:
        assert self.served.active is not None
        return self.served.active.version

    def slots(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.slots_path.read_text())
        return loaded

    def turn(self) -> None:
        """One turn of the service loop's update pump."""
        if self.served.pump(None) is not None:
            self.swaps += 1

    def wait(
        self, predicate: Callable[[UpdateStatus], bool], timeout: float = 30.0
    ) -> UpdateStatus:
        """Turn the loop until the update status satisfies ``predicate``; fail naming the states."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.turn()
            status = self.updater.status()
            if not self.seen or self.seen[-1] != status.label:
                self.seen.append(status.label)
            if predicate(status):
                return status
            time.sleep(0.002)
        pytest.fail(f"no such update state within {timeout:g} s; saw {self.seen}")

    def settle(self, turns: int = 10) -> None:
        """A few more loop turns (what might still arrive has had its chance)."""
        for _ in range(turns):
            self.turn()
            time.sleep(0.005)

    def infer(self, count: int) -> list[bool]:
        """Real digit frames through the live pipeline, judged by the watch window; for each,
        whether it rolled the model back."""
        images, _ = digit_frames(count, side=64)
        rolled = []
        for seq, image in enumerate(images):
            pipeline = self.served.pipeline
            assert pipeline is not None
            result = pipeline.process(Frame(image, time.monotonic(), seq))
            assert result is not None
            rolled.append(self.served.observe_result(result.total_s, result.finite))
        return rolled

    def stop(self) -> None:
        self.updater.stop()
        self.served.close()


@dataclass
class Fleet:
    """The fleet's side: retained bundle parts and signed commands on the fake broker."""

    world: UpdateWorld
    broker: FakeBroker

    def parts(self, bundle: PreparedBundle, blocks: Iterable[int], *, header: bool = True) -> None:
        messages = bundle.messages(PREFIX)
        if header:
            self.broker.put(messages[0][0], messages[0][1])
        for index in blocks:
            topic, payload = messages[index + 1]
            self.broker.put(topic, payload)

    def everything(self, bundle: PreparedBundle) -> None:
        self.parts(bundle, range(bundle.offer.blocks))

    def desired(self, bundle: PreparedBundle) -> bytes:
        envelope = sign_command(
            desired_command(DEVICE_ID, bundle.offer, time.time()), [self.world.fleet_key]
        )
        self.broker.put(command_topic(TOPICS, "desired"), envelope)
        return envelope

    def rollback(self, envelope: bytes | None = None) -> bytes:
        if envelope is None:
            envelope = sign_command(
                rollback_command(DEVICE_ID, time.time()), [self.world.fleet_key]
            )
        self.broker.put(command_topic(TOPICS, "rollback"), envelope, retain=False)
        return envelope
