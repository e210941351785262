"""A bad config file reports every problem in one run, each with its line, and suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.problems import key_lines, suggestion
from agent.errors import ConfigErrors

BAD = """device_id = "pi-1"
state_dir = "s"
colour = 1
[mqtt]
qos = 7
url = "mqtt://h:1"
[source]
type = "sensor"
windw = 5
[update]
window = 0
"""


def test_every_problem_is_reported_once_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert [(p["key"], p["line"]) for p in info.value.problems] == [
        ("colour", 3),
        ("mqtt.qos", 5),
        ("source.path", 7),  # missing: the line of its table
        ("source.windw", 9),
        ("update.window", 11),
    ]
    assert str(info.value).splitlines() == [
        f"{path}:3: colour: unknown key (check the spelling)",
        f"{path}:5: mqtt.qos: must be between 0 and 1; got 7",
        f"{path}:7: source.path: is required",
        f"{path}:9: source.windw: unknown key (did you mean 'source.window'?)",
        f"{path}:11: update.window: must be between 1 and 64; got 0",
    ]


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('device_id = "pi-1"\nstate_dir = \n')
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert info.value.problems[0]["line"] == 2
    assert str(info.value).startswith(f"{path}:2: not valid TOML: ")


def test_misspelt_keys_get_the_closest_schema_key() -> None:
    assert suggestion("mqtt.ur") == "mqtt.url"
    assert suggestion("model.acclerator") == "model.accelerator"
    assert suggestion("devce_id") == "device_id"
    assert suggestion("mqtt.zzzz") is None


def test_key_lines_follow_tables_and_quoted_keys() -> None:
    text = 'a = 1\n[mqtt]\n"url" = "x"\n\n[keys.group_keys]\nlab = "k"\n'
    assert key_lines(text) == {"a": 1, "mqtt": 2, "mqtt.url": 3, "keys.group_keys": 5,
                               "keys.group_keys.lab": 6}  # fmt: skip


def test_a_valid_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    text = BAD.replace("colour = 1\n", "").replace("qos = 7", "qos = 1")
    text = text.replace("windw = 5", 'path = "/dev/ttyUSB0"').replace("window = 0", "window = 4")
    path.write_text(text)
    assert load_config(path).update.window == 4
