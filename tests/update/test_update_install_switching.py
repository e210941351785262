"""While an install runs, the updater hands the GIL back to the service loop promptly."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from agent.update.install import INSTALL_SWITCH_INTERVAL_S, prompt_switching


@pytest.fixture
def default_interval() -> Iterator[float]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(before)


def test_the_switch_interval_is_short_during_an_install_and_restored_after(
    default_interval: float,
) -> None:
    with prompt_switching():
        assert sys.getswitchinterval() == pytest.approx(INSTALL_SWITCH_INTERVAL_S, abs=1e-6)
    assert sys.getswitchinterval() == pytest.approx(default_interval, abs=1e-6)


def test_a_failed_install_restores_the_switch_interval(default_interval: float) -> None:
    with pytest.raises(RuntimeError, match="canary"), prompt_switching():
        raise RuntimeError("canary crashed")
    assert sys.getswitchinterval() == pytest.approx(default_interval, abs=1e-6)


def test_an_interval_already_shorter_is_left_alone(default_interval: float) -> None:
    sys.setswitchinterval(0.0001)
    shorter = sys.getswitchinterval()  # CPython keeps whole microseconds
    with prompt_switching():
        assert sys.getswitchinterval() == shorter
    assert sys.getswitchinterval() == shorter
