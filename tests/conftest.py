"""Fixtures shared by the whole suite: real mosquitto brokers and converted sample models.

Tests marked ``heavy`` are the full-size fault and soak runs (10 broker restarts over 10,000
results, ...). They are skipped unless pytest gets ``--heavy`` (``make heavy``); ``make test``
runs their reduced forms, which are ordinary tests.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.support.broker",
    "tests.support.models",
    "tests.support.agent_env",
    "tests.support.thirdparty",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--heavy", action="store_true", help="also run the full-size heavy tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--heavy"):
        return
    skip = pytest.mark.skip(reason="full-size run: pass --heavy (make heavy)")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)
