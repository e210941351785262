"""Progress on the terminal: redrawn bars on a TTY, one plain line per change otherwise."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from fleet.progress import bar, board_lines


class Board:
    """One line per device. On a TTY the block is redrawn in place; else changes are printed."""

    def __init__(self, devices: Sequence[str], stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._tty = self._stream.isatty()
        self._texts = dict.fromkeys(devices, "")
        self._drawn = 0

    def update(self, device: str, text: str) -> None:
        if self._texts.get(device) == text:
            return
        self._texts[device] = text
        if not self._tty:
            (line,) = board_lines([(device, text)])
            print(line, file=self._stream, flush=True)

    def draw(self) -> None:
        if not self._tty:
            return
        lines = board_lines(self._texts.items())
        if self._drawn:
            self._stream.write(f"\x1b[{self._drawn}F")
        self._stream.write("".join(f"\x1b[2K{line}\n" for line in lines))
        self._stream.flush()
        self._drawn = len(lines)


class Counter:
    """``label [####....] k/n`` for one long operation (publishing a bundle)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._label = label
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self._tty:
            end = "\n" if done == total else ""
            self._stream.write(f"\r\x1b[2K{self._label} {bar(done, total)} {done}/{total}{end}")
            self._stream.flush()
        elif done == total:
            print(f"{self._label}: {total}/{total}", file=self._stream, flush=True)
