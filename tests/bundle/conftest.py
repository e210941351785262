"""Fixtures for the bundle tests; helpers live in ``tests/bundle/world.py``."""

from __future__ import annotations

import pytest

from tests.bundle.world import Calls, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture
def calls() -> Calls:
    return Calls()
