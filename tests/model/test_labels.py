"""Label files: plain lists, Coral/TF ``id name`` maps with gaps, TF OD ``label_map.pbtxt``."""

from __future__ import annotations

import pytest

from agent.schema.labels import LabelError, label_of, parse_labels


def test_plain_list_is_taken_in_order_skipping_blank_lines() -> None:
    assert parse_labels("cat\n\ndog\n  bird  \n") == ("cat", "dog", "bird")


def test_coral_id_space_name_keeps_ids_and_leaves_gaps_empty() -> None:
    labels = parse_labels("0  person\n1  bicycle\n3  motorcycle\n")
    assert labels == ("person", "bicycle", "", "motorcycle")
    assert label_of(labels, 2) == "2"
    assert label_of(labels, 3) == "motorcycle"


def test_id_colon_name_in_any_order_and_one_based_with_an_offset() -> None:
    assert parse_labels("2: dog\n1: cat\n") == ("", "cat", "dog")
    assert parse_labels("1: cat\n2: dog\n", index_base=-1) == ("cat", "dog")


def test_label_names_with_spaces_survive() -> None:
    assert parse_labels("9 traffic light\n10 fire hydrant\n")[9:] == (
        "traffic light",
        "fire hydrant",
    )


def test_pbtxt_label_map_prefers_display_name() -> None:
    text = """
    item { name: "/m/01g317" id: 1 display_name: "person" }
    item {
      name: "/m/0199g"
      id: 2
      display_name: 'bicycle'
    }
    item { id: 4 name: "airplane" }
    """
    assert parse_labels(text) == ("", "person", "bicycle", "", "airplane")


def test_mixed_numbered_and_plain_lines_are_refused_naming_the_line() -> None:
    with pytest.raises(LabelError, match="line 3 has no 'id name' form"):
        parse_labels("0 cat\n1 dog\nbird\n")


def test_an_id_given_twice_with_different_names_is_refused() -> None:
    with pytest.raises(LabelError, match="label id 1 is given twice"):
        parse_labels("1 cat\n1 dog\n")


def test_pbtxt_item_without_id_is_refused() -> None:
    with pytest.raises(LabelError, match="label_map item 1 has no integer id"):
        parse_labels('item { name: "x" }')
