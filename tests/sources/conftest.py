"""Fixtures for the source tests: real video files and images written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sources.media import digit_frames, write_video


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(count: int = 10, fps: float = 20.0, name: str = "digits.avi") -> Path:
        return write_video(tmp_path / name, digit_frames(count), fps)

    return make
