"""The fleet view on a default-config mosquitto: complete for 1,000 devices, or says it is not.

Each simulated device here is its two retained announcements (``availability`` and ``status``,
the bytes an agent publishes), written by one paho client: what the view reads is exactly what
the broker holds. The broker is mosquitto with its default per-client queue (1,000 messages).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt.messages import ModelRef, StatusMessage, UpdateStatus
from fleet.cli import main
from fleet.registry import Registry, save_registry
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker

COUNT = 1000


def announce(broker: MosquittoBroker, devices: list[str], *, failing: set[str] = set()) -> None:  # noqa: B006
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="announcer")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for index, device in enumerate(devices):
            update = (
                UpdateStatus("rejected", "canary_mismatch", bundle="ab" * 16)
                if device in failing
                else UpdateStatus()
            )
            status = StatusMessage(
                ts=time.time(),
                state="running",
                model=ModelRef("digits", str(6 + index % 2), "ab" * 32),
                groups=("lab",),
                update=update,
            )
            infos.append(client.publish(f"edge/{device}/status", status.to_json(), 1, True))
            infos.append(client.publish(f"edge/{device}/availability", b"online", 1, True))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def fleet_of_1000(broker: MosquittoBroker, tmp_path: Path) -> tuple[list[str], Path]:
    devices = [f"dev-{i:05d}" for i in range(COUNT)]
    announce(broker, devices, failing={"dev-00007", "dev-00500"})
    registry = tmp_path / "devices.json"
    save_registry(registry, Registry().with_devices({d: ["lab"] for d in devices}))
    return devices, registry


def test_the_view_of_1000_devices_on_a_default_mosquitto_is_complete(
    broker: MosquittoBroker,
    fleet_of_1000: tuple[list[str], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _devices, registry = fleet_of_1000
    args = ["status", "--url", broker.url, "--registry", str(registry)]
    assert main([*args, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["view"]["complete"] is True
    assert document["view"]["read"] == COUNT
    assert document["view"]["unread"] == []
    assert document["summary"]["devices"] == COUNT
    assert document["summary"]["online"] == {"online": COUNT}
    assert document["summary"]["versions"] == {"digits 6": 500, "digits 7": 500}
    assert [f["device"] for f in document["summary"]["failures"]] == ["dev-00007", "dev-00500"]

    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("view      complete: 1000 of 1000 registered read (exact topics")
    assert out[1] == "devices   1000 (online 1000)"
    assert out[3] == "version   digits 6 500, digits 7 500"
    assert len(out) == 8  # counts and the two failures, no per-device lines


def test_a_small_queue_makes_a_wildcard_read_incomplete_and_a_windowed_exact_read_complete(
    make_broker: Callable[..., MosquittoBroker],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """mosquitto ``max_queued_messages 100``: a wildcard's retained flood overflows the queue,
    the registry notices; exact reads with at most 40 devices outstanding never overflow it."""
    broker = make_broker(extra_config=["max_queued_messages 100"])
    devices = [f"dev-{i:05d}" for i in range(COUNT)]
    announce(broker, devices)
    registry = tmp_path / "devices.json"
    save_registry(registry, Registry().with_devices({d: ["lab"] for d in devices}))
    args = ["status", "--url", broker.url, "--registry", str(registry)]
    assert main([*args, "--read", "wildcard"]) == 1
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert first.startswith("view      INCOMPLETE: ")
    read = int(first.split(": ")[1].split(" of ")[0])
    assert read < COUNT
    assert f"{COUNT - read} of 1000 registered not read" in captured.err

    assert main([*args, "--read-window", "40"]) == 0
    assert capsys.readouterr().out.startswith("view      complete: 1000 of 1000 registered read")


def test_a_registered_device_that_never_announced_is_read_as_such_and_the_view_is_complete(
    broker: MosquittoBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    announce(broker, ["pi-1"])
    registry = tmp_path / "devices.json"
    assert (
        main(["devices", "add", "pi-1", "pi-2", "--group", "lab", "--registry", str(registry)]) == 0
    )
    capsys.readouterr()
    assert main(["status", "--url", broker.url, "--registry", str(registry), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)["view"]
    assert (view["complete"], view["read"], view["never_announced"]) == (True, 2, ["pi-2"])
