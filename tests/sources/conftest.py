"""Fixtures for the source tests: real video files and images written into tmp_path."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # until pyproject sets pytest `pythonpath = ["."]`
    sys.path.insert(0, str(_ROOT))

from tests.sources.media import digit_frames, write_video  # noqa: E402


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    def make(count: int = 10, fps: float = 20.0, name: str = "digits.avi") -> Path:
        return write_video(tmp_path / name, digit_frames(count), fps)

    return make
