"""``edge-agent hass remove --config PATH``: take this device out of Home Assistant.

Publishes an empty retained message on every discovery config topic of the device (Home
Assistant's documented way to delete an MQTT-discovered entity; the broker drops the retained
config) and waits for the broker to acknowledge each. Stop the service first: a running agent
with ``homeassistant.enabled`` re-announces on its next connect. ``make uninstall-service`` runs
it (``--if-enabled``: nothing to do when the config never enabled Home Assistant).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agent.clikit import EXIT_OK, EXIT_UNAVAILABLE, add_json_flag
from agent.config import load_config
from agent.daemon.wiring import mqtt_settings
from agent.errors import TransportError
from agent.hass.discovery import removal_messages
from agent.mqtt.client import MqttClient
from agent.mqtt.events import Published
from agent.mqtt.topics import DeviceTopics
from agent.secrets import FileResolver


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("remove",), help="remove: delete the device's entities")
    parser.add_argument("--config", type=Path, required=True, help="the agent's TOML config")
    parser.add_argument(
        "--if-enabled",
        action="store_true",
        help="do nothing unless the config has [homeassistant] enabled = true",
    )
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (default 15)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.if_enabled and not config.homeassistant.enabled:
        _report(args, [], "Home Assistant is not enabled in the config: nothing to remove")
        return EXIT_OK
    topics = DeviceTopics(config.mqtt.topic_prefix, config.device_id)
    messages = removal_messages(topics, config.homeassistant.discovery_prefix)
    client = MqttClient(mqtt_settings(config, FileResolver.from_env(args.config)), topics)
    client.start()
    try:
        client.wait_connected(args.timeout)
        pending = {client.publish(topic, b"", qos=1, retain=True) for topic in messages}
        deadline = time.monotonic() + args.timeout
        while pending and time.monotonic() < deadline:
            event = client.events.get(0.1)
            if isinstance(event, Published):
                pending.discard(event.mid)
        if pending:
            raise TransportError(f"{len(pending)} removals not acknowledged by the broker")
    finally:
        client.stop(5)
    _report(args, [str(t) for t in messages], f"removed {len(messages)} Home Assistant entities")
    return EXIT_OK if not pending else EXIT_UNAVAILABLE


def _report(args: argparse.Namespace, topics: list[str], text: str) -> None:
    if args.json:
        print(json.dumps({"ok": True, "cleared": topics}, indent=2, sort_keys=True))
    else:
        print(f"edge-agent: {text}")
