"""`edge-agent hass remove` clears the device's retained discovery configs on a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.hass.discovery import discovery_messages
from agent.mqtt.topics import DeviceTopics
from tests.support.broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.broker

EDGE_AGENT = Path(sys.executable).parent / "edge-agent"


def test_hass_remove_leaves_no_retained_config(broker: MosquittoBroker, tmp_path: Path) -> None:
    topics = DeviceTopics("edge", "pi-hass-1")
    seeder = Subscriber(broker, "edge/none")
    for discovery in discovery_messages(topics, "homeassistant"):
        seeder.publish(str(discovery.topic), discovery.payload(), retain=True)
    before = Subscriber(broker, "homeassistant/+/pi-hass-1/+/config")
    before.wait_for(lambda got: len(got) == 5)
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        f'device_id = "pi-hass-1"\nstate_dir = "{tmp_path}"\n[mqtt]\nurl = "{broker.url}"\n'
        '[source]\ntype = "camera"\ndevice = 0\n[homeassistant]\nenabled = true\n'
    )
    result = subprocess.run([str(EDGE_AGENT), "hass", "remove", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "edge-agent: removed 5 Home Assistant entities\n"
    after = Subscriber(broker, "homeassistant/#")
    seeder.publish("homeassistant/marker", b"m")
    after.wait_for(lambda got: any(m.topic == "homeassistant/marker" for m in got))
    assert [m.topic for m in after.messages] == ["homeassistant/marker"]
    for sub in (seeder, before, after):
        sub.close()


def test_hass_remove_if_enabled_does_nothing_without_home_assistant(tmp_path: Path) -> None:
    config = tmp_path / "edge-agent.toml"
    config.write_text(
        'device_id = "pi-1"\nstate_dir = "s"\n[source]\ntype = "camera"\ndevice = 0\n'
    )
    argv = [str(EDGE_AGENT), "hass", "remove", "--config", str(config), "--if-enabled"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert "not enabled" in result.stdout
