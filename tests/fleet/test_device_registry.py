"""The device registry: parsing, merging, imports, the file. Pure but for the last test."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError, InputError
from fleet.registry import (
    Registry,
    load_registry,
    parse_device_list,
    parse_registry,
    save_registry,
)


def test_adding_devices_merges_their_groups_and_keeps_ids_sorted() -> None:
    registry = Registry().with_devices({"b": ["lab"], "a": []}).with_devices({"b": ["north"]})
    assert registry.devices == {"a": (), "b": ("lab", "north")}
    assert registry.group("north") == ["b"]
    assert registry.without(["b"]).ids() == ["a"]


def test_the_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "devices.json"
    assert load_registry(path) is None
    registry = Registry().with_devices({"cam-1": ["lab"], "cam-2": []})
    save_registry(path, registry)
    assert load_registry(path) == registry
    assert [p.name for p in path.parent.iterdir()] == ["devices.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[]", "expected"),
        (b'{"version": 2, "devices": {}}', "expected"),
        (b'{"version": 1, "devices": []}', "'devices' must be an object"),
        (b'{"version": 1, "devices": {"a": {"groups": [1]}}}', "'groups' must be strings"),
        (b'{"version": 1, "devices": {"a/b": {}}}', "contains '/'"),
        (b"{", "not valid JSON"),
    ],
)
def test_a_bad_registry_file_names_what_is_wrong(text: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_registry(text, "devices.json")


def test_an_import_takes_one_device_a_line_or_a_csv_export() -> None:
    text = "# inventory\ncam-1 lab,north\ncam-2\ncam-3,lab\n\ncam-1 south  # again\n"
    assert parse_device_list(text, "list.txt") == {
        "cam-1": ["lab", "north", "south"],
        "cam-2": [],
        "cam-3": ["lab"],
    }


def test_an_import_names_the_line_of_a_bad_device_id() -> None:
    with pytest.raises(InputError, match=r"list.txt:2: device id 'bad\+id' contains '\+'"):
        parse_device_list("ok\nbad+id lab\n", "list.txt")
