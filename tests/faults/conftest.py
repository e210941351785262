"""Fixtures for the fault-injection tests: agent processes stopped at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.agent_env import AgentProcess


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    """``agents(config)`` starts ``edge-agent run``; every process is killed at teardown."""
    started: list[AgentProcess] = []

    def start(config: Path) -> AgentProcess:
        process = AgentProcess(config, tmp_path / f"agent-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()
