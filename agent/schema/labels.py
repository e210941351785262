"""Label files in the formats people have (pure): plain lists, ``id name`` maps, pbtxt maps.

* one label per line, in output order (``person``);
* Coral / TF ``id name`` or ``id: name`` lines (``0  person``, ``16: cat``), ids in any order
  and with gaps (COCO's 80 labels over ids 0..89): the label list gets the name at index
  ``id``, gaps stay empty and are reported by index;
* TF Object Detection ``label_map.pbtxt`` (``item { id: 1 name: "/m/01g317"
  display_name: "person" }``): ``display_name`` when present, else ``name``.

``index_base`` shifts ids (``-1`` for a 1-based map read by a model whose class 0 is the first
real class). A file that mixes numbered and plain lines is refused: it is almost always a
mistake that would shift every label by one.
"""

from __future__ import annotations

import re

from agent.errors import InputError

MAX_LABEL_ID = 1 << 16

_ID_LINE = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.*?)\s*$")
_ITEM = re.compile(r"item\s*\{(.*?)\}", re.DOTALL)
_FIELD = re.compile(r"""(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(-?\d+))""")


class LabelError(InputError):
    """A label file that cannot be read unambiguously; the message names the line."""


def parse_labels(text: str, index_base: int = 0) -> tuple[str, ...]:
    """Labels indexed by class id (empty strings where a map has gaps)."""
    if _ITEM.search(text):
        pairs = _pbtxt(text)
    else:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        numbered = [(n, _ID_LINE.match(line)) for n, line in lines]
        ids = [(n, m) for n, m in numbered if m is not None and m.group(2)]
        if not ids or _looks_plain(lines, ids):
            return tuple(line.strip() for _, line in lines)
        if len(ids) != len(lines):
            plain = next(n for n, m in numbered if m is None or not m.group(2))
            raise LabelError(
                f"line {plain} has no 'id name' form while others do; use one format per file"
            )
        pairs = [(int(m.group(1)), m.group(2)) for _, m in ids]
    return _dense(pairs, index_base)


def _looks_plain(lines: list[tuple[int, str]], ids: list[tuple[int, re.Match[str]]]) -> bool:
    """A plain list whose labels merely start with digits ("7 up") is not a map."""
    return len(ids) < len(lines) and len(ids) <= len(lines) // 2


def _pbtxt(text: str) -> list[tuple[int, str]]:
    pairs = []
    for number, item in enumerate(_ITEM.findall(text), 1):
        fields: dict[str, str] = {}
        for key, dq, sq, num in _FIELD.findall(item):
            fields[key] = dq or sq or num
        if "id" not in fields or not fields["id"].lstrip("-").isdigit():
            raise LabelError(f"label_map item {number} has no integer id")
        name = fields.get("display_name") or fields.get("name")
        if not name:
            raise LabelError(f"label_map item {number} (id {fields['id']}) has no name")
        pairs.append((int(fields["id"]), name))
    return pairs


def _dense(pairs: list[tuple[int, str]], index_base: int) -> tuple[str, ...]:
    if not pairs:
        raise LabelError("no labels found")
    table: dict[int, str] = {}
    for raw_id, name in pairs:
        index = raw_id + index_base
        if not 0 <= index <= MAX_LABEL_ID:
            raise LabelError(f"label id {raw_id} is outside 0..{MAX_LABEL_ID} after the base shift")
        if index in table and table[index] != name:
            raise LabelError(f"label id {raw_id} is given twice ({table[index]!r}, {name!r})")
        table[index] = name
    return tuple(table.get(i, "") for i in range(max(table) + 1))


def label_of(labels: tuple[str, ...] | list[str], index: int) -> str:
    """The name of class ``index``, or the index itself for unknown classes and gaps."""
    if 0 <= index < len(labels) and labels[index]:
        return labels[index]
    return str(index)
