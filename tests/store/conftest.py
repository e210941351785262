"""Fixtures for the store tests: the real mosquitto broker from tests/support."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # until pyproject sets pytest `pythonpath = ["."]`
    sys.path.insert(0, str(_ROOT))

from tests.support.broker import broker, make_broker  # noqa: E402

__all__ = ["broker", "make_broker"]
