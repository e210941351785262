"""Progress for the user on stderr: step lines always, bars (tqdm) only on a terminal.

``edge-convert convert`` reports two kinds of progress: step messages ("converting to int8")
and counted stages (calibration samples fed to the converter, validation samples run through
Keras and the TFLite model). :class:`ProgressBars` prints the messages and, when its stream is
a TTY, draws one bar per counted stage; under a pipe, CI or ``2>file`` there are no bars and no
carriage-return noise. tqdm is imported only when a bar is drawn.
"""

from __future__ import annotations

from typing import Any, TextIO

TICK_PREFIX = "TICK "


def tick_line(stage: str, done: int, total: int) -> str:
    """The worker's line for one counted step (stage names have no spaces)."""
    return f"{TICK_PREFIX}{stage} {done} {total}"


def parse_tick(line: str) -> tuple[str, int, int] | None:
    """``(stage, done, total)`` from a :func:`tick_line`, None for anything else."""
    if not line.startswith(TICK_PREFIX):
        return None
    parts = line[len(TICK_PREFIX) :].split()
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


class ProgressBars:
    """Step lines and, on a terminal, a tqdm bar per counted stage."""

    def __init__(self, stream: TextIO, prog: str = "edge-convert") -> None:
        self._stream = stream
        self._prog = prog
        self.bars_enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._stage = ""

    def message(self, text: str) -> None:
        self._close_bar()
        print(f"{self._prog}: {text}...", file=self._stream, flush=True)

    def tick(self, stage: str, done: int, total: int) -> None:
        if not self.bars_enabled:
            return
        if self._bar is None or stage != self._stage:
            self._close_bar()
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit="sample", file=self._stream, leave=True)
            self._stage = stage
        self._bar.update(done - self._bar.n)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self._close_bar()
