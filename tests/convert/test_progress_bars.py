"""Progress bars on a terminal only: a real pseudo-terminal gets tqdm bars, a pipe gets lines."""

from __future__ import annotations

import io
import os
import select

from convert.progress import ProgressBars, parse_tick, tick_line


def _feed(bars: ProgressBars) -> None:
    bars.message("calibrating and converting to int8 with 4 samples")
    for done in range(1, 5):
        bars.tick("calibration", done, 4)
    bars.message("running the TFLite model on 2 validation samples")
    bars.tick("validation-tflite", 1, 2)
    bars.tick("validation-tflite", 2, 2)
    bars.close()


def _drain(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()


def test_a_pipe_gets_the_step_lines_and_no_bar() -> None:
    stream = io.StringIO()
    bars = ProgressBars(stream)
    _feed(bars)
    assert bars.bars_enabled is False
    assert stream.getvalue() == (
        "edge-convert: calibrating and converting to int8 with 4 samples...\n"
        "edge-convert: running the TFLite model on 2 validation samples...\n"
    )


def test_a_terminal_gets_one_bar_per_counted_stage() -> None:
    leader, follower = os.openpty()
    with open(follower, "w", encoding="utf-8", closefd=True) as tty:
        bars = ProgressBars(tty)
        assert bars.bars_enabled is True
        _feed(bars)
        tty.flush()
        shown = _drain(leader)
    os.close(leader)
    assert "calibration: 100%" in shown
    assert "4/4" in shown
    assert "validation-tflite: 100%" in shown
    assert "2/2" in shown
    assert "\r" in shown  # redrawn in place, as a bar is


def test_worker_tick_lines_round_trip_and_other_lines_are_not_ticks() -> None:
    assert parse_tick(tick_line("calibration", 7, 300)) == ("calibration", 7, 300)
    assert parse_tick("converting to int8") is None
    assert parse_tick("TICK calibration seven 300") is None
