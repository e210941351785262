"""edge-fleet settings: flags over environment over fleet.toml, closed to typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError
from fleet.settings import default_config_path, parse_toml, resolve

HOME = Path("/home/op")
BASE = Path("/home/op/.config/edge-fleet")


def test_flags_win_over_environment_which_wins_over_the_file() -> None:
    settings = resolve(
        {"url": "mqtt://flag:1883", "topic_prefix": None},
        {"EDGE_FLEET_URL": "mqtt://env:1883", "EDGE_FLEET_TOPIC_PREFIX": "site/env"},
        {"url": "mqtt://file:1883", "topic_prefix": "file", "username": "fleet"},
        home=HOME,
        base=BASE,
    )
    assert (settings.url, settings.topic_prefix, settings.username) == (
        "mqtt://flag:1883",
        "site/env",
        "fleet",
    )


def test_paths_in_the_file_are_relative_to_the_file_and_expand_home() -> None:
    settings = resolve(
        {}, {}, {"fleet_key": "fleet.key", "ca_file": "~/ca.pem"}, home=HOME, base=BASE
    )
    assert settings.fleet_key == BASE / "fleet.key"
    assert settings.ca_file == HOME / "ca.pem"


def test_a_client_id_is_generated_when_none_is_set() -> None:
    first = resolve({}, {}, {}, home=HOME, base=BASE)
    second = resolve({}, {}, {}, home=HOME, base=BASE)
    assert first.client_id.startswith("edge-fleet-")
    assert first.client_id != second.client_id


def test_the_fleet_key_is_required_only_when_asked_for_with_a_hint() -> None:
    settings = resolve({}, {}, {}, home=HOME, base=BASE)
    with pytest.raises(ConfigError, match="edge-fleet keygen"):
        settings.require_fleet_key()


def test_unknown_keys_in_the_file_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_toml(b'url = "mqtt://x"\nprefix = "edge"\n', "fleet.toml")
    assert info.value.key == "prefix"


def test_a_bad_prefix_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"topic_prefix": "edge/#"}, {}, {}, home=HOME, base=BASE)
    assert info.value.key == "topic_prefix"


def test_the_default_file_lives_under_dot_config() -> None:
    assert default_config_path(HOME) == HOME / ".config/edge-fleet/fleet.toml"


def test_protocol_defaults_to_mqtt_5_and_takes_3_1_1_for_brokers_without_it() -> None:
    assert resolve({}, {}, {}, home=HOME, base=BASE).protocol == "5"
    settings = resolve({}, {"EDGE_FLEET_PROTOCOL": "3.1.1"}, {}, home=HOME, base=BASE)
    assert settings.protocol == "3.1.1"
    with pytest.raises(ConfigError) as info:
        resolve({"protocol": "4"}, {}, {}, home=HOME, base=BASE)
    assert str(info.value) == "protocol: must be 5 or 3.1.1; got '4'"


def test_cluster_nodes_come_from_repeated_flags_a_comma_list_or_a_toml_list() -> None:
    flags = resolve({"nodes": ["a:1883", "b:1884"]}, {}, {}, home=HOME, base=BASE)
    env = resolve({}, {"EDGE_FLEET_NODES": "a:1883, b:1884"}, {}, home=HOME, base=BASE)
    table = parse_toml(b'nodes = ["a:1883", "b:1884"]\n', "fleet.toml")
    file = resolve({}, {}, table, home=HOME, base=BASE)
    assert flags.nodes == env.nodes == file.nodes == ("a:1883", "b:1884")


def test_nodes_take_the_scheme_of_the_url_and_one_node_or_none_means_the_url() -> None:
    tls = resolve({"url": "mqtts://x:8883", "nodes": ["a:8883", "mqtt://b:1883"]}, {}, {},
                  home=HOME, base=BASE)  # fmt: skip
    assert tls.node_urls() == ["mqtts://a:8883", "mqtt://b:1883"]
    assert resolve({}, {}, {}, home=HOME, base=BASE).node_urls() == ["mqtt://127.0.0.1:1883"]


def test_a_node_without_a_port_or_a_nodes_key_that_is_not_a_list_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'a' is not host:port"):
        resolve({"nodes": ["a"]}, {}, {}, home=HOME, base=BASE)
    with pytest.raises(ConfigError, match="must be a list of host:port strings"):
        parse_toml(b'nodes = "a:1883"\n', "fleet.toml")
