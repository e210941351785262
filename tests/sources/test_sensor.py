"""Sensor streams over a real FIFO, a real pty standing in for a serial port, and a tailed file."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.sources.base import Reading
from agent.sources.lines import LineFormat
from agent.sources.sensor import QueueReadingSource, StreamSensorSource, baud_constant


def _collect(source: StreamSensorSource | QueueReadingSource, n: int) -> list[Reading]:
    items: list[Reading] = []
    deadline = time.monotonic() + 5.0
    while len(items) < n and time.monotonic() < deadline:
        item = source.get(0.1)
        if item is not None:
            items.append(item)
    return items


def _wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "sensor.fifo"
    os.mkfifo(path)
    return path


def test_fifo_readings_arrive_in_order_and_bad_lines_are_counted(fifo: Path) -> None:
    source = StreamSensorSource(str(fifo), fmt=LineFormat(fields=("x", "y")))
    try:
        writer = os.open(fifo, os.O_WRONLY)
        os.write(writer, b'{"t": 1, "values": [1, 2]}\nnot a number\n{"x": 3, ')
        os.write(writer, b'"y": 4}\n5,6\n' + b"9" * 5000 + b"\n7,8\n")
        os.close(writer)
        readings = _collect(source, 4)
        assert [r.values for r in readings] == [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0), (7.0, 8.0)]
        assert [r.seq for r in readings] == [1, 2, 3, 4]
        assert readings[0].device_t == 1.0
        assert readings[0].t <= readings[3].t <= time.monotonic()
        stats = source.stats()
        assert stats["produced"] == 4
        assert stats["error.bad_csv"] == 1
        assert stats["error.line_too_long"] == 1
        assert stats["errors"] == 2
    finally:
        source.close()


def test_fifo_source_survives_the_writer_going_away_and_coming_back(fifo: Path) -> None:
    source = StreamSensorSource(str(fifo))
    try:
        for value in (1, 2):
            writer = os.open(fifo, os.O_WRONLY)
            os.write(writer, f"{value}\n".encode())
            os.close(writer)
            (reading,) = _collect(source, 1)
            assert reading.values == (float(value),)
    finally:
        source.close()


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_serial_port_is_configured_with_termios_and_read(pty_pair: tuple[int, str]) -> None:
    import termios

    master, path = pty_pair
    source = StreamSensorSource(path, kind="serial", baud=115200)
    try:
        _wait_for(lambda: _speed(path) == termios.B115200)
        assert _speed(path) == termios.B115200
        os.write(master, b'1.5,2.5\r\n{"values": [3]}\r\n')
        readings = _collect(source, 2)
        assert [r.values for r in readings] == [(1.5, 2.5), (3.0,)]
    finally:
        source.close()


def _speed(path: str) -> int:
    import termios

    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return int(termios.tcgetattr(fd)[4])
    finally:
        os.close(fd)


def test_unsupported_baud_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"source\.baud: unsupported baud rate 12345"):
        baud_constant(12345)


def test_tailed_file_yields_appended_lines_only_and_follows_truncation(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("0,0\n")
    source = StreamSensorSource(str(path))
    try:
        time.sleep(0.2)  # let the reader open the file and seek to its end
        with path.open("a") as handle:
            handle.write("1,1\n2,")
            handle.flush()
            handle.write("2\n")
        assert [r.values for r in _collect(source, 2)] == [(1.0, 1.0), (2.0, 2.0)]
        path.write_text("3,3\n")  # truncated and rewritten: read from the start
        assert [r.values for r in _collect(source, 1)] == [(3.0, 3.0)]
    finally:
        source.close()


def test_missing_path_is_counted_and_retried_until_it_appears(fifo: Path) -> None:
    later = fifo.parent / "later.fifo"
    source = StreamSensorSource(str(later))
    try:
        _wait_for(lambda: source.stats().get("error.open_failed", 0) >= 1)
        os.mkfifo(later)
        writer = os.open(later, os.O_RDWR)  # RDWR: does not block waiting for the reader
        os.write(writer, b"42\n")
        (reading,) = _collect(source, 1)
        os.close(writer)
        assert reading.values == (42.0,)
        assert source.stats()["error.open_failed"] >= 1
    finally:
        source.close()


def test_queue_source_parses_payloads_from_the_mqtt_adapter() -> None:
    payloads: queue.Queue[bytes] = queue.Queue()
    source = QueueReadingSource(payloads, name="topic", max_payload=64)
    payloads.put(b'{"values": [1, 2]}')
    payloads.put(b"x" * 100)
    payloads.put(b"bad\n3,4\n5,6")
    readings = _collect(source, 3)
    assert [r.values for r in readings] == [(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)]
    assert [r.seq for r in readings] == [1, 2, 3]
    assert source.stats() == {
        "produced": 3,
        "dropped": 0,
        "errors": 2,
        "error.too_large": 1,
        "error.bad_csv": 1,
    }
    assert source.get(0.01) is None
    source.close()
    assert source.finished
