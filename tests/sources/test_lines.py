from __future__ import annotations

import pytest

from agent.errors import InputError
from agent.sources.lines import LineError, LineFormat, LineSplitter, parse_line


def test_json_values_line_with_time() -> None:
    assert parse_line(b'{"t": 12.5, "values": [1, 2.5, -3]}', LineFormat()) == (
        (1.0, 2.5, -3.0),
        12.5,
    )


def test_json_named_fields_follow_the_configured_order() -> None:
    fmt = LineFormat(fields=("ay", "ax"))
    assert parse_line(b'{"ax": 1, "ay": 2, "extra": "x"}', fmt) == ((2.0, 1.0), None)


def test_csv_line_with_and_without_a_time_column() -> None:
    assert parse_line(b"0.5, 1,2\r", LineFormat()) == ((0.5, 1.0, 2.0), None)
    assert parse_line(b"100,0.5,1", LineFormat(csv_time_column=True)) == ((0.5, 1.0), 100.0)


@pytest.mark.parametrize(
    ("line", "fmt", "kind", "message"),
    [
        (b'{"values": [1,', LineFormat(), "bad_json", "invalid JSON"),
        (b"[1, 2]", LineFormat(), "bad_csv", "non-number"),
        (b'["a"]', LineFormat(), "bad_csv", "non-number"),
        (b'{"values": [1, NaN]}', LineFormat(), "bad_json", "NaN is not allowed"),
        (b'{"values": [1, "2"]}', LineFormat(), "bad_value", r"values\[1\] is not a number"),
        (b'{"values": [true]}', LineFormat(), "bad_value", r"values\[0\] is not a number"),
        (b'{"values": []}', LineFormat(), "bad_value", "non-empty list"),
        (b'{"ax": 1}', LineFormat(), "missing_field", "no fields are configured"),
        (b'{"ax": 1}', LineFormat(fields=("ax", "ay")), "missing_field", "lacks field 'ay'"),
        (b"1,abc", LineFormat(), "bad_csv", "non-number"),
        (b"1,inf", LineFormat(), "bad_value", "non-finite"),
        (b"5", LineFormat(csv_time_column=True), "bad_csv", "time column"),
        (b"\xff\xfe", LineFormat(), "not_utf8", "not UTF-8"),
        (b"   ", LineFormat(), "empty_line", "empty line"),
        (b"1,2,3", LineFormat(expected_values=2), "wrong_width", "has 3 values, expected 2"),
        (b"1" * 20, LineFormat(max_line=10), "line_too_long", "20 bytes exceeds 10"),
    ],
)
def test_bad_lines_raise_line_errors_with_a_kind(
    line: bytes, fmt: LineFormat, kind: str, message: str
) -> None:
    with pytest.raises(LineError, match=message) as info:
        parse_line(line, fmt)
    assert info.value.kind == kind
    assert isinstance(info.value, InputError)


def test_splitter_joins_lines_across_chunks_and_strips_cr() -> None:
    splitter = LineSplitter(max_line=100)
    assert splitter.feed(b"1,2\r\n3,") == [b"1,2"]
    assert splitter.feed(b"4") == []
    assert splitter.feed(b"\n\n5\n") == [b"3,4", b"", b"5"]


def test_splitter_discards_an_overlong_line_and_recovers() -> None:
    splitter = LineSplitter(max_line=8)
    assert splitter.feed(b"1,2\n" + b"9" * 6) == [b"1,2"]
    assert splitter.feed(b"9" * 6) == []
    assert splitter.feed(b"99\n7,8\n") == [b"7,8"]
    assert splitter.overlong == 1
