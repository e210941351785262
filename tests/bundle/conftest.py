"""Fixtures for the bundle tests; helpers live in ``tests/bundle/world.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.bundle.world import Calls, World  # noqa: E402
from tests.support.models import converted_model, sample_models  # noqa: E402,F401


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture
def calls() -> Calls:
    return Calls()
